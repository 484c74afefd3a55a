"""`upscale_file`: one video file through probe -> decode -> engine (colour + model) -> parallel
segment encoders -> lossless join with the untouched audio/subtitles -> atomic rename.

The seam for front ends: the CLI, the end-to-end benchmark and any other caller (a watch folder, a
job queue) build `UpscaleSettings` and call `upscale_file`; none of them reads argparse here.
"""
from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ..loading import load_model
from ..policy import DeviceError, cuda_ready, pick_device, resolve_detail
from ..weights import WeightsError
from .colour import Colour, layout, resolve_matrix
from .decode import Decoder
from .encode import EncodeSettings, EncoderPool, check_encoder
from .engine import Engine, EngineConfig
from .errors import VideoError, translate, warn
from .job import Job
from .mux import join
from .presets import UpscaleSettings
from .probe import VideoInfo, probe

CONTAINERS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".m4v": "mp4"}

# (frames done, frames expected or None): called from the encoder feed, once per frame.
Progress = Callable[[int, int | None], None]


@dataclass
class Result:
    source: Path
    target: Path | None = None
    frames: int = 0
    seconds: float = 0.0
    size: int = 0
    error: str | None = None
    status: str = "ok"  # ok, done (an earlier run finished it), failed, interrupted


def auto_encoders(s: UpscaleSettings, W: int, H: int) -> tuple[int, int]:
    """(encoders in parallel, threads each): one encoder rarely keeps up at 4K (see docs)."""
    cores = os.cpu_count() or 1
    if s.encoders != "auto":
        n = int(s.encoders)
    elif s.codec.endswith("_nvenc"):
        n = 2
    elif W * H >= 1920 * 1080:
        n = max(1, min(8, cores // 4))
    else:
        n = max(1, min(4, cores // 2))
    return n, max(1, cores // n)


def accepts(fmt: str, video_codec: str, others: list[str]) -> bool:
    """Can container `fmt` hold these codecs? (Asks FFmpeg, writes nothing.)"""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as c:
            c.add_mux_stream(video_codec)
            for name in others:
                c.add_mux_stream(name)
        return True
    except Exception:
        return False


def plan_target(src: Path, dst: str | os.PathLike | None, s: UpscaleSettings, info: VideoInfo) -> Path:
    """`dst` a file: itself; an existing folder: the source's name in it; None: beside the source."""
    if dst is not None and not Path(dst).is_dir():
        target = Path(dst)
        if target.suffix.lower() not in CONTAINERS:
            raise VideoError(f"{target}: unknown output container {target.suffix or '(none)'}",
                             hint="use .mkv, .mp4 or .mov")
        return target
    codec_name = av.codec.Codec(s.codec, "w").name if s.codec else "hevc"
    want = ("." + s.container) if s.container else (
        src.suffix.lower() if src.suffix.lower() in CONTAINERS else ".mkv")
    if not accepts(CONTAINERS[want], codec_name, info.copy_codecs):
        want = ".mkv"
    if dst is not None:
        return Path(dst) / f"{src.stem}{want}"
    return src.parent / f"{src.stem}.upscaled{want}"


def check_target(src: Path, target: Path, replace: bool) -> None:
    parent = target.parent
    if not parent.exists():
        raise VideoError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise VideoError(f"output folder {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise VideoError(f"output folder {parent} is not writable")
    try:
        same = target.exists() and os.path.samefile(src, target)
    except OSError:
        same = False
    if same or target.resolve() == src.resolve():
        raise VideoError(f"{target}: output would overwrite the input; choose another output")
    if target.exists() and not replace:
        raise VideoError(f"{target}: exists", hint="use --overwrite to replace it")


def model_id(model) -> str:
    """What the model is, for a resumed job to check it continues with the same one."""
    source = getattr(model, "metadata", {}).get("source")
    name = getattr(getattr(model, "config", None), "name", "?")
    if source and Path(source).is_file():
        st = Path(source).stat()
        return f"{Path(source).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"{source or 'memory'}:{name}"


ModelArg = torch.nn.Module | str | os.PathLike | Callable[[], torch.nn.Module] | None


def _get_model(model: ModelArg, device: torch.device):
    if isinstance(model, torch.nn.Module):
        return model
    if callable(model):
        return model()
    try:
        return load_model(model, device=device)
    except WeightsError as e:
        raise VideoError(f"--model: {e}") from None


def upscale_file(src: str | os.PathLike, dst: str | os.PathLike | None, settings: UpscaleSettings, *,
                 model: ModelArg = None, device: str | torch.device | None = None, resume: bool = False,
                 overwrite: bool = False, start: float | None = None, duration: float | None = None,
                 progress: Progress | None = None) -> Result:
    """Upscale one video file to `dst` (a file, an existing folder, or None: beside the source).

    `model`: a loaded model, a shipped name or weights path (None: the shipped default), or a
    callable returning a model, called once the input and output are checked (a folder of files
    can share one load). `device`: the policy's default (CUDA when present). `start`/`duration`:
    seconds. Raises `VideoError` (one line) for anything the user can fix, KeyboardInterrupt when
    stopped (the job folder stays for `resume=True`).
    """
    src = Path(src)
    result = Result(src)
    try:
        _run(src, dst, settings, result, model, device, resume, overwrite, start, duration, progress)
    except (KeyboardInterrupt, VideoError):
        raise
    except DeviceError as e:
        raise VideoError(f"--device: {e}") from None
    except BaseException as e:
        known = translate(e, batch=settings.batch, where=str(result.target or src))
        if known is None:
            raise
        raise known from e
    return result


@dataclass
class JobPlan:
    """Everything decided before the first frame: what `encode_frames` needs for any frame range
    and `finish_job` for the join. Plain data, so it can travel to another process."""
    src: Path
    target: Path
    info: VideoInfo
    enc: EncodeSettings
    engine: EngineConfig
    params: dict
    segment_frames: int
    batch: int
    workers: int
    start: float | None = None
    duration: float | None = None


def check_job(src: Path, dst, s: UpscaleSettings, result: Result, *, resume: bool = False,
              overwrite: bool = False) -> VideoInfo | None:
    """Probe the input and check the target and encoder; None when an earlier run finished the
    target (`resume`). Sets `result.target`; raises VideoError."""
    info = probe(src)
    target = plan_target(src, dst, s, info)
    result.target = target
    check_target(src, target, overwrite or resume)
    if resume and target.exists() and not (target.parent / f".{target.name}.gendrpix").exists():
        result.status, result.size = "done", target.stat().st_size
        return None
    if info.interlaced:
        warn(f"{src.name}: interlaced video ({info.interlaced}): processed as progressive frames; "
             "deinterlace first for best results")
    if info.alpha:
        warn(f"{src.name}: {info.pix_fmt} has an alpha channel: it is dropped, the output is opaque")
    for d in info.dropped_streams:
        warn(f"{src.name}: stream {d} is not copied")
    check_encoder(s.codec, s.pix_fmt)
    return info


def plan_job(src: Path, target: Path, info: VideoInfo, s: UpscaleSettings, *, model_id: str, detail: float,
             device: str, start: float | None = None, duration: float | None = None) -> JobPlan:
    """Output size, colour, encoder and engine settings, and the job's identity (`params`)."""
    out_lay = layout(s.pix_fmt)
    H, W = s.output_size((info.height, info.width))
    in_matrix = resolve_matrix(info.colour.matrix, info.height)
    in_full = info.colour.range == 2 or (info.layout.family == "rgb" and info.colour.range != 1)
    # Untagged input: write the matrix we decoded with, so players do not guess another at 2160p.
    out_colour = Colour(info.colour.primaries, info.colour.trc,
                        in_matrix if info.layout.family == "yuv" else 1,
                        2 if (in_full and info.layout.family == "yuv") else 1)
    workers, threads = auto_encoders(s, W, H)
    enc = EncodeSettings(codec=s.codec, pix_fmt=s.pix_fmt, width=W, height=H, time_base=info.time_base,
                         rate=info.rate, colour=out_colour, crf=s.crf, speed=s.speed,
                         options=s.options, threads=threads, sample_aspect_ratio=info.sample_aspect_ratio)
    seg_frames = int(s.segment_frames)
    batch = min(int(s.batch), seg_frames)
    st = src.stat()
    params = {"input": str(src.resolve()), "input_size": st.st_size, "input_mtime": st.st_mtime_ns,
              "codec": s.codec, "crf": s.crf, "speed": s.speed, "pix_fmt": s.pix_fmt,
              "options": s.options, "size": f"{W}x{H}", "detail": detail, "seed": s.seed,
              "segment_frames": seg_frames, "batch": batch, "model": model_id,
              "device": device, "start": start, "duration": duration, "colour": str(out_colour)}
    cfg = EngineConfig(in_layout=info.layout, in_size=(info.height, info.width), in_matrix=in_matrix,
                       in_full=in_full, out_layout=out_lay, out_size=(H, W), out_matrix=out_colour.matrix,
                       out_full=out_colour.full_range, detail=detail, seed=s.seed, batch=batch)
    return JobPlan(src, target, info, enc, cfg, params, seg_frames, batch, workers, start, duration)


def output_frame(plan: JobPlan, pts: int, planes) -> av.VideoFrame:
    """One engine output as the frame the encoder takes, with the input's timestamp and tags."""
    enc, lay = plan.enc, plan.engine.out_layout
    vf = av.VideoFrame(enc.width, enc.height, enc.pix_fmt)
    for plane, src_arr in zip(vf.planes, planes):
        dst_arr = np.frombuffer(plane, dtype=lay.dtype).reshape(plane.height, -1)[:, : plane.width]
        dst_arr[...] = src_arr.view(lay.dtype)
    if enc.encoder_pix_fmt() != enc.pix_fmt:
        vf = vf.reformat(format=enc.encoder_pix_fmt())
    vf.pts, vf.time_base = pts, plan.info.time_base
    c = enc.colour
    vf.color_range, vf.colorspace = c.range, c.matrix
    vf.color_primaries, vf.color_trc = c.primaries, c.trc
    return vf


def finish_job(plan: JobPlan, job: Job, first_pts: int | None, end_time: Fraction | None) -> None:
    """Join the job's segments losslessly with the input's other streams, then rename into place.
    `first_pts`: of the first frame encoded; `end_time`: where a trimmed selection ends."""
    info, start, duration = plan.info, plan.start, plan.duration
    shift = first_pts if start else 0
    window = (None, None)
    if start or duration:
        first = Fraction(first_pts or 0) * info.time_base
        window = (first, end_time)
    join(job.partial, CONTAINERS[plan.target.suffix.lower()], info, job.segments(), shift=shift or 0,
         window=window)
    job.commit()


def _run(src: Path, dst, s: UpscaleSettings, result: Result, model_arg: ModelArg, device, resume: bool,
         overwrite: bool, start, duration, progress: Progress | None) -> None:
    info = check_job(src, dst, s, result, resume=resume, overwrite=overwrite)
    if info is None:
        return
    target = result.target
    dev = pick_device(device if not isinstance(model_arg, torch.nn.Module) else model_arg.device)
    model = _get_model(model_arg, dev)
    dev = torch.device(model.device)
    if dev.type == "cuda":
        cuda_ready()
    detail = resolve_detail(model, s.detail)
    plan = plan_job(src, target, info, s, model_id=model_id(model), detail=detail, device=str(dev),
                    start=start, duration=duration)
    enc, seg_frames, batch, workers = plan.enc, plan.segment_frames, plan.batch, plan.workers
    job = Job(target, plan.params)
    job.start(resume)
    skip = job.resumed_frames()
    frame_bytes = plan.engine.out_layout.frame_bytes(enc.width, enc.height)
    budget = max(workers * seg_frames, 2 * batch)
    budget = max(2 * batch, min(budget, int(8e9 // frame_bytes)))  # at most ~8 GB of waiting frames
    pool = EncoderPool(enc, workers, budget, on_done=job.segment_done)
    decoder = Decoder(info, start=start, duration=duration, depth=max(8, 2 * batch))
    engine = Engine(model, plan.engine, dev)
    total = int(duration * float(info.rate)) if duration else (info.frames or None)
    state = {"feed": None, "frames": skip}
    if progress:
        progress(skip, total)
    t0 = time.monotonic()

    def batches():
        group = []
        for f in decoder:
            if f.index < skip:
                continue  # in a segment an interrupted run already finished
            group.append(f)
            if len(group) == batch or (f.index + 1) % seg_frames == 0:
                yield group
                group = []
        if group:
            yield group

    def emit(f, planes):
        if f.index % seg_frames == 0 or state["feed"] is None:
            if state["feed"] is not None:
                state["feed"].close()
            state["feed"] = pool.begin(job.segment(f.index // seg_frames, f.index))
        state["feed"].put(output_frame(plan, f.pts, planes))
        state["frames"] += 1
        if progress:
            progress(state["frames"], total)

    ok = False
    try:
        with torch.inference_mode():
            engine.run(batches(), emit)
        if state["feed"] is not None:
            state["feed"].close()
        pool.finish()
        finish_job(plan, job, decoder.first_pts, decoder.end_time)
        ok = True
    except KeyboardInterrupt:
        pool.abort()
        raise
    except BaseException:
        pool.abort()
        job.discard()
        raise
    finally:
        decoder.close()
        result.frames = state["frames"]
        result.seconds = time.monotonic() - t0
        if ok:
            result.size = target.stat().st_size
