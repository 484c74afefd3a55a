"""YUV <-> RGB on the GPU (or the CPU, same code): matrices, bit depth, range, chroma siting.

Frames travel between host and device as their raw planes (uint8, or int16 holding 9-16 bit
samples) so the copies are as small as the source; all arithmetic happens here, in fp32.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# AVColorSpace value -> (Kr, Kb). 0 is RGB, 2 unspecified (resolved by `resolve_matrix`).
KR_KB = {
    1: (0.2126, 0.0722),   # BT.709
    4: (0.30, 0.11),       # FCC
    5: (0.299, 0.114),     # BT.470BG (BT.601 625)
    6: (0.299, 0.114),     # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),     # SMPTE 240M
    9: (0.2627, 0.0593),   # BT.2020 non-constant luminance
    10: (0.2627, 0.0593),  # BT.2020 constant luminance: approximated by the NCL matrix
}
MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}
RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}

_NATIVE = re.compile(r"^(yuvj?a?)(420|422|444|440)p(\d+)?(le)?$")


@dataclass(frozen=True)
class Colour:
    """The four colour tags (AVColor* enum values) that travel from input to output."""
    primaries: int = 2
    trc: int = 2
    matrix: int = 2
    range: int = 0

    @property
    def full_range(self) -> bool:
        return self.range == 2


def resolve_matrix(matrix: int, height: int) -> int:
    """The matrix actually used: untagged HD and larger is BT.709, SD is BT.601 (what players do)."""
    if matrix in KR_KB:
        return matrix
    return 1 if height > 576 else 6


@dataclass(frozen=True)
class Layout:
    """How a frame's samples lie in memory: planar YUV or planar GBR, 8 to 16 bits."""
    pix_fmt: str
    family: str          # "yuv" or "rgb" (planes G, B, R as in gbrp)
    bits: int
    log2_cw: int         # chroma subsampling, horizontal
    log2_ch: int         # and vertical
    alpha: bool = False  # a fourth plane that we do not carry

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.uint8 if self.bits <= 8 else torch.int16  # int16 holds the same bits as uint16

    @property
    def full_range_only(self) -> bool:
        return self.pix_fmt.startswith("yuvj")

    def plane_shapes(self, width: int, height: int) -> list[tuple[int, int]]:
        if self.family == "rgb":
            return [(height, width)] * 3
        cw = (width + (1 << self.log2_cw) - 1) >> self.log2_cw
        ch = (height + (1 << self.log2_ch) - 1) >> self.log2_ch
        return [(height, width), (ch, cw), (ch, cw)]

    def frame_bytes(self, width: int, height: int) -> int:
        return sum(h * w for h, w in self.plane_shapes(width, height)) * self.dtype.itemsize


def layout(pix_fmt: str) -> Layout | None:
    """The Layout of a pixel format we handle natively, or None."""
    if pix_fmt in ("gbrp", "gbrp10le", "gbrp12le", "gbrp16le"):
        return Layout(pix_fmt, "rgb", int(pix_fmt[4:6]) if pix_fmt != "gbrp" else 8, 0, 0)
    m = _NATIVE.match(pix_fmt)
    if not m or (m.group(3) and not m.group(4)):
        return None
    bits = int(m.group(3) or 8)
    if bits > 16:
        return None
    sub = {"420": (1, 1), "422": (1, 0), "444": (0, 0), "440": (0, 1)}[m.group(2)]
    return Layout(pix_fmt, "yuv", bits, *sub, alpha="a" in m.group(1))


def _unpack(plane: torch.Tensor) -> torch.Tensor:
    if plane.dtype == torch.uint8:
        return plane.float()
    return (plane.to(torch.int32) & 0xFFFF).float()


def to_rgb(planes: list[torch.Tensor], lay: Layout, matrix: int, full_range: bool) -> torch.Tensor:
    """Raw planes (each N x h x w) -> float RGB N x 3 x H x W in [0, 1]."""
    x = [_unpack(p) for p in planes[:3]]
    top = float((1 << lay.bits) - 1)
    s = float(1 << (lay.bits - 8))
    if lay.family == "rgb":
        g, b, r = ((c / top) if full_range else (c - 16 * s) / (219 * s) for c in x)
        return torch.stack([r, g, b], 1).clamp_(0, 1)
    if full_range:
        y, cb, cr = x[0] / top, (x[1] - (1 << (lay.bits - 1))) / top, (x[2] - (1 << (lay.bits - 1))) / top
    else:
        y, cb, cr = (x[0] - 16 * s) / (219 * s), (x[1] - 128 * s) / (224 * s), (x[2] - 128 * s) / (224 * s)
    h, w = y.shape[-2:]
    if cb.shape[-2:] != (h, w):  # chroma to luma resolution (centre-sited bilinear)
        c = F.interpolate(torch.stack([cb, cr], 1), size=(h, w), mode="bilinear", align_corners=False)
        cb, cr = c[:, 0], c[:, 1]
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    r = y + 2 * (1 - kr) * cr
    b = y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    return torch.stack([r, g, b], 1).clamp_(0, 1)


def _quantise(v: torch.Tensor, lay: Layout) -> torch.Tensor:
    q = v.round_().clamp_(0, (1 << lay.bits) - 1)
    return q.to(torch.uint8) if lay.bits <= 8 else q.to(torch.int32).to(torch.int16)


def from_rgb(rgb: torch.Tensor, lay: Layout, matrix: int, full_range: bool) -> list[torch.Tensor]:
    """Float RGB N x 3 x H x W in [0, 1] -> raw planes of `lay` (N x h x w each)."""
    rgb = rgb.float()
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    top = float((1 << lay.bits) - 1)
    s = float(1 << (lay.bits - 8))
    if lay.family == "rgb":
        conv = (lambda c: c * top) if full_range else (lambda c: c * 219 * s + 16 * s)
        return [_quantise(conv(c), lay) for c in (g, b, r)]
    kr, kb = KR_KB[matrix]
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    if lay.log2_cw or lay.log2_ch:  # box filter to the chroma grid
        k = (1 << lay.log2_ch, 1 << lay.log2_cw)
        c = F.avg_pool2d(torch.stack([cb, cr], 1), kernel_size=k, stride=k, ceil_mode=True)
        cb, cr = c[:, 0], c[:, 1]
    if full_range:
        half = float(1 << (lay.bits - 1))
        planes = [y * top, cb * top + half, cr * top + half]
    else:
        planes = [y * 219 * s + 16 * s, cb * 224 * s + 128 * s, cr * 224 * s + 128 * s]
    return [_quantise(p, lay) for p in planes]
