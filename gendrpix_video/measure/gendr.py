"""GenDR, the latent predecessor, as a reference for measurement only: the same UNet between a
16-channel VAE encoder and decoder (AutoencoderKL shape, blocks 128/256/512/512, diffusers key names).

It exists so the VAE-elimination claim (time and memory at 4K) can be measured on our own hardware.
It is never trained or shipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..configs import UNetConfig, get_config
from ..model import NEG, POS
from ..padcfg import pad_to_grid, resize
from ..unet import UNet

LATENT_CHANNELS = 16
VAE_BLOCKS = (128, 256, 512, 512)


class VaeResnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class VaeAttention(nn.Module):
    """Single-head self-attention over the latent grid (diffusers' VAE mid-block attention)."""

    CHUNK = 16384

    def __init__(self, c):
        super().__init__()
        self.group_norm = nn.GroupNorm(32, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).flatten(2).transpose(1, 2)
        q, k, v = (f(t)[:, None] for f in (self.to_q, self.to_k, self.to_v))
        # One 512-wide head is beyond the flash kernels; queries in chunks keep a math fallback in memory.
        o = torch.cat([F.scaled_dot_product_attention(qc, k, v) for qc in q.split(self.CHUNK, dim=2)], dim=2)[:, 0]
        return x + self.to_out[0](o).transpose(1, 2).reshape(b, c, h, w)


class VaeMid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resnets = nn.ModuleList([VaeResnet(c, c), VaeResnet(c, c)])
        self.attentions = nn.ModuleList([VaeAttention(c)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class _Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # diffusers' asymmetric padding


class _Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Block(nn.Module):
    def __init__(self, cin, cout, n, down=False, up=False):
        super().__init__()
        self.resnets = nn.ModuleList(VaeResnet(cin if i == 0 else cout, cout) for i in range(n))
        if down:
            self.downsamplers = nn.ModuleList([_Down(cout)])
        if up:
            self.upsamplers = nn.ModuleList([_Up(cout)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for s in getattr(self, "downsamplers", []) or getattr(self, "upsamplers", []):
            x = s(x)
        return x


class Encoder(nn.Module):
    def __init__(self, ch=VAE_BLOCKS, z=LATENT_CHANNELS):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            _Block(ch[max(i - 1, 0)], c, 2, down=i < len(ch) - 1) for i, c in enumerate(ch))
        self.mid_block = VaeMid(ch[-1])
        self.conv_norm_out = nn.GroupNorm(32, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * z, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, ch=VAE_BLOCKS, z=LATENT_CHANNELS):
        super().__init__()
        rev = list(reversed(ch))
        self.conv_in = nn.Conv2d(z, rev[0], 3, padding=1)
        self.mid_block = VaeMid(rev[0])
        self.up_blocks = nn.ModuleList(
            _Block(rev[max(i - 1, 0)], c, 3, up=i < len(ch) - 1) for i, c in enumerate(rev))
        self.conv_norm_out = nn.GroupNorm(32, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], 3, 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.quant_conv = nn.Conv2d(2 * LATENT_CHANNELS, 2 * LATENT_CHANNELS, 1)
        self.post_quant_conv = nn.Conv2d(LATENT_CHANNELS, LATENT_CHANNELS, 1)

    def encode(self, x):
        return self.quant_conv(self.encoder(x))[:, :LATENT_CHANNELS]  # the posterior's mean

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class GenDR(nn.Module):
    """GenDR: bicubic up -> VAE encode -> UNet (16 channels in and out) -> VAE decode."""

    def __init__(self, unet_config: str | UNetConfig = "sd21"):
        super().__init__()
        cfg = unet_config if isinstance(unet_config, UNetConfig) else get_config(unet_config)
        self.config = cfg.replace(in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS)
        self.vae = AutoencoderKL()
        self.unet = UNet(self.config)
        self.contexts = nn.Parameter(torch.randn(2, cfg.context_tokens, cfg.cross_attention_dim) * 0.02)

    def forward(self, x_up: torch.Tensor, detail: float = 1.0) -> torch.Tensor:
        """`x_up`: target-sized RGB in [0, 1], multiples of 8. CFG runs the two contexts as one batch."""
        cond = self.unet.conditioning(self.contexts)
        z = self.vae.encode(x_up * 2 - 1)
        if detail == 1.0:
            e = self.unet(z, cond)
        else:
            n = z.shape[0]
            ctx = torch.tensor([POS] * n + [NEG] * n, device=z.device)
            both = self.unet(torch.cat([z, z]), cond, ctx)
            e = detail * both[:n] + (1 - detail) * both[n:]
        return (self.vae.decode(e) + 1) * 0.5


@torch.inference_mode()
def gendr_restore(model: GenDR, frames: torch.Tensor, size, detail: float = 1.0) -> torch.Tensor:
    p = next(model.parameters())
    x = resize(frames.to(p.device, p.dtype), size)
    x = pad_to_grid(x, (0, 0, 0, 0), "reflect")
    return model(x, detail)[..., :size[0], :size[1]].clamp(0, 1)
