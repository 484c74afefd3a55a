"""Evaluation metrics in torch: Y-PSNR, SSIM (Y channel) and a flicker index for video.

Conventions follow the super-resolution literature: luma Y of ITU-R BT.601 on the [16, 235]
scale (MATLAB's rgb2ycbcr), a border of `border` pixels cropped (the scale, usually 4), and SSIM
with an 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, over the valid region.

NIQE is not here: its pristine-model parameters (mu, cov) are not shipped by any package
installed on this machine (scikit-image has no NIQE), and nothing may be downloaded at run time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W RGB in [0,1] -> N x 1 x H x W luma in [16, 235] (BT.601, 8-bit range)."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64, device=x.device)
    return 16.0 + torch.einsum("nchw,c->nhw", x.double(), w)[:, None]


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR (dB) over all channels and pixels; inputs N x C x H x W."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def psnr_y(out: torch.Tensor, ref: torch.Tensor, border: int = 4) -> torch.Tensor:
    """Per-image PSNR on the Y channel (255 scale), `border` pixels cropped from each side."""
    return psnr(_crop(rgb_to_y(out), border), _crop(rgb_to_y(ref), border), 255.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device="cpu") -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0, win: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-image mean SSIM of single- or multi-channel images (channels averaged).

    Statistics are Gaussian-weighted means over the valid region (no padding), with population
    (not sample) covariance, as in Wang et al.'s MATLAB code and skimage's
    `structural_similarity(gaussian_weights=True, use_sample_covariance=False)`.
    """
    a, b = a.double(), b.double()
    n, c = a.shape[:2]
    w = _gaussian_window(win, sigma, a.device).expand(c, 1, win, win)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t):
        return F.conv2d(t, w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.flatten(1).mean(1)


def ssim_y(out: torch.Tensor, ref: torch.Tensor, border: int = 4) -> torch.Tensor:
    """Per-image SSIM on the Y channel (255 scale), `border` pixels cropped from each side."""
    return ssim(_crop(rgb_to_y(out), border), _crop(rgb_to_y(ref), border), 255.0)


def temporal_change(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute frame-to-frame difference of a clip, T x C x H x W."""
    return (frames[1:].double() - frames[:-1].double()).abs().mean()


def flicker_index(output: torch.Tensor, bicubic: torch.Tensor) -> float:
    """Temporal change of the restored clip relative to the bicubic upscale of the same input.

    1.0 means as stable as bicubic; above 1 the model adds frame-to-frame changes (flicker or
    newly resolved motion detail), below 1 it is smoother. Both clips T x C x H x W, same size.
    """
    return float(temporal_change(output) / temporal_change(bicubic).clamp_min(1e-12))
