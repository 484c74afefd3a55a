"""Is a clip damaged (noise, compression artefacts) or a clean master? What `--source auto` asks.

A model with a network for clean sources restores clean input better than its default network
(which removes noise and compression, and on clean input removes detail with them), and damaged
input worse. `guess_source` picks one for a whole clip from a few of its frames: a small CNN on
luma (`DamageNet`, shipped as `weights/detectors/damage.safetensors`, made by
`training/damage_fit.py` from the training photos) scores every pixel neighbourhood for damage;
the scores are averaged over windows of the frames, and over `threshold` the clip is damaged.
One choice per clip, never per frame: switching networks between frames would flicker.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DETECTOR = Path(__file__).with_name("weights") / "detectors" / "damage.safetensors"
LUMA = (0.299, 0.587, 0.114)  # BT.601 weights, as the metrics' Y
GUESS_FRAMES = 8              # frames a clip's guess looks at, spread over the clip
TILE, TILE_GRID = 256, (2, 3)  # each frame is scored on 6 windows of 256 px (a 4K frame whole takes seconds)
FLAT_LEVELS = 2.0             # windows whose luma varies less (8-bit levels, std) are not scored
HIGH_PASS_GAIN = 16.0        # the detail input's scale: a level of noise becomes ~0.06
AUTO = "auto"
# What a user may say of a clip: one of the model's sources, or "auto" (guess it per clip).
SOURCE_CHOICES = (AUTO, "any", "clean")


class DamageNet(nn.Module):
    """Luma (N x 1 x H x W in [0, 1]) -> a damage logit map at 1/4 resolution. Fully convolutional,
    so it runs on any frame size; its receptive field (~30 px) spans a few codec blocks."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = w = width

        def conv(i, o, k=3, stride=1):  # batch-normed: the net learns in minutes on a CPU
            return [nn.Conv2d(i, o, k, stride=stride, padding=1), nn.BatchNorm2d(o), nn.ReLU()]

        self.body = nn.Sequential(*conv(2, w), *conv(w, w), *conv(w, 2 * w, 4, 2), *conv(2 * w, 2 * w),
                                  *conv(2 * w, 2 * w, 4, 2), *conv(2 * w, 2 * w), nn.Conv2d(2 * w, 1, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # The picture, centred (the score should not follow brightness), and its finest detail
        # magnified: noise and codec artefacts live there, a few levels in size, which a net
        # fed the picture alone is slow to find.
        fine = y - F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, 1)
        return self.body(torch.cat([y - y.mean(dim=(-2, -1), keepdim=True), HIGH_PASS_GAIN * fine], 1))

    def score(self, y: torch.Tensor) -> torch.Tensor:
        """One logit per image: the mean of its map."""
        return self.forward(y).mean(dim=(1, 2, 3))


@dataclass(frozen=True)
class SourceGuess:
    source: str          # "any" (damaged: the network that removes damage) or "clean"
    damage: float        # the clip's mean damage probability, 0-1
    frames: int          # frames looked at

    def describe(self) -> str:
        return f"{self.source} (auto: damage {self.damage:.2f} over {self.frames} frames)"


@functools.lru_cache(maxsize=1)
def load_detector(path: str | None = None) -> tuple[DamageNet, float]:
    """The shipped detector (safetensors only) and its threshold on the damage probability."""
    from safetensors import safe_open

    p = Path(path) if path else DETECTOR
    with safe_open(str(p), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    net = DamageNet(int(meta.get("width", 16)))
    net.load_state_dict(state)
    return net.eval(), float(json.loads(meta.get("threshold", "0.5")))


def luma(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """H x W x 3 uint8 (a decoded frame) or 3 x H x W float in [0, 1] -> 1 x 1 x H x W float luma."""
    if isinstance(rgb, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255
    else:
        x = rgb.detach().float().cpu()
    w = torch.tensor(LUMA, dtype=x.dtype).view(3, 1, 1)
    return (x[:3] * w).sum(0)[None, None]


def trim_bars(y: torch.Tensor) -> torch.Tensor:
    """1 x 1 x H x W luma without the flat rows and columns at its edges (letterbox or pillarbox
    bars): windows half on a bar would judge the bar."""
    rows = y[0, 0].std(dim=1) * 255 >= FLAT_LEVELS
    cols = y[0, 0].std(dim=0) * 255 >= FLAT_LEVELS
    if not rows.any() or not cols.any():
        return y
    r, c = rows.nonzero()[:, 0], cols.nonzero()[:, 0]
    return y[..., int(r[0]):int(r[-1]) + 1, int(c[0]):int(c[-1]) + 1]


def tiles(y: torch.Tensor, size: int = TILE, grid: tuple[int, int] = TILE_GRID) -> torch.Tensor:
    """Up to rows x columns windows of `size` spread evenly over 1 x 1 x H x W `y` (the frame
    itself when it is smaller): N x 1 x size x size. A 4K frame costs what a few crops cost."""
    h, w = y.shape[-2:]
    if h <= size and w <= size:
        return y
    th, tw = min(size, h), min(size, w)
    rows = [round(k * (h - th) / max(1, grid[0] - 1)) for k in range(grid[0])] if h > th else [0]
    cols = [round(k * (w - tw) / max(1, grid[1] - 1)) for k in range(grid[1])] if w > tw else [0]
    return torch.cat([y[..., r:r + th, c:c + tw] for r in sorted(set(rows)) for c in sorted(set(cols))])


def damage_probability(frames, net: DamageNet | None = None) -> tuple[float, int]:
    """(the mean damage probability over the frames' tiles, frames scored) of `frames` (see `luma`
    for their forms), by `net` (default: the shipped detector)."""
    net = net or load_detector()[0]
    probs, n = [], 0
    with torch.inference_mode():
        for f in frames:
            y = trim_bars(luma(f))
            if min(y.shape[-2:]) < 16:
                continue
            t = tiles(y)
            # A window with nothing in it (letterbox bars, a fade to black) says nothing of damage.
            t = t[t.flatten(1).std(dim=1) * 255 >= FLAT_LEVELS]
            if len(t):
                probs += torch.sigmoid(net.score(t)).tolist()
                n += 1
    return (float(np.mean(probs)) if probs else 1.0), n


def guess_source(frames, sources=("any", "clean")) -> SourceGuess:
    """Which of a model's networks (`sources`) a clip needs, from some of its frames. A model
    without a clean network, or no frame to look at, gives "any": it is right for damaged input
    and safe for clean input."""
    if "clean" not in sources:
        return SourceGuess("any", float("nan"), 0)
    p, n = damage_probability(frames)
    _, threshold = load_detector()
    return SourceGuess("clean" if n and p < threshold else "any", p, n)
