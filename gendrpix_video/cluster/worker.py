"""The task body that runs on a Ray worker: one segment of one job.

A worker process keeps every model it loaded (keyed by model and device), so the segments that
follow on it pay nothing for the load. Problems with the shared storage are named with the node
and the path, since the same path may work on one node and not on another.
"""
from __future__ import annotations

import errno
import os
import time

_models: dict[tuple[str, str], object] = {}


def node_name() -> str:
    import ray
    ctx = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{ctx.get_node_id()[:8]}"


def cached_model(name: str | None, device: str):
    key = (str(name), device)
    if key not in _models:
        from ..loading import load_model
        from ..policy import cuda_ready
        if device.startswith("cuda"):
            cuda_ready()
        _models[key] = load_model(name, device=device)
    return _models[key]


def run_segment(plan, r, times: list[int], model_name: str | None, device: str) -> dict:
    """Encode segment `r` (a video.segments.Range, its frames' timestamps `times`) of the job
    `plan` (a video.pipeline.JobPlan) with the model `model_name` (a shipped name or a path every
    node sees) on `device` ("cuda": the GPU Ray gave the task, or "cpu"). Returns what the driver
    records: the node, frames and seconds."""
    import torch

    from ..video.errors import VideoError
    from ..video.segments import encode_frames

    node = node_name()
    t0 = time.monotonic()
    src, job_dir = plan.src, plan.target.parent / f".{plan.target.name}.gendrpix"
    if not os.access(src, os.R_OK):
        why = "no such file" if not src.exists() else "permission denied"
        raise VideoError(f"node {node}: cannot read the input {src} ({why}); every node needs the same path")
    if not (job_dir.is_dir() and os.access(job_dir, os.W_OK)):
        why = "no such folder" if not job_dir.exists() else "not writable"
        raise VideoError(f"node {node}: cannot write segment {r.index} to {job_dir} ({why}); "
                         "every node needs the same output path")
    model = cached_model(model_name, device)
    try:
        frames = encode_frames(plan, r, times, model, torch.device(model.device))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            where = e.filename or job_dir
            raise VideoError(f"node {node}: cannot write segment {r.index} to {where} "
                             f"({os.strerror(e.errno)})") from None
        raise
    return {"node": node, "index": r.index, "frames": frames, "seconds": time.monotonic() - t0}
