"""The pre-flight plan: what a job will do and cost, decided before any frame is decoded.

A `Plan` says it plainly: the device (the CPU is named as such, with the reason), the output size,
the model, the source (--source) and detail, the host and GPU memory estimated from the actual batch
and size, and, when it is measured, the time (a short warm-up of the model at a small size, scaled
by pixels and UNet passes). `check` refuses what cannot fit with one line (`PlanRefused`) that
names the limit and an option that would fit: a smaller --batch or --height, one pass (--detail 0),
or a higher limit.

The memory model is linear in pixels: about `working_bytes_per_pixel` bytes per output pixel of
each frame and branch in the model (measured on the CPU for the `wide` config: 181 B/px at
2048x2048, 187 at 1024x1024), plus the frames waiting in the decode and encode queues and a share
per encoder.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..padcfg import restore
from ..policy import describe_device
from .errors import VideoError

GiB = 2**30
BASE_BYTES = int(0.5 * GiB)           # the process itself: Python, torch, PyAV
TEMPORAL_BYTES_PER_PIXEL = 64        # the temporal filter: kept and moved frame, grid, differences
ENCODER_BYTES_PER_PIXEL = 48          # an encoder's lookahead and reference frames, per output pixel
CPU_MINUTES = 15.0                    # a library caller's default limit on a CPU
WARMUP_SIZE = (512, 512)              # the warm-up: under a second a call on a CPU, large enough that
                                      # fixed costs do not inflate the per-pixel rate, as they do at 256 px
HEIGHTS = (2160, 1440, 1080, 720, 540, 480, 360)


class PlanRefused(VideoError):
    """The job cannot fit a limit; the message names the limit and an option that would fit."""


def working_bytes_per_pixel(config, dtype: torch.dtype, device: torch.device) -> float:
    """Model memory per output pixel of one frame and branch: the activations of each UNet level
    (channels over its downscaling, about ten live tensors each) and the full-size RGB tensors
    around it (bicubic up, padding, unshuffle, output, crop: fp32 on the CPU)."""
    levels = sum(c / (64 * 4**i) for i, c in enumerate(config.block_out_channels))
    act = torch.finfo(dtype).bits // 8
    return act * (10 * levels + 12) + 4 * 12


@dataclass
class Costs:
    host: int
    gpu: int | None


@dataclass
class Plan:
    source: Path
    target: Path
    device: torch.device
    device_text: str
    in_size: tuple[int, int]          # (h, w)
    out_size: tuple[int, int]         # (H, W)
    model: str
    detail: float
    passes: int                       # UNet passes a frame
    batch: int
    frames: int | None                # expected frames (None: unknown)
    host_bytes: int
    gpu_bytes: int | None
    seconds: float | None = None      # estimated model time (None: not measured)
    seconds_per_pixel: float | None = None  # a pass, from the warm-up
    host_limit: int | None = None
    gpu_limit: int | None = None
    minutes_limit: float | None = None
    notes: list[str] = field(default_factory=list)
    source_kind: str = "any"          # what the user says of the input (--source): model.SOURCES
    grid: str = "fixed"               # --grid: the x8 grid fixed to the frame or following the picture
    temporal: float = 0.0             # --temporal: the temporal filter's strength (0: off)
    source_guess: str = ""            # how --source auto chose source_kind ("" when told)
    run_size: tuple[int, int] | None = None  # what the model restores to, when more than the output

    @property
    def run_area(self) -> float:
        return 1.0 if not self.run_size else self.run_size[0] * self.run_size[1] / (self.out_size[0] * self.out_size[1])

    def lines(self) -> list[str]:
        """The plan as a few lines for a person."""
        H, W = self.out_size
        h, w = self.in_size
        frames = f"about {self.frames} frames" if self.frames else "frame count unknown"
        mem = f"about {fmt_bytes(self.host_bytes)} host memory"
        if self.gpu_bytes is not None:
            mem += f", {fmt_bytes(self.gpu_bytes)} GPU memory"
        out = [f"plan: {self.source.name} -> {self.target.name}: {w}x{h} -> {W}x{H}, {frames}",
               f"  device {self.device_text}",
               f"  model  {self.model}, source {self.source_guess or self.source_kind}, grid {self.grid}, temporal {self.temporal:g}, "
               f"detail {self.detail:g} ({self.passes} UNet pass{'es' if self.passes > 1 else ''} a frame"
               + (f", restored at {self.run_size[1]}x{self.run_size[0]} and shrunk: --supersample" if self.run_size else "")
               + f"), batch {self.batch}; {mem}"]
        if self.seconds is not None:
            out.append(f"  time   about {fmt_minutes(self.seconds)} for the model (measured warm-up)")
        out += [f"  note   {n}" for n in self.notes]
        return out


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= 0.1 * GiB else f"{n / 2**20:.0f} MiB"


def fmt_minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    m = seconds / 60
    if m < 90:
        return f"{round(m)} min"
    return f"{int(m // 60)} h {round(m % 60)} min"


def host_memory_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def gpu_memory_total(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return torch.cuda.mem_get_info(device)[1]


@dataclass
class Shape:
    """What memory depends on: the sizes, the batch, the passes and the queues."""
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    batch: int
    passes: int
    in_frame_bytes: int
    out_frame_bytes: int
    decode_depth: int
    encode_frames: int                # frames that may wait for the encoders
    encoders: int
    networks: int = 1                 # 2 when the source's network is built beside the model's
    temporal: bool = False            # the temporal filter's previous frame and its working tensors
    run_area: float = 1.0             # the model's output pixels over the output's (--supersample)


def estimate(model, device: torch.device, s: Shape) -> Costs:
    H, W = s.out_size
    h, w = s.in_size
    weights = s.networks * sum(p.numel() * p.element_size() for p in model.parameters())
    working = s.batch * s.passes * H * W * s.run_area * working_bytes_per_pixel(model.config, model.dtype, device)
    # The colour conversion's RGB in and out of the model, fp32.
    working += s.batch * 4 * 3 * (h * w + H * W)
    if s.temporal:  # one frame at a time: the kept frame, the moved one, the luma differences (fp32)
        working += TEMPORAL_BYTES_PER_PIXEL * H * W
    queues = s.decode_depth * s.in_frame_bytes + s.encode_frames * s.out_frame_bytes
    encoders = s.encoders * ENCODER_BYTES_PER_PIXEL * H * W
    if device.type == "cuda":
        pinned = 3 * s.batch * (s.in_frame_bytes + s.out_frame_bytes)  # the engine's ring of slots
        return Costs(BASE_BYTES + queues + encoders + pinned, int(weights + working + pinned))
    return Costs(int(BASE_BYTES + weights + working + queues + encoders), None)


def measure_seconds_per_pixel(model, device: torch.device) -> float:
    """Seconds a UNet pass costs per output pixel, from a warm-up at `WARMUP_SIZE` (the fastest of
    two calls after a first one, which pays for allocations)."""
    H, W = WARMUP_SIZE
    lo = getattr(model, "scale_range", (1.0, 4.0))[0]
    x = torch.rand(1, 3, max(8, int(H / max(lo, 2))), max(8, int(W / max(lo, 2))), device=device)
    best = math.inf
    with torch.inference_mode():
        for i in range(3):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            restore(model, x, (H, W), detail=1.0)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                best = min(best, time.perf_counter() - t)
    return best / (H * W)


def model_seconds(plan: Plan, out_size: tuple[int, int] | None = None, passes: int | None = None) -> float | None:
    if plan.seconds_per_pixel is None or not plan.frames:
        return None
    H, W = out_size or plan.out_size
    return plan.frames * (passes or plan.passes) * H * W * plan.run_area * plan.seconds_per_pixel


def check(plan: Plan, model, shape: Shape, aspect: float) -> None:
    """Raise PlanRefused when the plan exceeds a limit, naming the option that would fit."""
    where = str(plan.source)
    for kind, used, limit, costs_of in (
            ("host", plan.host_bytes, plan.host_limit, lambda c: c.host),
            ("GPU", plan.gpu_bytes, plan.gpu_limit, lambda c: c.gpu)):
        if used is None or not limit or used <= limit:
            continue
        H, W = plan.out_size
        fix = None
        for b in range(plan.batch - 1, 0, -1):
            need = costs_of(estimate(model, plan.device, _with(shape, batch=b)))
            if need <= limit:
                fix = f"--batch {b} would need about {fmt_bytes(need)}"
                break
        if fix is None:
            for Hs in HEIGHTS:
                if Hs >= H:
                    continue
                size = (Hs, max(2, 2 * round(Hs * aspect / 2)))
                need = costs_of(estimate(model, plan.device, _with(shape, batch=1, out_size=size)))
                if need <= limit:
                    fix = f"--batch 1 --height {Hs} would need about {fmt_bytes(need)}"
                    break
        fix = fix or "no smaller batch or height fits it"
        raise PlanRefused(f"{where}: needs about {fmt_bytes(used)} of {kind} memory for {W}x{H} at batch "
                          f"{plan.batch}, over the limit of {fmt_bytes(limit)} (--max-memory); {fix}")
    if plan.seconds is not None and plan.minutes_limit and plan.seconds > plan.minutes_limit * 60:
        H, W = plan.out_size
        fix = None
        tries = [(Hs, plan.passes) for Hs in HEIGHTS if Hs < H]
        if plan.passes > 1:
            tries = [(H, 1)] + [t for Hs in HEIGHTS if Hs < H for t in ((Hs, plan.passes), (Hs, 1))]
        for Hs, passes in tries:
            size = (Hs, max(2, 2 * round(Hs * aspect / 2)))
            t = model_seconds(plan, size, passes)
            if t is not None and t <= plan.minutes_limit * 60:
                opts = ([f"--height {Hs}"] if Hs != H else []) + (["--detail 0"] if passes < plan.passes else [])
                fix = f"{' '.join(opts)} would take about {fmt_minutes(t)}"
                break
        per = plan.seconds / plan.frames if plan.frames else 0
        part = int(plan.minutes_limit * 60 / per) if per else 0
        fix = (fix + "; " if fix else "") + (f"--duration to try a part (about {part} frames fit); "
                                             if part >= 1 else "")
        raise PlanRefused(
            f"{where}: about {fmt_minutes(plan.seconds)} on {plan.device_text} for {plan.frames} frames at "
            f"{W}x{H}, detail {plan.detail:g} ({plan.passes} UNet pass{'es' if plan.passes > 1 else ''} a frame), over the "
            f"{plan.minutes_limit:g}-minute limit (--max-minutes); {fix}or raise --max-minutes to run it")


def _with(shape: Shape, **changes) -> Shape:
    d = dict(shape.__dict__)
    d.update(changes)
    if "out_size" in changes:
        H, W = changes["out_size"]
        oH, oW = shape.out_size
        d["out_frame_bytes"] = int(shape.out_frame_bytes * H * W / (oH * oW))
    return Shape(**d)


def make_plan(*, source: Path, target: Path, model, device: torch.device, model_name: str, detail: float,
              shape: Shape, frames: int | None, max_memory_gib: float | None,
              max_minutes: float | None, source_kind: str = "any", grid: str = "fixed",
              temporal: float = 0.0, source_guess: str = "", run_size: tuple[int, int] | None = None) -> Plan:
    """Estimate the job (measuring the model when a time limit applies or the job looks long)."""
    if source_kind in getattr(model, "source_deltas", {}):  # `GenDRPix.for_source` builds a second network
        shape = _with(shape, networks=2)
    costs = estimate(model, device, shape)
    plan = Plan(source=source, target=target, device=device, device_text=describe_device(device),
                in_size=shape.in_size, out_size=shape.out_size, model=model_name, detail=detail,
                passes=shape.passes, batch=shape.batch, frames=frames, host_bytes=costs.host,
                gpu_bytes=costs.gpu, minutes_limit=max_minutes, source_kind=source_kind, grid=grid,
                temporal=temporal, source_guess=source_guess,
                run_size=tuple(run_size) if run_size and tuple(run_size) != tuple(shape.out_size) else None)
    if max_memory_gib is not None:
        plan.host_limit = int(max_memory_gib * GiB)
        plan.gpu_limit = int(max_memory_gib * GiB) if costs.gpu is not None else None
    else:
        plan.host_limit = host_memory_total() or None
        plan.gpu_limit = gpu_memory_total(device)
    if frames and (device.type == "cpu" or max_minutes):
        plan.seconds_per_pixel = measure_seconds_per_pixel(model, device)
        plan.seconds = model_seconds(plan)
    return plan
