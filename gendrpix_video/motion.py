"""Camera motion between consecutive frames, so that the x8 grid moves with the picture.

The network works on 8 x 8 patches of the upscaled frame (pixel-unshuffle), and its output
depends a little on where the patch grid falls on the content. A clip restored with the grid fixed
to the frame shows that dependence as the content moves: in a pan, every detail crosses the grid
and its texture changes from frame to frame. Measured on eval-real's moving clips (H.264 pans,
3 px a frame at 2160p), the default at its default detail had 1.47 x bicubic's flow-aligned
error with the grid fixed and 1.06 x with the grid moved by the known pan; the picture of each
frame is the same either way (every grid phase is one the network was trained on).

`GridFollower` estimates each frame's global displacement from the one before it on the luma (or
first) plane, sums it into the frame's position, and `padcfg.restore(..., positions=...)` moves
the grid by that position. Estimation runs on the CPU with numpy on a central window of the input
(the same numbers on every device): phase correlation finds the whole-pixel shift, then a few
Lucas-Kanade steps on the Fourier-shifted window the sub-pixel rest. A frame whose match is weak
(a cut, a flat or changing picture) or far (beyond a quarter of the window) does not move the
grid. Positions start again at 0 wherever a caller resets (the video pipeline: at every segment,
so a resumed or distributed job gets the frames of a run without breaks).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

WINDOW = 256       # input pixels of the central window (each side at most)
MIN_PEAK = 0.08    # phase-correlation peak below which the frames are not the same scene
BLUR = 1.0         # Gaussian sigma (input pixels) before matching: noise and codec blocks
MATCH = 0.8        # aligned, the windows' mean squared difference must fall below this share


def central_window(plane: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """The central `window` x `window` part (smaller frames: all of it) as float32."""
    h, w = plane.shape[:2]
    y, x = max(0, (h - window) // 2), max(0, (w - window) // 2)
    return np.asarray(plane[y:y + window, x:x + window], dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _tables(h: int, w: int):
    """Per window shape: frequencies, the Hann window, the low-frequency weights, the inner mask."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    hann = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    low = np.exp(-2 * (np.pi * BLUR) ** 2 * (fy ** 2 + fx ** 2)).astype(np.float32)
    return fy, fx, hann, low, hann > 0.1


def _shift(spec: np.ndarray, fy, fx, d, shape) -> np.ndarray:
    """The window whose rfft2 is `spec`, moved by d = (dy, dx) pixels (a separable phase ramp)."""
    ramp = np.exp(-2j * np.pi * fy * d[0]) * np.exp(-2j * np.pi * fx * d[1])
    return np.fft.irfft2(spec * ramp, s=shape).astype(np.float32)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.multiply(a, b, dtype=np.float64).sum())  # no BLAS threads for a small sum


def displacement(prev: np.ndarray, cur: np.ndarray, iters: int = 3) -> tuple[float, float] | None:
    """(dy, dx) in pixels with cur(p) ~ prev(p - d) (content moved by d), or None when the two
    windows (equal shapes, any scale of values) do not match well enough to say."""
    if prev.shape != cur.shape or min(prev.shape) < 16:
        return None
    h, w = prev.shape
    fy, fx, hann, low, inner = _tables(h, w)
    a = np.fft.irfft2(np.fft.rfft2(prev - prev.mean()) * low, s=(h, w)).astype(np.float32)
    b = np.fft.irfft2(np.fft.rfft2(cur - cur.mean()) * low, s=(h, w)).astype(np.float32)
    spec = np.fft.rfft2(a)
    cross = np.fft.rfft2(b * hann) * np.conj(np.fft.rfft2(a * hann))
    # Phase only (any contrast), weighted towards low frequencies: the high ones of a noisy or
    # block-coded frame change from frame to frame and would put the peak anywhere.
    r = np.fft.irfft2(cross / (np.abs(cross) + 1e-12) * low, s=(h, w)) / low.mean()
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    if r[iy, ix] < MIN_PEAK:
        return None
    d = np.array([iy - h if iy > h // 2 else iy, ix - w if ix > w // 2 else ix], dtype=np.float64)
    bi = b[inner]
    for _ in range(iters):
        moved = _shift(spec, fy, fx, d, (h, w))
        gy, gx = (g[inner] for g in np.gradient(moved))
        diff = bi - moved[inner]
        m = np.array([[_dot(gy, gy), _dot(gy, gx)], [_dot(gx, gy), _dot(gx, gx)]])
        if np.linalg.eigvalsh(m)[0] <= 1e-6 * max(np.trace(m), 1e-12):
            return None  # no texture in one direction: the shift along it is unknown
        d -= np.linalg.solve(m, np.array([_dot(gy, diff), _dot(gx, diff)]))
    if not np.all(np.isfinite(d)) or np.abs(d).max() > min(h, w) / 4:
        return None
    # The shift must explain the change: aligned, the windows differ clearly less than as they are.
    moved = _shift(spec, fy, fx, d, (h, w))[inner]
    if _dot(bi - moved, bi - moved) > MATCH * _dot(bi - a[inner], bi - a[inner]):
        return None
    return float(d[0]), float(d[1])


class Motion(NamedTuple):
    """What `GridFollower.track` knows of one frame."""
    position: tuple[float, float]          # where the grid sits, input pixels (y, x)
    step: tuple[float, float] | None       # the content's displacement from the frame before, input
                                           # pixels (y, x); None: not known (a cut, a weak match)
    first: bool                            # no frame before it since the last reset

    def step_out(self, scale: tuple[float, float]) -> tuple[float, float] | None:
        """The step in output pixels (`scale`: output over input pixels, per axis), or None."""
        return None if self.step is None else (self.step[0] * scale[0], self.step[1] * scale[1])


class GridFollower:
    """Positions (y, x) in input pixels of consecutive frames' content, from the first frame
    after a reset: the x8 grid that follows them stays on the same part of the picture.

    `scale` (output over input pixels, per axis) makes the positions whole output pixels with
    hysteresis: the grid moves only once the content is `HOLD` output pixels from where it sits,
    and displacements under `STILL` input pixels count as none, so estimation noise on a still
    shot never moves it (a moved grid is a changed texture)."""

    HOLD = 0.75
    STILL = 0.05

    def __init__(self, scale: tuple[float, float] = (1.0, 1.0), window: int = WINDOW):
        self.scale, self.window = scale, window
        self.reset()

    def reset(self) -> None:
        self.prev: np.ndarray | None = None
        self.pos = [0.0, 0.0]        # summed displacement, input pixels
        self.snapped = [0, 0]        # where the grid sits, output pixels

    def __call__(self, plane: np.ndarray) -> tuple[float, float]:
        """The position of the frame whose luma (or first) plane, H x W, is `plane`."""
        return self.track(plane).position

    def track(self, plane: np.ndarray) -> Motion:
        """The frame's position, its displacement from the frame before and whether it is the first."""
        cur = central_window(plane, self.window)
        first, step = self.prev is None, None
        if not first:
            d = displacement(self.prev, cur)
            if d is not None:
                step = tuple(v if abs(v) >= self.STILL else 0.0 for v in d)
                for a in (0, 1):
                    self.pos[a] += step[a]
        self.prev = cur
        for a in (0, 1):
            at = self.pos[a] * self.scale[a]
            if abs(at - self.snapped[a]) > self.HOLD:
                self.snapped[a] = round(at)
        return Motion((self.snapped[0] / self.scale[0], self.snapped[1] / self.scale[1]), step, first)
