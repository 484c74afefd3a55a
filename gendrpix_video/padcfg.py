"""PadCFG: classifier-free guidance and a self-ensemble in one, over two phases of the x8 grid.

    y = w * crop(G(pad(x, p_pos), c_pos)) + (1 - w) * crop(G(pad(x, p_neg), c_neg))

Both branches run as one batch. `w` (the user's "detail") = 1 runs the c_pos branch alone and
w = 0 the c_neg branch alone (one pass each); None is the model's own default (`default_detail`, from
its weights file: the setting it was tuned for).
The phases come from the seed and stay fixed for a whole clip, so every frame sees the same grid,
unless the caller gives each frame's position (`motion.GridFollower`): then the grid moves with the
content.
"""

from __future__ import annotations

import functools
import math
import random

import torch
import torch.nn.functional as F

from .configs import SHUFFLE
from .model import NEG, POS, GenDRPix
from .policy import resolve_detail, run_size, scale_range

Pad = tuple[int, int, int, int]  # left, right, top, bottom (F.pad order)


def grid_phases(seed: int = 0) -> tuple[Pad, Pad]:
    """(positive, negative) paddings. Seed 0 is the paper's (4,4,4,4) and (3,5,3,5); another seed
    picks another phase for c_pos and the phase one pixel up-left of it for c_neg."""
    if seed == 0:
        p, q = 4, 4
    else:
        rng = random.Random(seed)
        p, q = rng.randrange(SHUFFLE), rng.randrange(SHUFFLE)
    pn, qn = (p - 1) % SHUFFLE, (q - 1) % SHUFFLE
    return (p, SHUFFLE - p, q, SHUFFLE - q), (pn, SHUFFLE - pn, qn, SHUFFLE - qn)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic to the target size on x's device (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink)


def pad_to_grid(x: torch.Tensor, phase: Pad, mode: str) -> torch.Tensor:
    """Pad by `phase`, plus whatever right/bottom margin reaches a multiple of 8."""
    h, w = x.shape[-2:]
    l, r, t, b = phase
    r += -(w + l + r) % SHUFFLE
    b += -(h + t + b) % SHUFFLE
    if mode == "reflect" and (max(l, r) >= w or max(t, b) >= h):
        mode = "replicate"  # reflect needs a pad smaller than the image
    return F.pad(x, (l, r, t, b), mode=mode)


def input_grid(lr_hw: tuple[int, int], size: tuple[int, int], device=None, dtype=None) -> torch.Tensor:
    """1 x 4 x H x W: where each pixel of the `size` upscale lies on the `lr_hw` input's pixel grid,
    as sin and cos of its input coordinate (y, then x; bicubic's half-pixel centres), one period
    an input pixel. Padded like the image (reflect mirrors both alike)."""
    planes = []
    for n_in, n_out in zip(lr_hw, size):
        u = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
        planes += [torch.sin(2 * math.pi * u), torch.cos(2 * math.pi * u)]
    (sy, cy), (sx, cx) = planes[:2], planes[2:]
    h, w = size
    grid = torch.stack([sy[:, None].expand(h, w), cy[:, None].expand(h, w),
                        sx[None, :].expand(h, w), cx[None, :].expand(h, w)])
    return grid[None].to(dtype or torch.float32)


def upscale_factor(lr_hw: tuple[int, int], size: tuple[int, int]) -> float:
    """One number for an upscale from `lr_hw` to `size`: the geometric mean of the two axes' (an
    anamorphic 720x480 -> 3840x2160 is 5.33 x 4.5 -> 4.9)."""
    return math.sqrt(size[0] / lr_hw[0] * size[1] / lr_hw[1])


@functools.lru_cache(maxsize=8)  # a clip asks for the same planes every frame: made once
def _padded_grid(lr_hw, size, phase: Pad, mode: str, device, dtype) -> torch.Tensor:
    return pad_to_grid(input_grid(lr_hw, size, device, dtype), phase, mode)


def model_inputs(model: GenDRPix, lr_hw: tuple[int, int], size: tuple[int, int], phases: list[Pad],
                 n: int) -> tuple[torch.Tensor | None, float | None]:
    """What the model takes besides the image for `n` frames on each of `phases` (batched in that
    order): the input-grid planes (`lr_grid` configs) and the upscale factor (`scale_embed`
    configs); None where the config has none."""
    grid = scale = None
    if model.config.lr_grid:
        planes = [_padded_grid(lr_hw, size, p, model.config.pad_mode, model.device, model.dtype)
                  .expand(n, -1, -1, -1) for p in phases]  # cached: expand, never modify
        grid = planes[0] if len(planes) == 1 else torch.cat(planes)
    if model.config.scale_embed:
        scale = upscale_factor(lr_hw, size)
    return grid, scale


def run_padded(model: GenDRPix, x_up: torch.Tensor, phase: Pad, ctx: torch.Tensor | None = None,
               lr_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """The network on `x_up` (the bicubic upscale of an `lr_hw` input) padded by `phase`, cropped back."""
    size = tuple(x_up.shape[-2:])
    grid, scale = model_inputs(model, tuple(lr_hw or size), size, [phase], 1)
    return crop(model(pad_to_grid(x_up, phase, model.config.pad_mode), ctx, grid, scale), phase, size)


def crop(y: torch.Tensor, phase: Pad, size: tuple[int, int]) -> torch.Tensor:
    l, _, t, _ = phase
    return y[..., t:t + size[0], l:l + size[1]]


def check_frames(frames) -> None:
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be N x 3 x h x w RGB, got shape {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise TypeError(f"frames must be float in [0, 1], got {frames.dtype}")


def followed_phases(seed: int, positions, lr_hw: tuple[int, int], size: tuple[int, int]) -> list[tuple[Pad, Pad]]:
    """(positive, negative) paddings of each frame whose content sits at `positions` ((y, x) in
    input pixels, `motion.GridFollower`): the seed's phases moved with the content, rounded to
    output pixels, so the grid stays on the same part of the picture."""
    (p, _, q, _), (pn, _, qn, _) = grid_phases(seed)
    sy, sx = size[0] / lr_hw[0], size[1] / lr_hw[1]
    out = []
    for y, x in positions:
        # Content moved right by d output pixels: the grid's lines move right too (less left padding).
        dx, dy = round(x * sx), round(y * sy)
        a, b, c, d = (p - dx) % SHUFFLE, (q - dy) % SHUFFLE, (pn - dx) % SHUFFLE, (qn - dy) % SHUFFLE
        out.append(((a, SHUFFLE - a, b, SHUFFLE - b), (c, SHUFFLE - c, d, SHUFFLE - d)))
    return out


def _pad_each(x: torch.Tensor, phases: list[Pad], mode: str) -> torch.Tensor:
    """Frame i of `x` padded by phases[i] (every phase pads 8 in all: one size)."""
    if len(set(phases)) == 1:
        return pad_to_grid(x, phases[0], mode)
    return torch.cat([pad_to_grid(x[i:i + 1], ph, mode) for i, ph in enumerate(phases)])


def _crop_each(y: torch.Tensor, phases: list[Pad], size: tuple[int, int]) -> torch.Tensor:
    if len(set(phases)) == 1:
        return crop(y, phases[0], size)
    return torch.cat([crop(y[i:i + 1], ph, size) for i, ph in enumerate(phases)])


@torch.inference_mode()
def restore(model: GenDRPix, frames: torch.Tensor, size: tuple[int, int], detail: float | None = None,
            seed: int = 0, source: str = "any", positions=None) -> torch.Tensor:
    """Restore `frames` (N x 3 x h x w, float RGB in [0, 1], any device) to N x 3 x H x W.

    `detail` None is the model's `default_detail`. `source` "clean" (models with a network for
    clean sources, `model.sources`) restores a clip known to carry no noise or compression: sharper, but
    damage is kept. `positions`, for consecutive frames of a clip, (y, x) of each frame's content
    in input pixels (`motion.GridFollower`): the x8 grid moves with the content, which keeps
    texture steady in pans; None keeps the grid fixed to the frame. The result is in [0, 1], on
    the device and in the dtype of `frames`.
    """
    check_frames(frames)
    model, off = model.for_source(source)
    size = (int(size[0]), int(size[1]))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"size must be positive, got {size}")
    if positions is not None and len(positions) != frames.shape[0]:
        raise ValueError(f"positions: one (y, x) a frame, got {len(positions)} for {frames.shape[0]} frames")
    detail = resolve_detail(model, detail, source)
    x = frames.to(model.device, non_blocking=True)
    # Resize in at least fp32 where the device has no fast half bicubic (CPU), then the model dtype.
    work = model.dtype if x.is_cuda else torch.float32
    x_up = resize(x.to(work), size).to(model.dtype)
    lr_hw = tuple(x.shape[-2:])
    n = x_up.shape[0]
    pairs = (followed_phases(seed, positions, lr_hw, size) if positions is not None
             else [grid_phases(seed)] * n)
    pos, neg = [p for p, _ in pairs], [q for _, q in pairs]
    # detail 1 and 0 run one branch (one pass); any other detail, above 1 too, both in one batch:
    # one launch of every layer for the pair.
    parts = ([(1.0, pos, POS)] if detail == 1.0 else [(1.0, neg, NEG)] if detail == 0.0
             else [(detail, pos, POS), (1 - detail, neg, NEG)])
    mode = model.config.pad_mode
    padded = [_pad_each(x_up, ph, mode) for _, ph, _ in parts]
    batch = padded[0] if len(padded) == 1 else torch.cat(padded)
    ctx = (None if len(parts) == 1 and parts[0][2] == POS and not off
           else torch.tensor([c + off for _, _, c in parts for _ in range(n)], device=model.device))
    if all(len(set(ph)) == 1 for _, ph, _ in parts):  # one phase a branch: planes made once, expanded
        extra = model_inputs(model, lr_hw, size, [ph[0] for _, ph, _ in parts], n)
    else:
        extra = model_inputs(model, lr_hw, size, [p for _, ph, _ in parts for p in ph], 1)
    out = model(batch, ctx, *extra)
    y = parts[0][0] * _crop_each(out[:n], parts[0][1], size)
    if len(parts) == 2:
        y = y + parts[1][0] * _crop_each(out[n:], parts[1][1], size)
    if model.refine is not None and model.refine_strength:
        # a frame at a time: its full-resolution activations are the largest tensors of a restore
        for i in range(n):
            y[i:i + 1] = model.refine(y[i:i + 1], x_up[i:i + 1], model.refine_strength)
    # A device-to-host copy must complete before the caller reads it: blocking there.
    return y.clamp_(0, 1).to(frames.device, frames.dtype, non_blocking=frames.device == y.device)


def restore_any_scale(model: GenDRPix, frames: torch.Tensor, size: tuple[int, int], detail: float | None = None,
                      seed: int = 0, source: str = "any", positions=None, supersample: float = 1.0) -> torch.Tensor:
    """`restore` to `size` (H, W), resizing around the model when the scale lies outside its range:
    beyond it, restore at its largest scale and bicubic up; below it, shrink the input first.
    `supersample` k > 1: restore to k times the size (at most the model's largest scale,
    `policy.run_size`) and shrink the result to `size` (bicubic, antialiased)."""
    h, w = frames.shape[-2:]
    lo, hi = scale_range(model)
    s = max(size[0] / h, size[1] / w)
    beyond = s > hi * 1.0001
    if beyond:
        run = (round(h * hi), round(w * hi))
    else:
        if s < lo * 0.9999:
            pre = (max(1, round(size[0] / lo)), max(1, round(size[1] / lo)))
            frames = F.interpolate(frames, size=pre, mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
            if positions is not None:  # in the shrunk input's pixels
                positions = [(y * pre[0] / h, x * pre[1] / w) for y, x in positions]
        run = run_size(model, frames.shape[-2:], size, supersample)
    y = restore(model, frames, size=run, detail=detail, seed=seed, source=source, positions=positions)
    if tuple(run) == tuple(size):
        return y
    if beyond:
        return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
    # supersampled: shrunk in fp32 (half-precision antialiased resizing is missing on some devices)
    return F.interpolate(y.float(), size=size, mode="bicubic", align_corners=False,
                         antialias=True).clamp_(0, 1).to(y.dtype)
