"""Degradations that make LR training inputs from HR crops, in torch, batched, on any device.

- `degrade`: Real-ESRGAN-style second-order degradation (blur, resize, noise, JPEG, twice, then a
  final resize to the target with an optional sinc filter), random overall scale in [2, 4].
- `degrade_first_order`: the same first round alone, resized straight to the target.
- `degrade_video`: one scaler and one video encoder at a low bitrate: mild blur and noise, an
  optional bob deinterlace, block-DCT coding with 4:2:0 chroma and an optional deblocking filter
  (what MPEG-2 and H.264 leave), as footage reaches an archive.
  Kernels, noise and JPEG quality are drawn per sample; resize choices per batch (they set the
  tensor size). All randomness comes from one torch.Generator, so a seed reproduces a batch.
- `jpeg`: a pure-torch baseline JPEG round trip (YCbCr, 4:2:0, 8x8 DCT, standard tables scaled by
  quality), because torchvision's encoder needs CPU tensors and is not installed everywhere.
- `realistic_eval` and `bicubic_down`: fixed, seeded degradations for held-out evaluation.

Images are float N x 3 x H x W in [0, 1]. The default parameter ranges follow the Real-ESRGAN
paper's published setting; they are fields of `DegradeOptions` so each can be tuned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

# --- random helpers (all draws go through the caller's generator) ------------------------


def _rand(g: torch.Generator, *shape) -> torch.Tensor:
    return torch.rand(*shape, generator=g, device=g.device)


def _uniform(g, lo, hi, n) -> torch.Tensor:
    return lo + (hi - lo) * _rand(g, n)


def _choice(g, probs, n) -> torch.Tensor:
    p = torch.tensor(probs, dtype=torch.float, device=g.device)
    return torch.multinomial(p.expand(n, -1), 1, generator=g)[:, 0]


def _scalar(g) -> float:
    return float(_rand(g, 1))


# --- blur kernels --------------------------------------------------------------------------

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                "plateau_aniso")
MAX_KERNEL = 21


def random_kernels(g: torch.Generator, n: int, sigma=(0.2, 3.0), probs=(0.45, 0.25, 0.12, 0.03,
                   0.12, 0.03), beta_g=(0.5, 4.0), beta_p=(1.0, 2.0), sinc_prob=0.1,
                   size=(7, 21)) -> torch.Tensor:
    """n random blur kernels, n x MAX_KERNEL x MAX_KERNEL, each summing to 1.

    Kernel sizes (odd, in `size`) vary per sample; smaller kernels are zero outside their
    support, which leaves the convolution unchanged.
    """
    dev = g.device
    ks = 2 * torch.randint(size[0] // 2, size[1] // 2 + 1, (n,), generator=g, device=dev) + 1
    kind = _choice(g, probs, n)
    aniso = (kind % 2) == 1
    sx = _uniform(g, *sigma, n)
    sy = torch.where(aniso, _uniform(g, *sigma, n), sx)
    theta = torch.where(aniso, _uniform(g, -math.pi, math.pi, n), torch.zeros(n, device=dev))
    beta = torch.where(kind >= 4, _uniform(g, *beta_p, n), _uniform(g, *beta_g, n))

    r = torch.arange(MAX_KERNEL, device=dev, dtype=torch.float) - MAX_KERNEL // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    # rotate the grid into the kernel's principal axes: quad = d^T Sigma^-1 d
    u = c * xx + s * yy
    v = -s * xx + c * yy
    quad = (u / sx[:, None, None]) ** 2 + (v / sy[:, None, None]) ** 2
    b = beta[:, None, None]
    k = torch.where((kind < 2)[:, None, None], torch.exp(-0.5 * quad),
                    torch.where((kind < 4)[:, None, None], torch.exp(-0.5 * quad.pow(b)),
                                1.0 / (1.0 + quad.pow(b))))
    use_sinc = _rand(g, n) < sinc_prob
    if use_sinc.any():
        # ringing/overshoot: a circular low-pass filter, cutoff lower for bigger kernels
        lo = torch.where(ks < 13, math.pi / 3, math.pi / 5)
        wc = lo + (math.pi - lo) * _rand(g, n)
        k = torch.where(use_sinc[:, None, None], sinc_kernels(wc, MAX_KERNEL), k)
    half = (ks // 2)[:, None, None]
    support = (xx.abs()[None] <= half) & (yy.abs()[None] <= half)
    k = k * support
    return k / k.sum(dim=(-1, -2), keepdim=True)


def sinc_kernels(cutoff: torch.Tensor, size: int = MAX_KERNEL) -> torch.Tensor:
    """Circular 2-D sinc (ideal low-pass) kernels, one per cutoff (radians/pixel), normalised."""
    r = torch.arange(size, device=cutoff.device, dtype=torch.float) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    rad = torch.sqrt(xx**2 + yy**2)[None]
    wc = cutoff[:, None, None].float()
    safe = torch.where(rad == 0, torch.ones_like(rad), rad)
    k = wc * torch.special.bessel_j1(wc * safe) / (2 * math.pi * safe)
    k = torch.where(rad == 0, wc**2 / (4 * math.pi), k)  # the limit at r = 0
    return k / k.sum(dim=(-1, -2), keepdim=True)


def gaussian_kernel(sigma: float, size: int = MAX_KERNEL, device="cpu") -> torch.Tensor:
    r = torch.arange(size, device=device, dtype=torch.float) - size // 2
    k1 = torch.exp(-0.5 * (r / sigma) ** 2)
    k = k1[:, None] * k1[None, :]
    return k / k.sum()


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each sample with its own kernel (N x k x k, or one k x k for all), reflect pad."""
    n, ch, h, w = x.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(n, -1, -1)
    k = kernels.shape[-1]
    pad = k // 2
    mode = "reflect" if pad < h and pad < w else "replicate"
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    weight = kernels.to(x.dtype).repeat_interleave(ch, dim=0)[:, None]
    # grouped conv, one group per (sample, channel); conv2d correlates, which equals convolution
    # here because every kernel we make is point-symmetric, k(-x, -y) = k(x, y)
    out = F.conv2d(xp.reshape(1, n * ch, h + 2 * pad, w + 2 * pad), weight, groups=n * ch)
    return out.view(n, ch, h, w)


# --- noise ---------------------------------------------------------------------------------


def luma(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W RGB -> N x 1 x H x W BT.601 luma."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def add_noise(x: torch.Tensor, g: torch.Generator, gaussian_prob=0.5, sigma=(1.0, 30.0),
              poisson_scale=(0.05, 3.0), gray_prob=0.4) -> torch.Tensor:
    """Per sample: Gaussian noise (sigma in 8-bit levels) or Poisson (shot) noise, colour or grey."""
    n = x.shape[0]
    gray = (_rand(g, n) < gray_prob).view(n, 1, 1, 1)
    gauss = (_rand(g, n) < gaussian_prob).view(n, 1, 1, 1)
    sig = (_uniform(g, *sigma, n) / 255).view(n, 1, 1, 1).to(x.dtype)
    pscale = _uniform(g, *poisson_scale, n).view(n, 1, 1, 1).to(x.dtype)

    z = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    z = torch.where(gray, z[:, :1].expand_as(z), z)
    n_gauss = z * sig

    # Poisson on 8-bit photon counts; grey noise is drawn on the luma and shared by channels
    levels = 255.0
    xq = x.clamp(0, 1)
    lam_c = xq * levels
    lam_g = luma(xq) * levels
    pc = torch.poisson(lam_c.float(), generator=g).to(x.dtype) - lam_c
    pg = (torch.poisson(lam_g.float(), generator=g).to(x.dtype) - lam_g).expand_as(x)
    n_pois = torch.where(gray, pg, pc) / levels * pscale
    return x + torch.where(gauss, n_gauss, n_pois)


# --- JPEG ----------------------------------------------------------------------------------

# ITU-T T.81 Annex K example tables (what libjpeg and PIL use), in natural row-major order
_Q_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]
_Q_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
]


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's quality scaling of the standard tables: N x 8 x 8 luma and chroma tables."""
    q = quality.float().clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]
    out = []
    for base in (_Q_LUMA, _Q_CHROMA):
        t = torch.tensor(base, dtype=torch.float, device=q.device).view(1, 8, 8)
        out.append(torch.floor((t * scale + 50) / 100).clamp(1, 255))
    return out[0], out[1]


def _dct_matrix(device) -> torch.Tensor:
    i = torch.arange(8, device=device, dtype=torch.float)
    m = torch.cos((2 * i[None, :] + 1) * i[:, None] * math.pi / 16)
    m[0] *= 1 / math.sqrt(2)
    return m * 0.5  # orthonormal 8-point DCT-II


def _blockwise(ch: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Quantise one plane (N x H x W, level-shifted, H and W multiples of 8) through the DCT."""
    n, h, w = ch.shape
    blocks = ch.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # N x bh x bw x 8 x 8
    coef = d @ blocks @ d.T
    t = table[:, None, None]
    coef = torch.round(coef / t) * t
    rec = d.T @ coef @ d
    return rec.permute(0, 1, 3, 2, 4).reshape(n, h, w)


def jpeg(x: torch.Tensor, quality) -> torch.Tensor:
    """Baseline JPEG compress/decompress (4:2:0), per-sample quality (int, float or N tensor).

    Matches libjpeg's defaults in the parts that shape the artefacts: JFIF YCbCr, 2x2 chroma
    averaging, standard tables scaled by quality, 8-bit rounding of the decoded image and
    "fancy" (triangle-filter) chroma upsampling. Not bit-exact with libjpeg (integer DCTs and
    rounding differ); not differentiable (round).
    """
    n, _, h, w = x.shape
    dev = x.device
    q = torch.as_tensor(quality, device=dev, dtype=torch.float).flatten()
    if q.numel() == 1:
        q = q.expand(n)
    qy, qc = quant_tables(q)
    # compute in fp32 whatever the input: fp16 rounding would swamp the quantisation
    img = x.float().clamp(0, 1) * 255
    img = torch.round(img)  # the encoder sees 8-bit pixels
    # pad to whole 16 x 16 MCUs by repeating the edge, as encoders do
    ph, pw = (-h) % 16, (-w) % 16
    img = F.pad(img, (0, pw, 0, ph), mode="replicate")
    r, gch, b = img[:, 0], img[:, 1], img[:, 2]
    y = 0.299 * r + 0.587 * gch + 0.114 * b
    cb = -0.168736 * r - 0.331264 * gch + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * gch - 0.081312 * b + 128
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)  # 4:2:0
    d = _dct_matrix(dev)
    y = _blockwise(y - 128, qy, d) + 128
    cb = _blockwise(chroma[:, 0] - 128, qc, d) + 128
    cr = _blockwise(chroma[:, 1] - 128, qc, d) + 128
    # decoders store 8-bit planes, then upsample chroma with a 3/4, 1/4 triangle filter
    y, cb, cr = (torch.round(p).clamp(0, 255) for p in (y, cb, cr))
    c2 = F.interpolate(torch.stack([cb, cr], 1), scale_factor=2, mode="bilinear",
                       align_corners=False)
    cb, cr = c2[:, 0] - 128, c2[:, 1] - 128
    r = y + 1.402 * cr
    gch = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    out = torch.stack([r, gch, b], 1)[:, :, :h, :w]
    return (torch.round(out).clamp(0, 255) / 255).to(x.dtype)


# --- resize ----------------------------------------------------------------------------------

RESIZE_MODES = ("area", "bilinear", "bicubic")


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


# --- the second-order degradation ----------------------------------------------------------


@dataclass
class DegradeOptions:
    """Ranges and probabilities; defaults follow Real-ESRGAN's published training setting."""

    scale: tuple[float, float] = (2.0, 4.0)   # overall scale, uniform per batch
    # stage 1
    kernel_probs: tuple = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag: tuple[float, float] = (0.5, 4.0)
    betap: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    resize_prob: tuple = (0.2, 0.7, 0.1)      # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # stage 2
    blur_prob2: float = 0.8
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    sinc_prob2: float = 0.1
    resize_prob2: tuple = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    # video: one scaler, one encoder
    video_blur_sigma: tuple[float, float] = (0.2, 1.5)
    video_noise_range: tuple[float, float] = (0.0, 6.0)
    deinterlace_prob: float = 0.3
    video_quality_range: tuple[float, float] = (10.0, 50.0)
    deblock_prob: float = 0.5
    kernel_size: tuple[int, int] = (7, 21)
    modes: tuple[str, ...] = field(default=RESIZE_MODES)

    def override(self, text: str) -> "DegradeOptions":
        """A copy with one numeric field set from "FIELD=VALUE" (a range as "LO,HI"), for
        training's --degrade; unknown fields and values of the wrong shape are refused."""
        name, _, value = text.partition("=")
        name = name.strip()
        # scale is set by --scale; modes are names, not numbers
        settable = sorted(set(self.__dataclass_fields__) - {"modes", "scale"})
        if name not in settable:
            raise ValueError(f"--degrade {text!r}: unknown field; known: {', '.join(settable)}")
        current = getattr(self, name)
        try:
            vals = tuple(float(v) for v in value.split(","))
        except ValueError:
            raise ValueError(f"--degrade {text!r}: expected numbers") from None
        want = len(current) if isinstance(current, tuple) else 1
        if len(vals) != want or any(v < 0 for v in vals) or (want == 2 and vals[0] > vals[1]):
            shape = "one number >= 0" if want == 1 else (
                "LO,HI with 0 <= LO <= HI" if want == 2 else f"{want} numbers >= 0")
            raise ValueError(f"--degrade {text!r}: {name} takes {shape}")
        if isinstance(current, tuple) and all(isinstance(v, int) for v in current):
            vals = tuple(int(v) for v in vals)
        return replace(self, **{name: vals if isinstance(current, tuple) else vals[0]})


@dataclass
class Degraded:
    lr: torch.Tensor      # N x 3 x round(H/s) x round(W/s), in [0,1], 8-bit levels
    hr: torch.Tensor      # the input, unchanged
    scale: float          # the drawn overall scale s (the exact one is H / lr height)


def lr_size(h: int, w: int, scale: float) -> tuple[int, int]:
    return max(1, round(h / scale)), max(1, round(w / scale))


def _random_resize(x, g, probs, rng, modes, base_hw):
    which = int(_choice(g, probs, 1))
    if which == 0:
        s = 1 + (rng[1] - 1) * _scalar(g)
    elif which == 1:
        s = rng[0] + (1 - rng[0]) * _scalar(g)
    else:
        s = 1.0
    size = (max(1, int(base_hw[0] * s)), max(1, int(base_hw[1] * s)))
    return resize(x, size, _random_mode(g, modes))


def _random_mode(g, modes) -> str:
    return modes[int(torch.randint(len(modes), (1,), generator=g, device=g.device))]


def _to_8bit(x: torch.Tensor, dtype) -> torch.Tensor:
    return (torch.round(x.clamp(0, 1) * 255) / 255).to(dtype)


def _first_round(x, g, o: DegradeOptions, resize_fn) -> torch.Tensor:
    """Blur, resize (`resize_fn`), noise, JPEG with the stage-1 ranges of `o`."""
    n = x.shape[0]
    k = random_kernels(g, n, o.blur_sigma, o.kernel_probs, o.betag, o.betap, o.sinc_prob,
                       o.kernel_size)
    x = resize_fn(filter2d(x, k))
    x = add_noise(x, g, o.gaussian_noise_prob, o.noise_range, o.poisson_scale_range,
                  o.gray_noise_prob)
    return jpeg(x.clamp(0, 1), _uniform(g, *o.jpeg_range, n))


def _blend_kernels(k: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Replace kernels of samples where `keep` is False by an identity (pulse) kernel."""
    pulse = torch.zeros_like(k[0])
    pulse[MAX_KERNEL // 2, MAX_KERNEL // 2] = 1
    return torch.where(keep[:, None, None], k, pulse)


@torch.no_grad()
def degrade(hr: torch.Tensor, generator: torch.Generator,
            opts: DegradeOptions | None = None, scale: float | None = None) -> Degraded:
    """Second-order degradation of a batch of HR crops (float in [0,1], N x 3 x H x W).

    `generator` lives on hr's device (torch.Generator(device=hr.device).manual_seed(seed)).
    `scale` fixes the overall scale; otherwise it is drawn from opts.scale.
    """
    o = opts or DegradeOptions()
    g = generator
    n, _, h, w = hr.shape
    s = scale if scale is not None else o.scale[0] + (o.scale[1] - o.scale[0]) * _scalar(g)
    out_hw = lr_size(h, w, s)

    # stage 1: blur, resize, noise, JPEG
    x = _first_round(hr.float(), g, o,
                     lambda t: _random_resize(t, g, o.resize_prob, o.resize_range, o.modes, (h, w)))

    # stage 2: the same again, milder, with the resize relative to the target size
    k2 = random_kernels(g, n, o.blur_sigma2, o.kernel_probs, o.betag, o.betap, o.sinc_prob2,
                        o.kernel_size)
    k2 = _blend_kernels(k2, _rand(g, n) < o.blur_prob2)
    x = filter2d(x, k2)
    x = _random_resize(x, g, o.resize_prob2, o.resize_range2, o.modes, out_hw)
    x = add_noise(x, g, o.gaussian_noise_prob2, o.noise_range2, o.poisson_scale_range2,
                  o.gray_noise_prob2)

    # final: resize to the target + sinc, and JPEG, in random order (ringing before or after
    # the compression both occur in real pipelines)
    wc = math.pi / 3 + (math.pi - math.pi / 3) * _rand(g, n)
    k3 = _blend_kernels(sinc_kernels(wc), _rand(g, n) < o.final_sinc_prob)
    q3 = _uniform(g, *o.jpeg_range2, n)
    mode = _random_mode(g, o.modes)
    if _scalar(g) < 0.5:
        x = filter2d(resize(x, out_hw, mode), k3)
        x = jpeg(x.clamp(0, 1), q3)
    else:
        x = jpeg(x.clamp(0, 1), q3)
        x = filter2d(resize(x, out_hw, mode), k3)
    return Degraded(_to_8bit(x, hr.dtype), hr, s)


@torch.no_grad()
def degrade_first_order(hr: torch.Tensor, generator: torch.Generator,
                        opts: DegradeOptions | None = None, scale: float | None = None) -> Degraded:
    """One round only: blur, resize to the target, noise, JPEG (stage-1 ranges of `opts`).

    Most archived video went through one scaler and one encoder, milder than the second-order
    pipeline; training on a share of these keeps the model from over-smoothing such input.
    """
    o = opts or DegradeOptions()
    g = generator
    h, w = hr.shape[-2:]
    s = scale if scale is not None else o.scale[0] + (o.scale[1] - o.scale[0]) * _scalar(g)
    out_hw = lr_size(h, w, s)
    x = _first_round(hr.float(), g, o, lambda t: resize(t, out_hw, _random_mode(g, o.modes)))
    return Degraded(_to_8bit(x, hr.dtype), hr, s)


def bob_deinterlace(x: torch.Tensor) -> torch.Tensor:
    """Keep the top field (even lines) and rebuild the odd lines by linear interpolation, as a bob
    deinterlacer leaves interlaced footage: half the vertical detail, full horizontal detail."""
    out = x.clone()
    even = x[..., 0::2, :]
    below = torch.cat([even[..., 1:, :], even[..., -1:, :]], dim=-2)
    n_odd = x[..., 1::2, :].shape[-2]
    out[..., 1::2, :] = 0.5 * (even[..., :n_odd, :] + below[..., :n_odd, :])
    return out


def deblock(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Smooth the two pixels on each side of the block edges with a [1, 2, 1] / 4 filter across
    the edge, as a codec's in-loop deblocking filter softens block boundaries."""
    h, w = x.shape[-2:]
    k = torch.tensor([0.25, 0.5, 0.25], device=x.device, dtype=x.dtype)
    xh = F.conv2d(F.pad(x.flatten(0, 1)[:, None], (1, 1, 0, 0), mode="replicate"),
                  k.view(1, 1, 1, 3)).view_as(x)
    xv = F.conv2d(F.pad(xh.flatten(0, 1)[:, None], (0, 0, 1, 1), mode="replicate"),
                  k.view(1, 1, 3, 1)).view_as(x)
    col = torch.arange(w, device=x.device) % block
    row = torch.arange(h, device=x.device) % block
    near_c = ((col <= 1) | (col >= block - 2)).to(x.dtype)[None, :]
    near_r = ((row <= 1) | (row >= block - 2)).to(x.dtype)[:, None]
    m = torch.maximum(near_c.expand(h, w), near_r.expand(h, w))
    return x + m * (xv - x)


@torch.no_grad()
def degrade_video(hr: torch.Tensor, generator: torch.Generator,
                  opts: DegradeOptions | None = None, scale: float | None = None) -> Degraded:
    """Blur, resize to the target, mild noise, bob deinterlace (some samples), block-DCT coding at a
    low quality with 4:2:0 chroma, deblocking (some samples). Deinterlace, deblocking and the
    resize mode are drawn per batch; blur, noise and quality per sample."""
    o = opts or DegradeOptions()
    g = generator
    n, _, h, w = hr.shape
    s = scale if scale is not None else o.scale[0] + (o.scale[1] - o.scale[0]) * _scalar(g)
    out_hw = lr_size(h, w, s)
    k = random_kernels(g, n, o.video_blur_sigma, (1, 0, 0, 0, 0, 0), o.betag, o.betap, 0.0, (7, 9))
    x = resize(filter2d(hr.float(), k), out_hw, _random_mode(g, o.modes))
    sig = (_uniform(g, *o.video_noise_range, n) / 255).view(n, 1, 1, 1)
    x = x + torch.randn(x.shape, generator=g, device=x.device) * sig
    if _scalar(g) < o.deinterlace_prob:
        x = bob_deinterlace(x)
    x = jpeg(x.clamp(0, 1), _uniform(g, *o.video_quality_range, n))
    if _scalar(g) < o.deblock_prob:
        x = deblock(x)
    return Degraded(_to_8bit(x, hr.dtype), hr, s)


# --- fixed degradations for evaluation -----------------------------------------------------


def bicubic_down(hr: torch.Tensor, scale: float = 4) -> torch.Tensor:
    """Plain bicubic downscale with antialiasing (as MATLAB imresize / PIL), 8-bit rounded."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr.float(), size=lr_size(h, w, scale), mode="bicubic",
                       align_corners=False, antialias=True)
    return _to_8bit(lr, hr.dtype)


@torch.no_grad()
def realistic_eval(hr: torch.Tensor, seed: int = 0, scale: int = 4, blur_sigma: float = 1.2,
                   noise_sigma: float = 5.0, quality: int = 60) -> torch.Tensor:
    """The fixed held-out degradation: Gaussian blur, x`scale` down, Gaussian noise, JPEG.

    Runs on the CPU in fp32 whatever the input's device, so every machine makes the same LR.
    """
    dev, dt = hr.device, hr.dtype
    x = hr.detach().float().cpu()
    g = torch.Generator().manual_seed(seed)
    x = filter2d(x, gaussian_kernel(blur_sigma, 2 * math.ceil(3 * blur_sigma) + 1))
    x = F.interpolate(x, size=lr_size(*x.shape[-2:], scale), mode="bicubic",
                      align_corners=False, antialias=True)
    x = x + torch.randn(x.shape, generator=g) * (noise_sigma / 255)
    x = jpeg(x.clamp(0, 1), quality)
    return x.to(device=dev, dtype=dt)
