"""Inference policy: the decisions every front end (CLI, VapourSynth filter, eval, grid, bench,
train) makes the same way, made here once.

- device: CUDA when present, else the CPU; asking for CUDA without it is an error, not a fallback.
- dtype: bf16 on CUDA (fp16 where the GPU has no bf16), fp32 on the CPU.
- CUDA flags: cuDNN autotuning and TF32, set once per process before the first frame.
- detail: None means the model's own `default_detail` (from its weights file).
- sizes: always (H, W), height first, as torch shapes are.
- passes: `unet_passes(detail)`, what a frame costs (the time estimate counts them).
- scale range: `padcfg.restore_any_scale` resizes around the model (a file job should finish);
  `outside_scale_range` says why a scale is out of range, for front ends that refuse it.
"""

from __future__ import annotations

import torch

from .model import DEFAULT_SCALE_RANGE, source_default_detail

Size = tuple[int, int]  # (H, W)


class DeviceError(RuntimeError):
    """A device was asked for that this machine does not have; the message is one line."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or CUDA (the current GPU) when present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"CUDA is not available ({why})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{dev} is out of range: {torch.cuda.device_count()} CUDA device(s) visible")
    return dev


def inference_dtype(device: torch.device) -> torch.dtype:
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cuda_ready() -> None:
    """Process-wide CUDA settings for inference: cuDNN autotuning (frame sizes are fixed per clip), TF32."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def resolve_detail(model, detail: float | None, source: str = "any") -> float:
    """`detail`, or when None the model's default for `source`: a source's network may carry its
    own (the weights' metadata `sources[SOURCE]["default_detail"]`), else `default_detail`."""
    if detail is not None:
        return float(detail)
    return source_default_detail(getattr(model, "metadata", None), source, getattr(model, "default_detail", 1.0))


def scale_range(model) -> tuple[float, float]:
    return tuple(getattr(model, "scale_range", DEFAULT_SCALE_RANGE))


def output_size(in_size: Size, *, scale: float | None = None, height: int | None = None,
                width: int | None = None, multiple: Size = (1, 1), aspect_multiple: int = 1) -> Size:
    """(H, W) of the output for input (h, w): a scale, an exact size, or one side keeping the
    aspect ratio. A side derived from the aspect ratio that is not a whole number rounds to a multiple
    of `aspect_multiple`; then both sides round to `multiple` (subsampled chroma needs it)."""
    h, w = in_size
    if scale is not None:
        H, W = round(h * scale), round(w * scale)
    elif height is not None and width is not None:
        H, W = int(height), int(width)
    elif height is not None:
        H, W = int(height), _aspect(w * height / h, aspect_multiple)
    elif width is not None:
        H, W = _aspect(h * width / w, aspect_multiple), int(width)
    else:
        raise ValueError("output_size needs a scale, a height or a width")
    my, mx = multiple
    return max(my, round(H / my) * my), max(mx, round(W / mx) * mx)


def _aspect(exact: float, m: int) -> int:
    if float(exact).is_integer():
        return int(exact)
    return max(m, m * round(exact / m))


def outside_scale_range(model, in_size: Size, out_size: Size) -> str | None:
    """Why `in_size` -> `out_size` lies outside the model's scale range, or None when it does not."""
    lo, hi = scale_range(model)
    sy, sx = out_size[0] / in_size[0], out_size[1] / in_size[1]
    if min(sx, sy) < lo - 1e-9 or max(sx, sy) > hi + 1e-9:
        return f"a scale of {sx:.3g}x{sy:.3g}; the model supports {lo:g}x to {hi:g}x"
    return None


SUPERSAMPLE_RANGE = (1.0, 2.0)


def check_supersample(k) -> float:
    """`k` as a float, or ValueError naming the range."""
    lo, hi = SUPERSAMPLE_RANGE
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not (lo <= float(k) <= hi):
        raise ValueError(f"supersample must be a number from {lo:g} to {hi:g}, got {k!r}")
    return float(k)


def run_size(model, in_size: Size, out_size: Size, supersample: float = 1.0) -> Size:
    """The size the model restores to for `in_size` -> `out_size` with `supersample` k: the output
    size times k, but no more than the model's largest scale allows (then downscaled to the
    output). The network's work grows with its output pixels, not its input's: at x2 each UNet
    position sees 4 input pixels, at x4 2, so a frame upscaled x2 restored x3 and shrunk back gets
    the care of an x3 upscale (`restore_any_scale`)."""
    if supersample <= 1.0:
        return tuple(out_size)
    _, hi = scale_range(model)
    k = min(float(supersample), hi * in_size[0] / out_size[0], hi * in_size[1] / out_size[1])
    if k <= 1.0:
        return tuple(out_size)
    return round(out_size[0] * k), round(out_size[1] * k)


def unet_passes(detail: float) -> int:
    """UNet passes a frame costs at this detail: 1 and 0 run one branch, anything else both."""
    return 1 if float(detail) in (0.0, 1.0) else 2


def describe_device(device: torch.device) -> str:
    """The device in plain words, saying so when the CPU runs for want of a GPU."""
    if device.type == "cuda":
        i = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(i)
        return f"CUDA GPU {i}: {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if device.type == "cpu":
        if not torch.cuda.is_available():
            return "CPU (no CUDA GPU found)"
        return "CPU (a CUDA GPU is present; --device cuda would use it)"
    return str(device)
