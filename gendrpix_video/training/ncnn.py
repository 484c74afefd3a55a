"""Convert an ncnn model (.param text graph + .bin weight blobs) into a PyTorch module.

The teacher (Real-ESRGAN) ships only as ncnn weights, so we read the format directly: no ncnn
runtime is needed at training time, and the module runs on any torch device and dtype.

Format notes (from ncnn's documentation of its file formats):
- .param: magic 7767517, then "layer_count blob_count", then one layer a line:
  `Type Name n_bottom n_top bottoms... tops... key=value ...`. A key <= -23300 marks an array
  parameter with id -(key + 23300), written as `n,v1,...,vn`. Values with '.' or 'e' are floats.
- .bin: the layers' weights, in layer order, each blob 4-byte aligned. A blob loaded as "auto"
  type starts with a 4-byte tag: 0x01306B47 fp16, 0x000D4B38 int8, 0x0002C056 fp32 (with
  scaling), all-zero bytes fp32, any other non-zero sum a 256-entry fp32 lookup table followed by
  uint8 indices. Blobs loaded as "raw fp32" (biases, PReLU slopes) have no tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)

    def p(self, key: int, default=None):
        return self.params.get(key, default)


def _parse_value(text: str):
    # ncnn decides float vs int by the presence of a decimal point or exponent.
    if re.search(r"[.eE]", text) and not re.fullmatch(r"-?\d+", text):
        return float(text)
    return int(text)


def parse_param(text: str) -> list[Layer]:
    """Parse the text of a .param file into layers, in file (= execution) order."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if int(lines[0]) != PARAM_MAGIC:
        raise ValueError(f"not an ncnn text .param (magic {lines[0]!r})")
    n_layers, _n_blobs = (int(v) for v in lines[1].split()[:2])
    layers = []
    for ln in lines[2 : 2 + n_layers]:
        tok = ln.split()
        ltype, name, nb, nt = tok[0], tok[1], int(tok[2]), int(tok[3])
        bottoms = tok[4 : 4 + nb]
        tops = tok[4 + nb : 4 + nb + nt]
        params: dict[int, object] = {}
        for kv in tok[4 + nb + nt :]:
            k, v = kv.split("=", 1)
            key = int(k)
            if key <= -23300:
                items = v.split(",")
                count = int(items[0])
                params[-(key + 23300)] = [_parse_value(x) for x in items[1 : 1 + count]]
            else:
                params[key] = _parse_value(v)
        layers.append(Layer(ltype, name, bottoms, tops, params))
    if len(layers) != n_layers:
        raise ValueError(f".param declares {n_layers} layers, found {len(layers)}")
    return layers


class _BinReader:
    """Sequential reader of a .bin following ncnn's ModelBin conventions."""

    def __init__(self, data: bytes):
        self.buf = memoryview(data)
        self.pos = 0

    def _take(self, nbytes: int) -> memoryview:
        if self.pos + nbytes > len(self.buf):
            raise ValueError("ncnn .bin ended early: weights do not match the .param")
        out = self.buf[self.pos : self.pos + nbytes]
        # every blob is padded to a multiple of 4 bytes
        self.pos += (nbytes + 3) & ~3
        return out

    def raw_fp32(self, n: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * n), dtype="<f4").copy()

    def auto(self, n: int) -> np.ndarray:
        tag_bytes = bytes(self._take(4))
        tag = int.from_bytes(tag_bytes, "little")
        if tag == TAG_FP16:
            return np.frombuffer(self._take(2 * n), dtype="<f2").astype(np.float32)
        if tag == TAG_INT8:
            raise NotImplementedError("int8-quantised ncnn weights are not supported")
        if tag == TAG_FP32_SCALED or tag == 0:
            return self.raw_fp32(n)
        # a non-zero flag: 256-entry fp32 codebook, then one uint8 index per value
        table = np.frombuffer(self._take(256 * 4), dtype="<f4")
        idx = np.frombuffer(self._take(n), dtype=np.uint8)
        return table[idx].astype(np.float32)

    def remaining(self) -> int:
        return len(self.buf) - self.pos


class _ZeroReader(_BinReader):
    """Stands in for a .bin when the weights come from a state dict instead."""

    def __init__(self):
        super().__init__(b"")

    def raw_fp32(self, n: int) -> np.ndarray:
        return np.zeros(n, np.float32)

    def auto(self, n: int) -> np.ndarray:
        return np.zeros(n, np.float32)


# --- layer implementations ---------------------------------------------------------------


def _activation(kind: int, params: list) -> nn.Module:
    if kind == 0:
        return nn.Identity()
    # in place: the input is always a fresh convolution output
    if kind == 1:
        return nn.ReLU(inplace=True)
    if kind == 2:
        return nn.LeakyReLU(float(params[0]), inplace=True)
    if kind == 3:
        return nn.Hardtanh(float(params[0]), float(params[1]))
    if kind == 4:
        return nn.Sigmoid()
    if kind == 5:
        return nn.Mish()
    raise NotImplementedError(f"ncnn activation_type {kind}")


class _Conv(nn.Module):
    def __init__(self, layer: Layer, rd: _BinReader):
        super().__init__()
        out_ch = layer.p(0, 0)
        kw = layer.p(1, 0)
        kh = layer.p(11, kw)
        dw = layer.p(2, 1)
        dh = layer.p(12, dw)
        sw = layer.p(3, 1)
        sh = layer.p(13, sw)
        pl = layer.p(4, 0)
        pt = layer.p(14, pl)
        pr = layer.p(15, pl)
        pb = layer.p(16, pt)
        self.pad_value = float(layer.p(18, 0.0))
        bias = layer.p(5, 0)
        wsize = layer.p(6, 0)
        groups = layer.p(7, 1) if layer.type == "ConvolutionDepthWise" else 1
        if layer.p(8, 0):
            raise NotImplementedError(f"{layer.name}: int8 convolution")
        if layer.p(19, 0):
            raise NotImplementedError(f"{layer.name}: dynamic-weight convolution")
        in_per_group = wsize // (out_ch * kh * kw)
        w = rd.auto(wsize).reshape(out_ch, in_per_group, kh, kw)
        b = rd.raw_fp32(out_ch) if bias else None
        self.conv = nn.Conv2d(
            in_per_group * groups, out_ch, (kh, kw), stride=(sh, sw), dilation=(dh, dw),
            groups=groups, bias=bias != 0,
        )
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(w))
            if b is not None:
                self.conv.bias.copy_(torch.from_numpy(b))
        self.kernel = (kh, kw)
        self.stride = (sh, sw)
        self.dilation = (dh, dw)
        self.pads = (pl, pr, pt, pb)
        self.act = _activation(layer.p(9, 0), layer.p(10, []))

    def _padding(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        pl, pr, pt, pb = self.pads
        if pl in (-233, -234):
            # "SAME" padding computed from the input size; -233 puts the extra pixel at the end
            pads = []
            for size, k, s, d in zip(x.shape[-2:], self.kernel, self.stride, self.dilation):
                ek = d * (k - 1) + 1
                total = max(0, (size + s - 1) // s * s - s + ek - size)
                lo = total // 2 if pl == -233 else total - total // 2
                pads.append((lo, total - lo))
            (pt, pb), (pl, pr) = pads
        return pl, pr, pt, pb

    def forward(self, x):
        pl, pr, pt, pb = self._padding(x)
        if pl or pr or pt or pb:
            x = F.pad(x, (pl, pr, pt, pb), value=self.pad_value)
        return self.act(self.conv(x))


class _PReLU(nn.Module):
    def __init__(self, layer: Layer, rd: _BinReader):
        super().__init__()
        n = layer.p(0, 1)
        self.weight = nn.Parameter(torch.from_numpy(rd.raw_fp32(n)), requires_grad=False)

    def forward(self, x):
        w = self.weight.to(x.dtype)
        return torch.where(x >= 0, x, x * w.view(1, -1, 1, 1) if w.numel() > 1 else x * w)


class _ReLU(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        self.slope = float(layer.p(0, 0.0))

    def forward(self, x):
        return F.relu(x) if self.slope == 0 else F.leaky_relu(x, self.slope)


class _Eltwise(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        self.op = layer.p(0, 0)
        self.coeffs = [float(c) for c in layer.p(1, [])]

    def forward(self, *xs):
        if self.op == 0:
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return out
        if self.op == 1:
            if len(xs) == 2 and len(self.coeffs) == 2 and self.coeffs[1] == 1.0:
                # RRDB's residual scaling (0.2 * a + b) as one fused kernel
                return torch.add(xs[1], xs[0], alpha=self.coeffs[0])
            if self.coeffs:
                out = xs[0] * self.coeffs[0]
                for c, x in zip(self.coeffs[1:], xs[1:]):
                    out = out + x * c
                return out
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out
        if self.op == 2:
            out = xs[0]
            for x in xs[1:]:
                out = torch.maximum(out, x)
            return out
        raise NotImplementedError(f"Eltwise op {self.op}")


_BINARY = {
    0: lambda a, b: a + b,
    1: lambda a, b: a - b,
    2: lambda a, b: a * b,
    3: lambda a, b: a / b,
    4: torch.maximum,
    5: torch.minimum,
    6: torch.pow,
    7: lambda a, b: b - a,
    8: lambda a, b: b / a,
}


class _BinaryOp(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        self.op = layer.p(0, 0)
        if self.op not in _BINARY:
            raise NotImplementedError(f"BinaryOp op {self.op}")
        self.with_scalar = layer.p(1, 0)
        self.scalar = float(layer.p(2, 0.0))

    def forward(self, a, b=None):
        if self.with_scalar:
            b = torch.as_tensor(self.scalar, dtype=a.dtype, device=a.device)
        return _BINARY[self.op](a, b)


class _Interp(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        self.mode = {1: "nearest", 2: "bilinear", 3: "bicubic"}[layer.p(0, 0) or 1]
        self.scale = (float(layer.p(1, 1.0)), float(layer.p(2, 1.0)))
        self.size = (layer.p(3, 0), layer.p(4, 0))
        self.align = bool(layer.p(6, 0))
        if layer.p(5, 0):
            raise NotImplementedError(f"{layer.name}: dynamic Interp target size")

    def forward(self, x):
        if self.size[0] and self.size[1]:
            oh, ow = self.size
        else:
            # ncnn truncates the scaled size to an int
            oh, ow = int(x.shape[-2] * self.scale[0]), int(x.shape[-1] * self.scale[1])
        if self.mode == "nearest":
            return F.interpolate(x, size=(oh, ow), mode="nearest")
        return F.interpolate(x, size=(oh, ow), mode=self.mode, align_corners=self.align)


class _PixelShuffle(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        self.r = layer.p(0, 1)
        if layer.p(1, 0):
            raise NotImplementedError(f"{layer.name}: DCR-mode PixelShuffle")

    def forward(self, x):
        return F.pixel_shuffle(x, self.r)


class _Concat(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        axis = layer.p(0, 0)
        # ncnn axes skip the batch dimension; negative axes count from the end as usual
        self.dim = axis + 1 if axis >= 0 else axis

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)


class _Crop(nn.Module):
    def __init__(self, layer: Layer):
        super().__init__()
        self.woff, self.hoff, self.coff = layer.p(0, 0), layer.p(1, 0), layer.p(2, 0)
        self.outw, self.outh, self.outc = layer.p(3, 0), layer.p(4, 0), layer.p(5, 0)
        self.woff2, self.hoff2, self.coff2 = layer.p(6, 0), layer.p(7, 0), layer.p(8, 0)
        if 9 in layer.params or len(layer.bottoms) > 1:
            raise NotImplementedError(f"{layer.name}: Crop with starts/ends or reference blob")

    def forward(self, x):
        _, c, h, w = x.shape
        # an unset (0) or -233 ("remaining") size takes what the offsets leave
        outc = self.outc if self.outc > 0 else c - self.coff - self.coff2
        outh = self.outh if self.outh > 0 else h - self.hoff - self.hoff2
        outw = self.outw if self.outw > 0 else w - self.woff - self.woff2
        return x[:, self.coff : self.coff + outc, self.hoff : self.hoff + outh,
                 self.woff : self.woff + outw]


class _MemoryData(nn.Module):
    """A constant blob stored in the .bin (raw fp32, no type tag), e.g. SPAN's RGB mean."""

    def __init__(self, layer: Layer, rd: _BinReader):
        super().__init__()
        w, h, c = layer.p(0, 0), layer.p(1, 0), layer.p(2, 0)
        if not (w and h and c) or layer.p(11, 0):
            # 1-D/2-D blobs broadcast by ncnn's own rules, 4-D ones need depth: not needed yet
            raise NotImplementedError(f"{layer.name}: only 3-D (w, h, c) MemoryData is supported")
        self.register_buffer("data", torch.from_numpy(rd.raw_fp32(w * h * c)).reshape(1, c, h, w))

    def forward(self):
        return self.data


class _Simple(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _build_layer(layer: Layer, rd: _BinReader) -> nn.Module | None:
    t = layer.type
    if t in ("Input", "Split", "Noop"):
        return None  # pure data flow, handled by the executor
    if t in ("Convolution", "ConvolutionDepthWise"):
        return _Conv(layer, rd)
    if t == "PReLU":
        return _PReLU(layer, rd)
    if t == "ReLU":
        return _ReLU(layer)
    if t == "Sigmoid":
        return _Simple(torch.sigmoid)
    if t == "Swish":
        return _Simple(F.silu)
    if t == "MemoryData":
        return _MemoryData(layer, rd)
    if t == "TanH":
        return _Simple(torch.tanh)
    if t == "Clip":
        lo, hi = float(layer.p(0, -3.4e38)), float(layer.p(1, 3.4e38))
        return _Simple(lambda x: x.clamp(lo, hi))
    if t == "Eltwise":
        return _Eltwise(layer)
    if t == "BinaryOp":
        return _BinaryOp(layer)
    if t == "Interp":
        return _Interp(layer)
    if t == "PixelShuffle":
        return _PixelShuffle(layer)
    if t == "Concat":
        return _Concat(layer)
    if t == "Crop":
        return _Crop(layer)
    raise NotImplementedError(f"ncnn layer type {t!r} ({layer.name}) is not supported")


class NcnnModule(nn.Module):
    """Executes an ncnn graph with torch ops on N x C x H x W tensors.

    Blobs are kept in a dict and dropped after their last consumer, so peak memory stays close to
    what the graph needs (the RRDB trunk has many long-lived skip blobs).
    """

    def __init__(self, param_text: str, weights: bytes | None, output: str | None = None):
        super().__init__()
        self.param_text = param_text
        self.layers_spec = parse_param(param_text)
        rd = _BinReader(weights) if weights is not None else _ZeroReader()
        self.ops = nn.ModuleDict()
        for i, layer in enumerate(self.layers_spec):
            op = _build_layer(layer, rd)
            if op is not None:
                self.ops[self._key(i)] = op
        if rd.remaining() != 0:
            raise ValueError(f"{rd.remaining()} bytes left in .bin after the last layer")
        inputs = [l.tops[0] for l in self.layers_spec if l.type == "Input"]
        if len(inputs) != 1:
            raise NotImplementedError("only single-input graphs are supported")
        self.input_name = inputs[0]
        produced = [t for l in self.layers_spec for t in l.tops]
        consumed = {b for l in self.layers_spec for b in l.bottoms}
        self.output_name = output or ("output" if "output" in produced else
                                      [t for t in produced if t not in consumed][-1])
        # index of the last layer reading each blob, for freeing memory early
        self._last_use: dict[str, int] = {}
        for i, layer in enumerate(self.layers_spec):
            for b in layer.bottoms:
                self._last_use[b] = i

    @staticmethod
    def _key(i: int) -> str:
        return f"l{i}"

    @classmethod
    def from_files(cls, param_path, bin_path, output: str | None = None) -> "NcnnModule":
        return cls(Path(param_path).read_text(), Path(bin_path).read_bytes(), output)

    @classmethod
    def from_state_dict(cls, param_text: str, state: dict[str, torch.Tensor],
                        output: str | None = None) -> "NcnnModule":
        m = cls(param_text, None, output)
        m.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blobs: dict[str, torch.Tensor] = {self.input_name: x}
        for i, layer in enumerate(self.layers_spec):
            if layer.type == "Input":
                continue
            args = [blobs[b] for b in layer.bottoms]
            for b in layer.bottoms:
                if self._last_use[b] == i and b != self.output_name:
                    blobs.pop(b, None)
            if layer.type in ("Split", "Noop"):
                for t in layer.tops:
                    blobs[t] = args[0]
                continue
            out = self.ops[self._key(i)](*args)
            blobs[layer.tops[0]] = out
            if layer.tops[0] == self.output_name:
                return out
        return blobs[self.output_name]
