"""Training losses: masked Fourier loss, the pattern loss, RandPad, the G1-feature discriminator
and perceptual term, and a small pixel discriminator for the refiner."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..configs import SHUFFLE
from ..padcfg import pad_to_grid


@functools.lru_cache(maxsize=16)
def lattice_mask(h: int, w: int, radius: float, device_str: str) -> torch.Tensor:
    """Mask passing small discs around the x8 artefact lattice (k H/8, l W/8), DC excluded.

    Pixel-shuffle artefacts repeat every 8 pixels, so their energy sits on that lattice of
    frequencies; the rest of the spectrum is left to the other losses. Radius in frequency bins (ours).
    """
    fy = torch.arange(h, dtype=torch.float32)
    fx = torch.arange(w, dtype=torch.float32)
    m = torch.zeros(h, w)
    for k in range(SHUFFLE):
        for l in range(SHUFFLE):
            if k == 0 and l == 0:
                continue
            cy, cx = k * h / SHUFFLE, l * w / SHUFFLE
            # distance on the periodic (wrapped) frequency grid
            dy = torch.minimum((fy - cy).abs(), h - (fy - cy).abs())[:, None]
            dx = torch.minimum((fx - cx).abs(), w - (fx - cx).abs())[None, :]
            m = torch.maximum(m, ((dy ** 2 + dx ** 2) <= radius ** 2).float())
    return m.to(device_str)


def masked_fourier_loss(y: torch.Tensor, target: torch.Tensor, radius: float = 2.0) -> torch.Tensor:
    """L_F = || M * (|FFT(y)| - |FFT(target)|) ||_1, per channel, orthonormal 2-D FFT."""
    h, w = y.shape[-2:]
    m = lattice_mask(h, w, radius, str(y.device))
    fy = torch.fft.fft2(y.float(), norm="ortho").abs()
    ft = torch.fft.fft2(target.float(), norm="ortho").abs()
    return (m * (fy - ft).abs()).sum() / (m.sum() * y.shape[0] * y.shape[1])


@functools.lru_cache(maxsize=4)
def _pattern_tables(h: int, w: int, device_str: str) -> tuple[torch.Tensor, torch.Tensor]:
    win = (torch.hann_window(h, periodic=False)[:, None] * torch.hann_window(w, periodic=False)[None, :])
    fy, fx = torch.fft.fftfreq(h), torch.fft.fftfreq(w)
    r = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()
    return win.to(device_str), ((r >= 0.08) & (r < 0.3)).float().to(device_str)


def pattern_loss(y: torch.Tensor, target: torch.Tensor, factor: float = 4.0, smooth: int = 7) -> torch.Tensor:
    """Texture the scene lacks: each crop's windowed luma power spectrum above `factor` x the
    target's local level (a `smooth`-bin mean), between 0.08 and 0.3 cycles a pixel, over the
    target's energy in that band, averaged over the crops: eval-real's pattern score made a loss.
    Energy the scene has (its edges and texture, at their own frequencies) costs nothing; a mesh
    drawn at one period, whose peaks stand far above the scene's level, does."""
    h, w = y.shape[-2:]
    win, band = _pattern_tables(h, w, str(y.device))
    luma = lambda x: (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).float()  # noqa: E731

    def power(x):
        x = luma(x)
        return torch.fft.fft2((x - x.mean((-2, -1), keepdim=True)) * win).abs() ** 2
    with torch.no_grad():
        g = power(target)
        local = torch.fft.ifftshift(F.avg_pool2d(torch.fft.fftshift(g, dim=(-2, -1))[:, None], smooth, 1,
                                                 smooth // 2, count_include_pad=False)[:, 0], dim=(-2, -1))
        energy = (g * band).sum((-2, -1)).clamp(min=1e-6)
    excess = (power(y) - factor * local).clamp(min=0) * band
    return (excess.sum((-2, -1)) / energy).mean()


def rand_pad(x: torch.Tensor, generator: torch.Generator | None = None, mode: str = "reflect") -> torch.Tensor:
    """RandPad: pad by (p, 8-p, q, 8-q), p, q uniform in 0..7, so the x8 grid phase moves and a
    discriminator cannot latch onto it. One phase per call (real and fake get independent calls)."""
    p, q = torch.randint(0, SHUFFLE, (2,), generator=generator).tolist()
    return pad_to_grid(x, (p, SHUFFLE - p, q, SHUFFLE - q), mode)


class G1Features(nn.Module):
    """The frozen Stage I network's encoder path (conv_in, down blocks, mid block) as a feature
    extractor: the discriminator's trunk and the perceptual term's feature space."""

    def __init__(self, g1):
        super().__init__()
        self.g1 = g1.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.g1.unet.encode(self.g1.to_latent(x)[1], self.g1.conditioning())[0]


class Discriminator(nn.Module):
    """A trainable head on the frozen G1 features: a patch logit map from the deepest features and
    a second from the first level, so both texture and structure are judged."""

    def __init__(self, trunk: G1Features, width: int = 256):
        super().__init__()
        self.trunk = trunk
        ch = trunk.g1.config.block_out_channels
        self.head_deep = nn.Sequential(
            nn.Conv2d(ch[-1], width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 1, 1))
        self.head_fine = nn.Sequential(
            nn.Conv2d(ch[0], width // 2, 3, padding=1), nn.SiLU(), nn.Conv2d(width // 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x)
        a = self.head_deep(feats[-1]).flatten(1).mean(1)
        b = self.head_fine(feats[1]).flatten(1).mean(1)
        return a + b


def perceptual_loss(trunk: G1Features, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_P: L1 between frozen G1 features of the output and of the target, level by level (ours)."""
    fy, ft = trunk(y), trunk(target)
    return sum(F.l1_loss(a, b.detach()) for a, b in zip(fy, ft)) / len(fy)


class PixelDiscriminator(nn.Module):
    """A patch discriminator on output pixels for the refiner (ours): spectrally normalised
    convolutions, two stride-2 steps, a logit per patch of about 22 px. It sees every pixel, so a
    mesh at the refiner's x2 or the UNet's x8 period is as visible to it as a soft edge."""

    def __init__(self, width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, width, 3, padding=1)), act(),
            sn(nn.Conv2d(width, width * 2, 4, 2, 1)), act(),
            sn(nn.Conv2d(width * 2, width * 4, 4, 2, 1)), act(),
            sn(nn.Conv2d(width * 4, width * 4, 3, padding=1)), act(),
            sn(nn.Conv2d(width * 4, 1, 3, padding=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)
