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
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ..damage import AUTO, GUESS_FRAMES, guess_source
from ..loading import load_model
from ..policy import DeviceError, cuda_ready, pick_device, resolve_detail, run_size, unet_passes
from ..weights import WeightsError
from .colour import Colour, layout, resolve_matrix
from .decode import Decoder, sample_frames
from .encode import EncodeSettings, EncoderPool, check_encoder
from .engine import Engine, EngineConfig
from .argcheck import check_numbers
from .errors import DamagedInput, OutputError, VideoError, translate, warn
from .job import Job, workdir_of
from .lock import JobLock
from .mux import join
from .preflight import CPU_MINUTES, Plan, Shape, check, make_plan, model_seconds
from .presets import UpscaleSettings
from .probe import VideoInfo, probe

CONTAINERS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".m4v": "mp4"}

# (frames done, frames expected or None): called from the encoder feed, once per frame.
Progress = Callable[[int, int | None], None]
# Called with the accepted plan before the first frame is decoded (the CLI prints it).
OnPlan = Callable[[Plan], None]


@dataclass
class Result:
    source: Path
    target: Path | None = None
    frames: int = 0                   # frames in the output, finished segments of an earlier run included
    resumed: int = 0                  # of them, frames an earlier run had finished
    seconds: float = 0.0              # this run's time
    size: int = 0
    error: str | None = None
    status: str = "ok"  # ok, done (an earlier run finished it); front ends label the ones that stop
    damage: list[tuple[float, float]] = field(default_factory=list)  # damaged input ranges, seconds
    # (segment index, start, end) of each segment encoded by this run, seconds from its start
    encode_spans: list[tuple[int, float, float]] = field(default_factory=list)
    plan: Plan | None = None

    @property
    def fps(self) -> float | None:
        """Frames a second of this run alone (frames resumed from an earlier run do not count)."""
        done = self.frames - self.resumed
        return done / self.seconds if self.seconds > 0 and done > 0 else None


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
            raise OutputError(f"{target}: unknown output container {target.suffix or '(none)'}",
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
        raise OutputError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable")
    try:
        same = target.exists() and os.path.samefile(src, target)
    except OSError:
        same = False
    if same or target.resolve() == src.resolve():
        raise OutputError(f"{target}: output would overwrite the input; choose another output")
    if target.exists() and not replace:
        raise OutputError(f"{target}: exists", hint="use --overwrite to replace it")


def model_name(model) -> str:
    """The model as the plan names it: its weights file's stem and its config."""
    name = Path(getattr(model, "metadata", {}).get("source") or "").stem or "model"
    return f"{name} ({model.config.name})"


def check_source(model, source: str) -> None:
    """Refuse a source the model has no network for, in one line, before anything is decoded."""
    have = tuple(getattr(model, "sources", ("any",)))
    what = model_name(model) if getattr(model, "metadata", {}).get("source") else f"of config {model.config.name}"
    refuse_source(what, have, source)


def check_source_in_file(name_or_path, source: str) -> None:
    """`check_source` from a weights file's header alone: a driver that hands the model to GPU
    processes or cluster workers refuses a missing source before it starts any."""
    from ..loading import model_sources, resolve
    from ..weights import WeightsError, read_header
    try:
        path = resolve(name_or_path)
        meta = read_header(path).get("__metadata__") or {}
    except WeightsError as e:
        raise VideoError(f"--model: {e}") from None
    refuse_source(f"{path.stem} ({meta.get('config_name', '?')})", model_sources(meta), source)


def refuse_source(what: str, have: tuple[str, ...], source: str) -> None:
    if source not in have:
        raise VideoError(f"--source {source}: model {what} has no network for {source} sources "
                         f"(it has: {', '.join(have)})",
                         hint=f"use --source {have[0]} or a model made for {source} sources")


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
                 progress: Progress | None = None, on_plan: OnPlan | None = None,
                 max_memory: float | None = None, max_minutes: float | None = None,
                 strict: bool = False) -> Result:
    """Upscale one video file to `dst` (a file, an existing folder, or None: beside the source).

    `model`: a loaded model, a shipped name or weights path (None: the shipped default), or a
    callable returning a model, called once the input and output are checked (a folder of files
    can share one load). `device`: the policy's default (CUDA when present). `start`/`duration`:
    seconds.

    Before any frame is decoded the job is planned (preflight.py) and `on_plan` gets the plan;
    `PlanRefused` (one line naming the limit and an option that fits) when the estimated memory
    exceeds `max_memory` GiB (default: the machine's memory, and the GPU's) or the estimated time
    exceeds `max_minutes` (default: 15 on a CPU, none on a GPU; `math.inf`: none).
    Damaged input is decoded past and named in `Result.damage`; `strict=True` raises
    `DamagedInput` at the first damage, keeping the finished segments for `resume=True`.
    Raises `VideoError` (one line) for anything the user can fix, KeyboardInterrupt when stopped
    (the job folder stays for `resume=True`).
    """
    src = Path(src)
    result = Result(src)
    try:
        check_numbers(start=start, duration=duration, max_memory=max_memory, max_minutes=max_minutes)
        _run(src, dst, settings, result, model, device, resume, overwrite, start, duration, progress,
             on_plan, max_memory, max_minutes, strict)
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
    """Everything decided before the first frame: what a process needs to encode any frame range
    of the job and to join it. Plain data, so it can travel to another process or machine."""
    src: Path
    target: Path
    info: VideoInfo
    enc: EncodeSettings
    engine: EngineConfig
    params: dict                      # the job's identity: a resumed run must match it
    segment_frames: int
    batch: int
    workers: int                      # encoders in parallel (one process)
    budget: int                       # frames that may wait for the encoders
    frames: int | None                # expected frames (None: unknown)
    start: float | None = None
    duration: float | None = None
    source_guess: str = ""            # how `--source auto` decided, for the plan ("" when told)
    deinterlace: bool = False         # bwdif on the decoded frames (`decode.Deinterlacer`)


def choose_source(info: VideoInfo, s: UpscaleSettings, sources: tuple[str, ...], *,
                  start: float | None = None, duration: float | None = None) -> tuple[UpscaleSettings, str]:
    """`s` with its source decided, and how, for the plan. `--source auto`: the model's network
    that this clip needs (`damage.guess_source` on frames spread over the selected part; "any"
    when the model has no clean network); any other source as given. Decided once per file, from
    the same frames each time, so a resumed job decides alike."""
    if s.source != AUTO:
        return s, ""
    if "clean" not in sources:
        return replace(s, source="any"), ""
    guess = guess_source(sample_frames(info, GUESS_FRAMES, start=start, duration=duration), sources)
    return replace(s, source=guess.source), guess.describe()


def check_job(src: Path, dst, s: UpscaleSettings, result: Result, *, resume: bool = False,
              overwrite: bool = False) -> VideoInfo | None:
    """Probe the input, check the target and the encoder, warn about what is dropped; None when an
    earlier run finished the target (`resume`). Sets `result.target`; raises VideoError."""
    info = probe(src)
    target = plan_target(src, dst, s, info)
    result.target = target
    check_target(src, target, overwrite or resume)
    if resume and target.exists() and not workdir_of(target).exists():
        result.status, result.size = "done", target.stat().st_size
        return None
    if info.interlaced and s.deinterlace == "off":
        warn(f"{src.name}: interlaced video ({info.interlaced}): processed as progressive frames "
             "(--deinterlace off); --deinterlace auto rebuilds each frame's fields first")
    if info.alpha:
        warn(f"{src.name}: {info.pix_fmt} has an alpha channel: it is dropped, the output is opaque")
    for d in info.dropped_streams:
        warn(f"{src.name}: stream {d} is not copied")
    check_encoder(s.codec, s.pix_fmt)
    return info


def plan_job(src: Path, target: Path, info: VideoInfo, s: UpscaleSettings, *, model_id: str, detail: float,
             device: str, start: float | None = None, duration: float | None = None,
             source_guess: str = "") -> JobPlan:
    """Output size, colour, encoder and engine settings, and the job's identity (`params`);
    `source_guess`: how `choose_source` decided `s.source`, for the plan."""
    out_lay = layout(s.pix_fmt)
    H, W = s.output_size((info.height, info.width))
    seg_frames = int(s.segment_frames)
    batch = min(int(s.batch), seg_frames)
    workers, threads = auto_encoders(s, W, H)
    budget = max(workers * seg_frames, 2 * batch)
    budget = max(2 * batch, min(budget, int(8e9 // out_lay.frame_bytes(W, H))))  # at most ~8 GB waiting
    if duration:
        frames = int(duration * float(info.rate)) if info.rate else None
    elif start and info.duration and info.rate:
        frames = max(1, int((info.duration - start) * float(info.rate)))
    else:
        frames = info.frames or None
    in_matrix = resolve_matrix(info.colour.matrix, info.height)
    in_full = info.colour.range == 2 or (info.layout.family == "rgb" and info.colour.range != 1)
    # Untagged input: write the matrix we decoded with, so players do not guess another at 2160p.
    out_colour = Colour(info.colour.primaries, info.colour.trc,
                        in_matrix if info.layout.family == "yuv" else 1,
                        2 if (in_full and info.layout.family == "yuv") else 1)
    enc = EncodeSettings(codec=s.codec, pix_fmt=s.pix_fmt, width=W, height=H, time_base=info.time_base,
                         rate=info.rate, colour=out_colour, crf=s.crf, speed=s.speed,
                         options=s.options, threads=threads, sample_aspect_ratio=info.sample_aspect_ratio)
    st = src.stat()
    params = {"input": str(src.resolve()), "input_size": st.st_size, "input_mtime": st.st_mtime_ns,
              "codec": s.codec, "crf": s.crf, "speed": s.speed, "pix_fmt": s.pix_fmt,
              "options": s.options, "size": f"{W}x{H}", "detail": detail, "seed": s.seed,
              "segment_frames": seg_frames, "batch": batch, "model": model_id,
              "device": device, "start": start, "duration": duration, "colour": str(out_colour)}
    if s.source != "any":
        # Left out for "any", so the identity of a job without a source matches states that lack the key.
        params["source"] = s.source
    if s.grid != "fixed":
        # Likewise: states that lack the key were written with the grid fixed.
        params["grid"] = s.grid
    if s.temporal:
        # Likewise: states that lack the key were written with every frame on its own.
        params["temporal"] = s.temporal
    if s.supersample != 1:
        # Likewise: states that lack the key were written restoring to the output size.
        params["supersample"] = s.supersample
    deinterlace = s.deinterlace == "on" or (s.deinterlace == "auto" and bool(info.interlaced))
    if deinterlace:
        # Likewise: states that lack the key were written from the frames as decoded.
        params["deinterlace"] = "bwdif"
    cfg = EngineConfig(in_layout=info.layout, in_size=(info.height, info.width), in_matrix=in_matrix,
                       in_full=in_full, out_layout=out_lay, out_size=(H, W), out_matrix=out_colour.matrix,
                       out_full=out_colour.full_range, detail=detail, seed=s.seed, source=s.source,
                       batch=batch, grid=s.grid, temporal=s.temporal, supersample=s.supersample,
                       segment_frames=seg_frames)
    return JobPlan(src, target, info, enc, cfg, params, seg_frames, batch, workers, budget, frames,
                   start, duration, source_guess, deinterlace)


def preflight(job: JobPlan, model, device: torch.device, *, max_memory: float | None,
              max_minutes: float | None, encoders: int | None = None, encode_frames: int | None = None,
              parallel: int = 1, per_device: int = 1) -> Plan:
    """The pre-flight plan of `job` on `device`, checked against the limits (PlanRefused).

    `encoders`/`encode_frames`: what one process runs (default: the job's own pool); `parallel`:
    processes sharing the frames, which divides the time; `per_device`: processes sharing one
    GPU, which multiplies its memory. Refuses a source the model lacks (`check_source`) first."""
    check_source(model, job.engine.source)
    H, W = job.engine.out_size
    info = job.info
    run = run_size(model, (info.height, info.width), (H, W), job.engine.supersample)
    shape = Shape(in_size=(info.height, info.width), out_size=(H, W), batch=job.batch,
                  passes=unet_passes(job.engine.detail),
                  in_frame_bytes=info.layout.frame_bytes(info.width, info.height),
                  out_frame_bytes=job.engine.out_layout.frame_bytes(W, H), decode_depth=max(8, 2 * job.batch),
                  encode_frames=encode_frames or job.budget, encoders=encoders or job.workers,
                  temporal=bool(job.engine.temporal), run_area=run[0] * run[1] / (H * W))
    if max_minutes is None:
        max_minutes = CPU_MINUTES if device.type == "cpu" else None
    if max_minutes == float("inf"):
        max_minutes = None
    plan = make_plan(source=job.src, target=job.target, model=model, device=device,
                     model_name=model_name(model), detail=job.engine.detail, shape=shape,
                     frames=job.frames, max_memory_gib=max_memory, max_minutes=max_minutes,
                     source_kind=job.engine.source, grid=job.engine.grid, temporal=job.engine.temporal,
                     source_guess=job.source_guess, run_size=run)
    if per_device > 1 and plan.gpu_bytes is not None:
        plan.gpu_bytes *= per_device
    if job.deinterlace:
        plan.notes.append(f"interlaced input ({info.interlaced or 'as told'}): deinterlaced with bwdif, one frame "
                          "per frame (--deinterlace off keeps the fields as they are)")
    if parallel > 1:
        if plan.seconds_per_pixel is not None:
            plan.seconds_per_pixel /= parallel
            plan.seconds = model_seconds(plan)
        plan.notes.append(f"{parallel} workers share the frames; host memory is each worker's"
                          + (f", GPU memory {per_device} workers' on each GPU"
                             if per_device > 1 and plan.gpu_bytes is not None else ""))
    check(plan, model, shape, aspect=W / H)
    return plan


def output_frame(job: JobPlan, pts: int, planes) -> av.VideoFrame:
    """One engine output as the frame the encoder takes, with the input's timestamp and tags."""
    enc, lay = job.enc, job.engine.out_layout
    vf = av.VideoFrame(enc.width, enc.height, enc.pix_fmt)
    for plane, src_arr in zip(vf.planes, planes):
        dst_arr = np.frombuffer(plane, dtype=lay.dtype).reshape(plane.height, -1)[:, : plane.width]
        dst_arr[...] = src_arr.view(lay.dtype)
    if enc.encoder_pix_fmt() != enc.pix_fmt:
        vf = vf.reformat(format=enc.encoder_pix_fmt())
    vf.pts, vf.time_base = pts, job.info.time_base
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
         overwrite: bool, start, duration, progress: Progress | None, on_plan: OnPlan | None,
         max_memory: float | None, max_minutes: float | None, strict: bool) -> None:
    info = check_job(src, dst, s, result, resume=resume, overwrite=overwrite)
    if info is None:
        return
    target = result.target
    # Locked before anything is loaded or written: a second run on this output stops here at once.
    lock = JobLock(workdir_of(target), str(target))
    lock.acquire()
    job = None
    try:
        job, plan, model, dev = _prepare(src, target, s, info, result, model_arg, device, resume, start,
                                         duration, on_plan, max_memory, max_minutes, lock)
        _work(job, plan, model, dev, result, progress, strict)
    except BaseException as e:
        if job is None:  # nothing of this run's is in the folder: remove it unless an earlier run left it
            lock.release(remove_folder=lock.created)
        elif isinstance(e, (KeyboardInterrupt, DamagedInput)):
            job.keep()     # finished segments stay for --resume
        else:
            job.discard()
        raise


def _prepare(src: Path, target: Path, s: UpscaleSettings, info: VideoInfo, result: Result,
             model_arg: ModelArg, device, resume: bool, start, duration, on_plan: OnPlan | None,
             max_memory: float | None, max_minutes: float | None,
             lock: JobLock) -> tuple[Job, JobPlan, torch.nn.Module, torch.device]:
    """Everything before the first frame: model, the job's plan, the pre-flight plan and its checks,
    the job folder."""
    dev = pick_device(device if not isinstance(model_arg, torch.nn.Module) else model_arg.device)
    model = _get_model(model_arg, dev)
    dev = torch.device(model.device)
    if dev.type == "cuda":
        cuda_ready()
    s, how = choose_source(info, s, tuple(getattr(model, "sources", ("any",))), start=start, duration=duration)
    detail = resolve_detail(model, s.detail, s.source)
    plan = plan_job(src, target, info, s, model_id=model_id(model), detail=detail, device=str(dev),
                    start=start, duration=duration, source_guess=how)
    result.plan = preflight(plan, model, dev, max_memory=max_memory, max_minutes=max_minutes)
    if on_plan:
        on_plan(result.plan)
    job = Job(target, plan.params, lock)
    job.start(resume)
    return job, plan, model, dev


def _work(job: Job, plan: JobPlan, model, dev: torch.device, result: Result, progress: Progress | None,
          strict: bool) -> None:
    """Decode -> engine -> encoders -> join -> commit."""
    target, info, start, duration = job.target, plan.info, plan.start, plan.duration
    seg_frames, batch = plan.segment_frames, plan.batch
    skip = job.resumed_frames()
    result.resumed = skip
    pool = EncoderPool(plan.enc, plan.workers, plan.budget, on_done=job.segment_done)
    decoder = Decoder(info, start=start, duration=duration, depth=max(8, 2 * batch), strict=strict,
                      deinterlace=plan.deinterlace)
    engine = Engine(model, plan.engine, dev)
    total = plan.frames
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
    except DamagedInput:
        pool.abort(keep_closed=True)
        raise
    except BaseException:
        pool.abort()
        raise
    finally:
        decoder.close()
        result.frames = state["frames"]
        result.seconds = time.monotonic() - t0
        result.damage = [(float(a), float(b)) for a, b in decoder.damage]
        result.encode_spans = sorted((i, a - t0, b - t0) for i, a, b in pool.spans)
        if ok:
            result.size = target.stat().st_size
