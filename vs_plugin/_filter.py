"""The ``gendrpix`` VapourSynth filter (imported as ``vsgendrpix``).

Design notes
------------
* Batching: frame ``n`` belongs to batch ``k = n // batch_size``, i.e. frames
  ``[k*B, (k+1)*B)``.  For every slot ``j`` of a batch a helper clip whose frame
  ``n`` is source frame ``k*B + j`` is built with ``std.SelectEvery``; one
  ``std.ModifyFrame`` over ``[blank output clip, slot clips...]`` therefore
  receives every input frame of the batch through VapourSynth's own frame
  requests (no ``get_frame`` inside callbacks, so no deadlocks).  A
  ``std.FrameEval`` makes one ModifyFrame instance per frame, because one
  instance runs its Python callbacks one at a time.  The first
  request of a batch runs the network on all of it; the other frames of that
  batch are served from a small cache.  The partition of the clip into batches
  is fixed, so frame ``n`` is computed in the same batch whichever order frames are
  requested in.  On CUDA each worker thread autotunes its own cuDNN kernels (PyTorch keeps
  that cache per thread), so batch ``k`` always runs on worker ``k % num_streams``: within one
  filter instance a frame asked for again runs the kernels it ran the first time.  Between
  instances (two vspipe runs) autotuning may pick other kernels: outputs may then differ by
  rounding (up to 5e-4 on [0, 1] in fp32 measured on an H200, under one 10-bit step).
  On the CPU results are the same bit for bit.
* Concurrency: the network runs on ``num_streams`` persistent worker threads,
  each with its own CUDA stream (cuDNN handles and autotuning are per thread,
  so they are tuned once).  VapourSynth threads copy frames into pinned
  memory, wait for the batch (GIL released) and copy their output frame
  straight from the GPU into the VapourSynth frame.
* PadCFG offsets come from ``seed`` and are identical for every batch; with ``grid="follow"`` they
  move with the picture from a batch's first frame (batch-local, so random access holds).
* ``temporal > 0``: the core's temporal filter (``gendrpix_video.temporal``) over each batch, led in
  by the ``LEAD`` frames before it (restored too and dropped; copies of frame 0 before the clip's
  start), so a batch's first frame is blended like the others and random access still holds; the
  grid, when it follows, follows from the first lead-in frame. It costs ``LEAD / batch_size`` more
  network work.
* Device, dtype, CUDA flags, detail and the scale range follow the core's inference policy
  (``gendrpix_video.policy``), as the CLI does.  Two differences, on purpose: the default size is
  2x (a script has no 2160p delivery target), and a scale outside the model's range is refused
  rather than resized around (the script author places the resize where it belongs).
* Nothing is printed: vspipe's stdout stays a clean video stream.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from gendrpix_video import WeightsError, list_models, load_model
from gendrpix_video.padcfg import restore_any_scale
from gendrpix_video import policy
from gendrpix_video.damage import AUTO, GUESS_FRAMES, SOURCE_CHOICES, guess_source
from gendrpix_video.motion import GridFollower, central_window
from gendrpix_video.temporal import DEFAULT_STRENGTH, TemporalFilter, check_strength

__all__ = ["gendrpix"]

_NAME = "gendrpix"
LEAD = 2   # frames restored before each run to start the temporal filter (dropped)
SPAN = 24  # frames the grid follows and the filter runs through before starting again

_DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}

# Models loaded from a name/path are shared between calls of the same script.
_MODEL_CACHE: dict[tuple[str, str, str], Any] = {}
_MODEL_CACHE_LOCK = threading.Lock()


def _err(msg: str) -> vs.Error:
    return vs.Error(f"{_NAME}: {msg}")


# ----------------------------------------------------------------------------- checks


def _suggest_conversion(clip: vs.VideoNode) -> str:
    fmt = clip.format
    target = "vs.RGBH"
    if fmt.color_family == vs.YUV:
        matrix = "709" if (clip.width > 1024 or clip.height > 576) else "170m"
        return f'core.resize.Bicubic(clip, format={target}, matrix_in_s="{matrix}")'
    return f"core.resize.Bicubic(clip, format={target})"


def _check_clip(clip: Any) -> vs.VideoNode:
    if not isinstance(clip, vs.VideoNode):
        raise _err(f"clip must be a vapoursynth.VideoNode (a video clip), got {type(clip).__name__}")
    if clip.format is None or clip.format.id == vs.PresetVideoFormat.NONE:
        raise _err("clips with variable format are not supported; convert to RGBH or RGBS first")
    if clip.width == 0 or clip.height == 0:
        raise _err(
            "clips with variable frame size are not supported; resize to a constant size first, "
            "e.g. core.resize.Bicubic(clip, width=1920, height=1080)"
        )
    if clip.format.id not in (vs.RGBH, vs.RGBS):
        raise _err(
            f"input must be RGBH or RGBS, got {clip.format.name}; "
            f"convert with {_suggest_conversion(clip)}"
        )
    return clip


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _output_size(
    w: int, h: int, scale: Any, width: Any, height: Any
) -> tuple[int, int]:
    """(width, height) as VapourSynth writes sizes; the policy works in (H, W)."""
    if scale is not None and (width is not None or height is not None):
        raise _err("give either scale or width/height, not both")
    for name, v in (("width", width), ("height", height)):
        if v is not None and (not _is_int(v) or v < 1):
            raise _err(f"{name} must be a positive integer, got {v!r}")
    if scale is not None:
        if not _is_real(scale) or not math.isfinite(scale) or scale <= 0:
            raise _err(f"scale must be a positive number, got {scale!r}")
    elif width is None and height is None:
        scale = 2  # a script has no delivery size to aim at: twice the input
    # A side kept by the aspect ratio rounds to even, so 4:2:0 output stays possible.
    H, W = policy.output_size((h, w), scale=scale, height=height, width=width, aspect_multiple=2)
    return W, H


def _parse_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise _err(f"dtype must be float16, bfloat16 or float32, got {dtype}")
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise _err(f"dtype must be a torch dtype or one of {sorted(_DTYPES)}, got {dtype!r}")


def _pick_device(device_index: Any) -> torch.device:
    if device_index is None:
        return policy.pick_device(None)
    if not _is_int(device_index) or device_index < 0:
        raise _err(f"device_index must be a non-negative integer or None, got {device_index!r}")
    try:
        return policy.pick_device(torch.device("cuda", int(device_index)))
    except policy.DeviceError as e:
        hint = "; leave device_index=None to run on the CPU" if not torch.cuda.is_available() else ""
        raise _err(f"device_index={device_index} requests CUDA, but {e}{hint}") from None


def _check_source(net: Any, source: str) -> None:
    """Refuse a source the model has no network for, naming the model and the sources it has."""
    have = tuple(getattr(net, "sources", ("any",)))
    if source not in have:
        stem = os.path.splitext(os.path.basename(net.metadata.get("source") or ""))[0]
        what = f"{stem} ({net.config.name})" if stem else f"of config {net.config.name}"
        raise _err(f"source={source!r}: model {what} has no network for {source} sources "
                   f"(it has: {', '.join(have)}); use source={have[0]!r} or a model made for {source} sources")


def _guess_source(clip: vs.VideoNode, net: Any) -> str:
    """source="auto": the network the clip needs, from frames spread over it (as the CLI decides
    a file; `gendrpix_video.damage.guess_source`). Decided once, when the filter is made."""
    sources = tuple(getattr(net, "sources", ("any",)))
    if "clean" not in sources:
        return "any"
    picks = sorted({min(clip.num_frames - 1, int((k + 0.5) * clip.num_frames / GUESS_FRAMES))
                    for k in range(GUESS_FRAMES)})
    frames = []
    for n in picks:
        with clip.get_frame(n) as f:
            frames.append(torch.from_numpy(np.stack([np.asarray(f[p], dtype=np.float32) for p in range(3)])))
    return guess_source(frames, sources).source


def _get_model(model: Any, device_index: Any, dtype: Any) -> Any:
    """Return a ready model; its ``.device``/``.dtype`` decide where inference runs."""
    want_dtype = _parse_dtype(dtype)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
            raise _err(
                "model must be None, a weights name/path, or a model from "
                f"gendrpix_video.build_model/load_model, got {type(model).__name__}"
            )
        dev = torch.device(model.device)
        if device_index is not None:
            want = _pick_device(device_index)
            if dev != want:
                raise _err(f"model is on {dev} but device_index={device_index} asks for {want}")
        if want_dtype is not None and want_dtype != model.dtype:
            raise _err(f"model is {model.dtype} but dtype={want_dtype} was requested")
        return model

    device = _pick_device(device_index)
    want_dtype = want_dtype or policy.inference_dtype(device)
    path = None if model is None else os.fspath(model)
    shipped = [m.name for m in list_models()]
    if path is not None and path not in shipped and not path.endswith(".safetensors") and os.sep not in path:
        raise _err(f"unknown model {path!r}: shipped models are {', '.join(shipped) or 'none'}, "
                   "or give a .safetensors path")
    key = (str(path), str(device), str(want_dtype))
    with _MODEL_CACHE_LOCK:
        cached = _MODEL_CACHE.get(key)
        if cached is not None:
            return cached
        try:
            loaded = load_model(path, device=device, dtype=want_dtype)
        except (WeightsError, OSError, ValueError, KeyError, RuntimeError) as e:
            raise _err(f"cannot load model {path!r}: {e}") from e
        _MODEL_CACHE[key] = loaded
        return loaded


# ----------------------------------------------------------------------------- runtime


class _Entry:
    __slots__ = ("done", "result", "error", "served")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.served: set[int] = set()


class _Runner:
    """Restores runs of frames on the device; caches finished runs until all their frames are served.

    Run ``k`` is frames ``[k*U, (k+1)*U)`` (``U = unit``, a multiple of ``batch_size``), led in
    by ``lead`` frames before it, restored ``batch_size`` frames at a time."""

    def __init__(
        self,
        model: Any,
        *,
        num_frames: int,
        batch_size: int,
        unit: int,
        num_streams: int,
        out_size: tuple[int, int],
        np_dtype: np.dtype,
        detail: float,
        seed: int,
        source: str,
        grid: str = "fixed",
        temporal: float = 0.0,
        supersample: float = 1.0,
    ) -> None:
        self.model = model
        self.device = torch.device(model.device)
        self.cuda = self.device.type == "cuda"
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.unit = unit
        self.out_w, self.out_h = out_size
        self.np_dtype = np.dtype(np_dtype)
        self.t_dtype = torch.float16 if self.np_dtype == np.float16 else torch.float32
        self.detail = float(detail)
        self.seed = int(seed)
        self.source = source
        self.grid = grid
        self.temporal = float(temporal)
        self.supersample = float(supersample)
        self.lead = LEAD if self.temporal else 0

        # The device work runs on num_streams persistent worker threads, each with its own CUDA stream.
        # Persistent threads matter: cuDNN handles and autotuning results are kept per thread, so
        # running the network on ever-changing VapourSynth worker threads would re-tune again and again.
        # Run k always runs on worker k % num_streams, so a frame asked for again (a preview
        # scrubbing back) runs the kernels it ran the first time.
        self.workers = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gendrpix{i}")
                        for i in range(num_streams)]
        self._local = threading.local()

        self.lock = threading.Lock()
        self.cache: OrderedDict[int, _Entry] = OrderedDict()
        # finished runs wait here for their frames' requests; long runs hold more output frames each
        self.max_entries = 2 * num_streams + (6 if unit == batch_size else 2)
        # Runs started ahead of their first request (`prefetch`): in-order playback asks for fewer
        # frames at once (`core.num_threads`) than a run holds, so without it one run is restored
        # at a time. Runs served in full are remembered, so a seek back does not restore the next
        # one again.
        self.ahead = ThreadPoolExecutor(max_workers=num_streams, thread_name_prefix="gendrpix-ahead")
        self.served_runs: OrderedDict[int, None] = OrderedDict()

    # -- device work (called by the one thread that owns a run) --
    def _run(self, k: int, frames: list[vs.VideoFrame]) -> torch.Tensor:
        """Run k: count x 3 x H x W in the clip's dtype, on the model's device (finished when
        returned); with the temporal filter `frames` starts with the lead-in, which is dropped.
        Each batch's motion is estimated and its frames copied into (pinned) host memory in this
        VapourSynth thread while the worker restores the batch before."""
        follower = None
        if self.grid == "follow" or self.temporal:
            # the grid follows the picture from the run's first frame and starts again at the next
            # run, so a frame comes out the same whichever order frames are asked for
            follower = GridFollower((self.out_h / frames[0].height, self.out_w / frames[0].width))
        state = _RunState(self, len(frames) - self.lead, frames[0].height, frames[0].width)
        worker = self.workers[k % len(self.workers)]
        pending = None
        for start in range(0, len(frames), self.batch_size):
            part = frames[start:start + self.batch_size]
            motions = [follower.track(_luma_window(f)) for f in part] if follower else None
            host_in = torch.empty((len(part), 3, part[0].height, part[0].width), dtype=self.t_dtype,
                                  pin_memory=self.cuda)
            view = host_in.numpy()
            for i, f in enumerate(part):
                for p in range(3):
                    np.copyto(view[i, p], np.asarray(f[p]))
            if pending is not None:
                pending.result()  # waiting on the future releases the GIL
            pending = worker.submit(self._device_work, state, host_in, start, motions)
        pending.result()
        return state.out

    def _device_work(self, state: "_RunState", host_in: torch.Tensor, start: int, motions=None) -> None:
        with torch.inference_mode():
            if not self.cuda:
                state.take(start, self._infer(host_in, motions), motions)
                return
            with self._own_stream() as stream:
                x = host_in.to(self.device, non_blocking=True)
                state.take(start, self._infer(x, motions), motions)
                stream.synchronize()  # releases the GIL while the GPU works; host_in is free after

    @contextlib.contextmanager
    def _own_stream(self):
        """Run on this thread's own CUDA stream (worker threads: inference; VapourSynth threads:
        copies); no-op on the CPU."""
        if not self.cuda:
            yield None
            return
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.device)
        with torch.cuda.device(self.device), torch.cuda.stream(stream):
            yield stream

    def write(self, result: torch.Tensor, frame: vs.VideoFrame) -> None:
        """Copy one 3 x H x W result into a writable VapourSynth frame (in the caller's thread).

        From CUDA this is a plain device-to-host copy straight into the frame's memory, on a stream of
        the calling thread; it returns when done and releases the GIL meanwhile, so the frames of a
        run are copied out in parallel.  No pinned staging buffers are held between runs.
        """
        with torch.inference_mode(), self._own_stream():
            for p in range(3):
                torch.from_numpy(np.asarray(frame[p])).copy_(result[p])

    def _infer(self, x: torch.Tensor, motions=None) -> torch.Tensor:
        """One batch restored; restore works in the model's dtype and returns [0, 1] in the dtype
        of its input (the clip's)."""
        positions = [m.position for m in motions] if motions and self.grid == "follow" else None
        return restore_any_scale(self.model, x.clamp_(0.0, 1.0), (self.out_h, self.out_w), self.detail, self.seed,
                                 source=self.source, positions=positions, supersample=self.supersample)

    # -- cache --
    def _count(self, k: int) -> int:
        return min(self.unit, self.num_frames - k * self.unit)

    def _claim(self, k: int) -> tuple[_Entry, bool]:
        """Run k's cache entry, and whether the caller made it (and so must fill it)."""
        with self.lock:
            entry = self.cache.get(k)
            if entry is not None:
                self.cache.move_to_end(k)
                return entry, False
            entry = self.cache[k] = _Entry()
            while len(self.cache) > self.max_entries:
                self.cache.popitem(last=False)
            return entry, True

    def _fill(self, k: int, entry: _Entry, frames: list[vs.VideoFrame]) -> None:
        try:
            entry.result = self._run(k, frames[: self.lead + self._count(k)])
        except BaseException as e:  # noqa: BLE001 - handed to waiting threads
            entry.error = e
            with self.lock:
                if self.cache.get(k) is entry:
                    del self.cache[k]
        finally:
            entry.done.set()

    def prefetch(self, k: int, frames: list[vs.VideoFrame]) -> None:
        """Start restoring run ``k`` from ``frames`` (as `get` takes them) on a background thread,
        unless it is cached, being restored, served in full lately, or past the clip's end."""
        if k * self.unit >= self.num_frames:
            return
        with self.lock:
            if k in self.served_runs:
                return
        entry, owner = self._claim(k)
        if owner:
            self.ahead.submit(self._fill, k, entry, frames)

    def get(self, n: int, frames: list[vs.VideoFrame]) -> torch.Tensor:
        """Output of frame ``n`` as a 3 x H x W array; ``frames`` = the frames of n's run (after
        the lead-in's, with the temporal filter)."""
        k, j = divmod(n, self.unit)
        count = self._count(k)
        entry, owner = self._claim(k)
        if owner:
            self._fill(k, entry, frames)
        else:
            entry.done.wait()
        if entry.error is not None:
            e = entry.error
            if isinstance(e, vs.Error):
                raise e
            first = k * self.unit
            raise _err(f"inference failed on frames {first}-{first + count - 1}: {type(e).__name__}: {e}") from e
        with self.lock:
            entry.served.add(j)
            if len(entry.served) >= count and self.cache.get(k) is entry:
                del self.cache[k]
                self.served_runs[k] = None
                while len(self.served_runs) > self.max_entries:
                    self.served_runs.popitem(last=False)
        return entry.result[j]


def _luma_window(frame: vs.VideoFrame) -> np.ndarray:
    """The luma of the central window the motion estimate reads (`motion.central_window`)."""
    planes = np.stack([central_window(np.asarray(frame[p])) for p in range(3)])
    return np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), planes, axes=([0], [0]))


class _RunState:
    """One run's output on the device, filled batch by batch on its worker thread, and its
    temporal filter, which carries from one batch of the run to the next."""

    def __init__(self, runner: _Runner, count: int, h: int, w: int) -> None:
        self.lead = runner.lead
        self.scale = (runner.out_h / h, runner.out_w / w)
        self.steady = TemporalFilter(runner.temporal) if runner.temporal else None
        self.out = torch.empty((count, 3, runner.out_h, runner.out_w), dtype=runner.t_dtype, device=runner.device)

    def take(self, start: int, y: torch.Tensor, motions) -> None:
        """Batch output `y` of the run's frames from `start` (lead-in included)."""
        for i, frame in enumerate(y):
            if self.steady is not None:
                frame = self.steady(frame.float(), motions[i].step_out(self.scale)).to(y.dtype)
            if start + i >= self.lead:
                self.out[start + i - self.lead].copy_(frame)


def _copy_props(dst: vs.VideoFrame, src: vs.VideoFrame, sar_factor: Fraction) -> None:
    props = dst.props
    props.clear()
    for key, value in src.props.items():
        props[key] = value
    if sar_factor != 1:
        num, den = props.get("_SARNum"), props.get("_SARDen")
        if _is_int(num) and _is_int(den) and num > 0 and den > 0:
            sar = Fraction(num, den) * sar_factor
            props["_SARNum"] = sar.numerator
            props["_SARDen"] = sar.denominator


# ----------------------------------------------------------------------------- public


def gendrpix(
    clip: vs.VideoNode,
    scale: float | None = None,
    width: int | None = None,
    height: int | None = None,
    detail: float | None = None,
    seed: int = 0,
    batch_size: int = 1,
    num_streams: int = 1,
    device_index: int | None = None,
    model: Any = None,
    dtype: Any = None,
    source: str = AUTO,
    grid: str = "follow",
    temporal: float = DEFAULT_STRENGTH,
    span: int = SPAN,
    supersample: float = 1.0,
) -> vs.VideoNode:
    """Restore / upscale a clip with GenDR-Pix.

    :param clip:         RGBH (fp16) or RGBS (fp32) clip of constant size; output has the same format.
    :param scale:        Output size as a factor of the input size (default 2 when no size is given).
    :param width:        Output width.  With only ``width`` or only ``height`` the aspect ratio is kept.
    :param height:       Output height.
    :param detail:       PadCFG guidance scale (1.0 or 0 = one pass; other values run two branches);
                         None = the model's own default (from its weights file).
    :param seed:         Fixes the PadCFG offsets for the whole clip.
    :param batch_size:   Frames sent to the device together.
    :param num_streams:  CUDA streams: runs of frames (``span``) restored concurrently.
    :param device_index: CUDA device; None = CUDA if available, else CPU.
    :param model:        None (the shipped default), a name from ``gendrpix_video.list_models()``,
                         a weights path for ``load_model``,
                         or a model from ``gendrpix_video.build_model``/``load_model``.
    :param dtype:        Inference dtype ("bf16", "fp16", "fp32" or a torch dtype);
                         default bf16 (fp16 without bf16 support) on CUDA, fp32 on CPU.
    :param source:       What the clip is: "auto" (the default: guessed once, from 8 frames spread over
                         the clip, when the filter is made), "any" (may be noisy or compressed; the model
                         removes that damage) or "clean" (a clean master, e.g. camera originals or
                         lossless/ProRes intermediates: sharpened more, no noise or compression removed;
                         needs a model with a network for clean sources, ``model.sources``; the shipped
                         default has one).
    :param grid:         "follow" (the default, as the CLI): the x8 grid moves with the picture
                         (camera motion estimated frame to frame), so texture stays on the objects
                         in pans; "fixed": the grid stays on the frame.
    :param temporal:     The temporal filter's strength, 0 to 0.95 (default 0.7, as the CLI): each
                         restored frame is blended with the one before, moved with the picture,
                         where the two agree, so the texture the model draws does not shimmer;
                         0: every frame on its own.
    :param span:         With ``grid="follow"`` or ``temporal > 0``: frames ``[k*S, (k+1)*S)`` (``S``
                         = ``span`` rounded up to a multiple of ``batch_size``) are restored together,
                         the grid following and the filter running through them, led in by the two
                         frames before (restored and dropped: ``2 / S`` more work), so any request
                         order gives the same frames. Longer is steadier; shorter seeks faster.
    :param supersample:  1 (the default) to 2: the model restores to that much more than the
                         output (up to its largest scale, x4) and the result is shrunk to the
                         output size (bicubic, antialiased), for that squared more work: below x4
                         the network then gives each input pixel more care (as ``--supersample``).
    """
    clip = _check_clip(clip)
    out_w, out_h = _output_size(clip.width, clip.height, scale, width, height)

    if not _is_int(batch_size) or batch_size < 1:
        raise _err(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not _is_int(num_streams) or num_streams < 1:
        raise _err(f"num_streams must be an integer >= 1, got {num_streams!r}")
    if detail is not None and (not _is_real(detail) or not math.isfinite(detail) or detail < 0):
        raise _err(f"detail must be a finite number >= 0, got {detail!r}")
    if not _is_int(seed):
        raise _err(f"seed must be an integer, got {seed!r}")
    if not isinstance(source, str) or source not in SOURCE_CHOICES:
        raise _err(f"source must be one of {', '.join(map(repr, SOURCE_CHOICES))}, got {source!r}")
    if not isinstance(grid, str) or grid not in ("fixed", "follow"):
        raise _err(f"grid must be 'fixed' or 'follow', got {grid!r}")
    try:
        supersample = policy.check_supersample(supersample)
    except ValueError as e:
        raise _err(str(e)) from None
    if not _is_int(span) or span < 1:
        raise _err(f"span must be an integer >= 1, got {span!r}")
    if not _is_real(temporal) or not math.isfinite(temporal):
        raise _err(f"temporal must be a number between 0 and 0.95, got {temporal!r}")
    try:
        check_strength(temporal)
    except ValueError:
        raise _err(f"temporal must be a number between 0 and 0.95, got {temporal!r}") from None

    net = _get_model(model, device_index, dtype)
    source = _guess_source(clip, net) if source == AUTO else source
    _check_source(net, source)
    if torch.device(net.device).type == "cuda":
        policy.cuda_ready()

    why = policy.outside_scale_range(net, (clip.height, clip.width), (out_h, out_w))
    if why:
        raise _err(f"{clip.width}x{clip.height} -> {out_w}x{out_h} is {why}")

    batch_size = int(min(batch_size, clip.num_frames))
    unit = batch_size  # frame by frame: a run is a batch
    if grid == "follow" or temporal:
        whole = -(-clip.num_frames // batch_size) * batch_size
        unit = min(-(-int(span) // batch_size) * batch_size, whole)
    runner = _Runner(
        net,
        num_frames=clip.num_frames,
        batch_size=batch_size,
        unit=unit,
        num_streams=int(num_streams),
        out_size=(out_w, out_h),
        np_dtype=np.float16 if clip.format.id == vs.RGBH else np.float32,
        detail=policy.resolve_detail(net, detail, source),
        seed=int(seed),
        source=source,
        grid=grid,
        temporal=float(temporal),
        supersample=supersample,
    )
    sar_factor = Fraction(clip.width * out_h, out_w * clip.height)

    core = vs.core
    src = clip
    pad = (-clip.num_frames) % unit
    if pad:
        src = src + src[-1] * pad
    def every(c: vs.VideoNode, offset: int) -> vs.VideoNode:
        """Frame n -> c's frame (n // U) * U + offset."""
        return c if unit == 1 else core.std.SelectEvery(c, cycle=unit, offsets=[offset] * unit,
                                                        modify_duration=False)

    def run_slots(run_src: vs.VideoNode, early: vs.VideoNode) -> list[vs.VideoNode]:
        # lead-in slot i: frame n -> source frame (n // U) * U - lead + i (`early`: the clip led
        # by copies of frame 0); slot j: frame n -> source frame (n // U) * U + j
        return ([every(early[i:], 0) for i in range(runner.lead)]
                + [every(run_src, j) for j in range(unit)])

    early = src[0] * runner.lead + src if runner.lead else src
    slots = run_slots(src, early)
    ahead = []
    if batch_size < unit < src.num_frames:
        # Runs of several batches: every frame of run k also brings run k + 1's frames (the same
        # slots over the clip moved on by U; past the end, the last frame), so that run starts
        # while run k is served.
        def moved(c: vs.VideoNode) -> vs.VideoNode:
            return c[unit:] + c[-1] * unit
        ahead = run_slots(moved(src), moved(early))
    width = len(slots)
    blank = core.std.BlankClip(src, width=out_w, height=out_h, keep=True)

    def _process(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        run = f[1:1 + width]
        if ahead:
            runner.prefetch(n // unit + 1, f[1 + width:])
        result = runner.get(n, run)
        fout = f[0].copy()
        runner.write(result, fout)
        _copy_props(fout, run[runner.lead + n % unit], sar_factor)
        return fout

    # One std.ModifyFrame instance runs its Python callbacks one at a time, so a fresh instance is
    # made per frame through FrameEval: callbacks of different frames then run concurrently (a run
    # is still computed once, see _Runner.get) and no callback ever waits on a queued one.
    inputs = [blank, *slots, *ahead]
    out = core.std.FrameEval(
        blank, lambda n: core.std.ModifyFrame(blank, inputs, _process), clip_src=inputs
    )
    if pad:
        out = out[: clip.num_frames]
    return out
