"""What runs on Ray's workers: the pre-flight plan of a job, and one segment of it, as methods of
`SegmentWorker`, one actor per GPU (or CPU) of the cluster for the whole job.

An actor keeps its model loaded and stays on the GPU Ray gave it: a reused task process would
keep the CUDA view of the first task it ran, whatever GPU a later task was given. Problems with
the shared storage are named with the node and the path, since the same path may work on one node
and not on another.
"""
from __future__ import annotations

import errno
import os
import threading
import time



def node_name() -> str:
    """The node as a person finds it: its IP address and the start of Ray's node id."""
    import ray
    ctx = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()}/{ctx.get_node_id()[:8]}"


def load_on_node(name: str | None, device: str):
    """The model `name` (a shipped name or a path every node sees) on `device`; a file this node
    cannot load is named with the node."""
    from ..loading import load_model
    from ..policy import cuda_ready
    from ..video.errors import VideoError
    from ..weights import WeightsError
    if device.startswith("cuda"):
        cuda_ready()
    try:
        return load_model(name, device=device)
    except WeightsError as e:
        raise VideoError(f"node {node_name()}: --model: {e}") from None


def plan_on_worker(job, model, max_memory: float | None, max_minutes: float | None, parallel: int,
                   per_worker: int = 1):
    """The pre-flight plan of `job` (a video.pipeline.JobPlan) as the workers run it: `parallel`
    segments at once over the cluster, `per_worker` of them in one worker (an encoder and a short
    queue each, the GPU shared). Raises PlanRefused."""
    import torch

    from ..video.pipeline import preflight
    return preflight(job, model, torch.device(model.device), max_memory=max_memory, max_minutes=max_minutes,
                     encoders=per_worker, encode_frames=per_worker * max(2, 2 * job.batch), parallel=parallel,
                     per_device=per_worker)


def run_segment(job, r, times: list[int], model, strict: bool = False) -> dict:
    """Encode segment `r` (a video.segments.Range, its frames' timestamps `times`) of `job` (a
    video.pipeline.JobPlan) with `model` (on the GPU Ray gave the worker, or the CPU). Returns
    what the driver records: the node, frames, start and end, and the damaged input ranges met."""
    import torch

    from ..video.errors import VideoError
    from ..video.job import workdir_of
    from ..video.segments import encode_frames

    node = node_name()
    t0 = time.monotonic()
    src, job_dir = job.src, workdir_of(job.target)
    if not os.access(src, os.R_OK):
        why = "no such file" if not src.exists() else "permission denied"
        raise VideoError(f"node {node}: cannot read the input {src} ({why}); every node needs the same path")
    if not (job_dir.is_dir() and os.access(job_dir, os.W_OK)):
        why = "no such folder" if not job_dir.exists() else "not writable"
        raise VideoError(f"node {node}: cannot write segment {r.index} to {job_dir} ({why}); "
                         "every node needs the same output path")
    damage: list = []
    try:
        frames = encode_frames(job, r, times, model, torch.device(model.device), strict=strict, damage=damage)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            where = e.filename or job_dir
            raise VideoError(f"node {node}: cannot write segment {r.index} to {where} "
                             f"({os.strerror(e.errno)})") from None
        raise
    # start and end on the node's monotonic clock (one clock for all its processes): the driver
    # measures a node's throughput over the span of its segments, which may run side by side
    return {"node": node, "index": r.index, "frames": frames, "start": t0, "end": time.monotonic(),
            "damage": [(float(a), float(b)) for a, b in damage], "pid": os.getpid()}


class SegmentWorker:
    """One per GPU (or CPU) of the cluster, for a whole job (`ray.remote(SegmentWorker)`). The
    driver starts them before it plans its inputs, so workers start and models load meanwhile;
    several segments may run at once in its threads, sharing the model and one CUDA context, as
    the encoders of one process do."""

    def __init__(self, model_name: str | None, device: str):
        self.model_name, self.device = model_name, device
        self._model = None
        self._lock = threading.Lock()  # its threads ask for the model at once

    def model(self):
        with self._lock:
            if self._model is None:
                self._model = load_on_node(self.model_name, self.device)
            return self._model

    def warm(self) -> str:
        """Load the model; returns the node."""
        self.model()
        return node_name()

    def plan(self, job, max_memory, max_minutes, parallel: int, per_worker: int = 1):
        return plan_on_worker(job, self.model(), max_memory, max_minutes, parallel, per_worker)

    def run(self, job, r, times: list[int], strict: bool = False) -> dict:
        return run_segment(job, r, times, self.model(), strict)
