"""An SD-shaped UNet whose state-dict keys and shapes are those of diffusers' `UNet2DConditionModel`.

Only what GenDR-Pix needs is built: a fixed timestep and a fixed context, so the per-resnet time
projections and the cross-attention keys/values are constants. `UNet.conditioning()` computes them
once; `UNet.forward()` takes them, so nothing constant is recomputed per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configs import UNetConfig, scale_position


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """diffusers `Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)`."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


@dataclass
class Conditioning:
    """Constants of one forward: a time projection per resnet, cross-attention K/V per attention.

    `kv[i]` holds keys and values for every context (`n_ctx x heads x L x head_dim`); a forward
    picks a context per sample with `ctx_index`.
    """

    temb: list[torch.Tensor]
    kv: list[tuple[torch.Tensor, torch.Tensor]]


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin: int, cout: int, temb_dim: int, groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.slot = -1  # index into Conditioning.temb, set by UNet

    def time_projection(self, emb: torch.Tensor) -> torch.Tensor:
        return self.time_emb_proj(F.silu(emb))[:, :, None, None]

    def forward(self, x, cond: Conditioning):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + cond.temb[self.slot]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


# The self-attention kernel: torch's SDPA unless `accel.attention("fa4")` swaps in FlashAttention-4.
# Cross-attention (4 context tokens) always uses SDPA: it is cheap and FA4 gains nothing there.
_self_attention = F.scaled_dot_product_attention


def set_self_attention(fn):
    """Install `fn(q, k, v)` (B x heads x tokens x head_dim) for self-attention; returns the old one."""
    global _self_attention
    old, _self_attention = _self_attention, fn
    return old


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, kv_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])
        self.slot = -1  # index into Conditioning.kv for cross-attention, set by UNet

    def _split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def context_kv(self, context: torch.Tensor):
        return self._split(self.to_k(context)), self._split(self.to_v(context))

    def forward(self, x, kv=None):
        b, n, c = x.shape
        q = self._split(self.to_q(x))
        if kv is None:
            k, v = self.context_kv(x)
            o = _self_attention(q, k, v)
        else:
            o = F.scaled_dot_product_attention(q, *kv)
        return self.to_out[0](o.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, kv_dim=context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, kv):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), kv)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """diffusers' Transformer2DModel with use_linear_projection=True and one block."""

    def __init__(self, dim: int, head_dim: int, context_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(dim, dim // head_dim, head_dim, context_dim)])
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, x, cond: Conditioning, ctx_index):
        b, c, h, w = x.shape
        attn2 = self.transformer_blocks[0].attn2
        k, v = cond.kv[attn2.slot]
        if ctx_index is None:        # every sample uses context 0: a view, no copy
            kv = (k[:1].expand(b, -1, -1, -1), v[:1].expand(b, -1, -1, -1))
        else:
            kv = (k[ctx_index], v[ctx_index])
        t = self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = self.proj_in(t)
        for blk in self.transformer_blocks:
            t = blk(t, kv)
        t = self.proj_out(t)
        return x + t.reshape(b, h, w, c).permute(0, 3, 1, 2)


class Downsample2D(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, size=None):
        # Nearest x2, or to the skip's size when the level above had an odd size.
        x = F.interpolate(x, size=size, mode="nearest") if size else F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x)


class DownBlock(nn.Module):
    """CrossAttnDownBlock2D when `attention`, else DownBlock2D."""

    def __init__(self, cin, cout, cfg: UNetConfig, attention: bool, downsample: bool):
        super().__init__()
        n = cfg.layers_per_block
        self.resnets = nn.ModuleList(
            ResnetBlock2D(cin if i == 0 else cout, cout, cfg.time_embed_dim, cfg.norm_num_groups, cfg.norm_eps)
            for i in range(n))
        if attention:
            self.attentions = nn.ModuleList(
                Transformer2DModel(cout, cfg.head_dim, cfg.cross_attention_dim, cfg.norm_num_groups) for _ in range(n))
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if downsample else None

    def forward(self, x, cond, ctx_index, skips: list):
        attns = getattr(self, "attentions", None)
        for i, res in enumerate(self.resnets):
            x = res(x, cond)
            if attns is not None:
                x = attns[i](x, cond, ctx_index)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x


class UpBlock(nn.Module):
    """CrossAttnUpBlock2D when `attention`, else UpBlock2D (layers_per_block + 1 resnets)."""

    def __init__(self, cin_prev, cout, cskip_last, cfg: UNetConfig, attention: bool, upsample: bool):
        super().__init__()
        n = cfg.layers_per_block + 1
        self.resnets = nn.ModuleList()
        for i in range(n):
            skip = cskip_last if i == n - 1 else cout
            cin = cin_prev if i == 0 else cout
            self.resnets.append(ResnetBlock2D(cin + skip, cout, cfg.time_embed_dim, cfg.norm_num_groups, cfg.norm_eps))
        if attention:
            self.attentions = nn.ModuleList(
                Transformer2DModel(cout, cfg.head_dim, cfg.cross_attention_dim, cfg.norm_num_groups) for _ in range(n))
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if upsample else None

    def forward(self, x, cond, ctx_index, skips: list):
        attns = getattr(self, "attentions", None)
        for i, res in enumerate(self.resnets):
            x = res(torch.cat([x, skips.pop()], dim=1), cond)
            if attns is not None:
                x = attns[i](x, cond, ctx_index)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, size=skips[-1].shape[-2:] if skips else None)
        return x


class MidBlock(nn.Module):
    def __init__(self, c, cfg: UNetConfig):
        super().__init__()
        mk = lambda: ResnetBlock2D(c, c, cfg.time_embed_dim, cfg.norm_num_groups, cfg.norm_eps)  # noqa: E731
        self.resnets = nn.ModuleList([mk(), mk()])
        self.attentions = nn.ModuleList(
            [Transformer2DModel(c, cfg.head_dim, cfg.cross_attention_dim, cfg.norm_num_groups)])

    def forward(self, x, cond, ctx_index):
        x = self.resnets[0](x, cond)
        x = self.attentions[0](x, cond, ctx_index)
        return self.resnets[1](x, cond)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.block_out_channels
        n_levels = len(ch)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], cfg.time_embed_dim)
        # The upscale factor (configs with `scale_embed`), named as diffusers names a class embedding.
        self.class_embedding = TimestepEmbedding(ch[0], cfg.time_embed_dim) if cfg.scale_embed else None
        self.down_blocks = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            self.down_blocks.append(DownBlock(cin, c, cfg, cfg.attention[i], downsample=i < n_levels - 1))
            cin = c
        if cfg.mid_attention:
            self.mid_block = MidBlock(ch[-1], cfg)
        else:
            self.mid_block = None
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(ch))
        prev = ch[-1]
        for i, c in enumerate(rev):
            cskip_last = rev[min(i + 1, n_levels - 1)]
            att = list(reversed(cfg.attention))[i]
            self.up_blocks.append(UpBlock(prev, c, cskip_last, cfg, att, upsample=i < n_levels - 1))
            prev = c
        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, ch[0], eps=cfg.norm_eps)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        self.resnets = [m for m in self.modules() if isinstance(m, ResnetBlock2D)]
        self.cross_attentions = [m.transformer_blocks[0].attn2 for m in self.modules()
                                 if isinstance(m, Transformer2DModel)]
        for i, m in enumerate(self.resnets):
            m.slot = i
        for i, m in enumerate(self.cross_attentions):
            m.slot = i

    def conditioning(self, contexts: torch.Tensor, scale: float | None = None) -> Conditioning:
        """Constants for `contexts` (`n_ctx x L x D`) and, with `scale_embed`, the upscale factor
        `scale` (None: no scale term): computed once per load and scale in inference."""
        p = self.conv_in.weight
        dim = self.cfg.block_out_channels[0]
        t = torch.tensor([self.cfg.timestep], device=p.device)
        emb = self.time_embedding(timestep_embedding(t, dim).to(p.dtype))
        if self.class_embedding is not None and scale is not None:
            c = torch.tensor([scale_position(scale)], device=p.device)
            emb = emb + self.class_embedding(timestep_embedding(c, dim).to(p.dtype))
        temb = [r.time_projection(emb) for r in self.resnets]
        kv = [a.context_kv(contexts.to(p.dtype)) for a in self.cross_attentions]
        return Conditioning(temb, kv)

    def encode(self, z, cond: Conditioning, ctx_index: torch.Tensor | None = None):
        """The contracting path: (output of each level and the mid block, the skips the up path takes).
        Also the frozen feature trunk of the Stage II discriminator."""
        x = self.conv_in(z)
        skips, feats = [x], [x]
        for blk in self.down_blocks:
            x = blk(x, cond, ctx_index, skips)
            feats.append(x)
        if self.mid_block is not None:
            feats.append(self.mid_block(x, cond, ctx_index))
        return feats, skips

    def forward(self, z, cond: Conditioning, ctx_index: torch.Tensor | None = None):
        feats, skips = self.encode(z, cond, ctx_index)
        x = feats[-1]
        for blk in self.up_blocks:
            x = blk(x, cond, ctx_index, skips)
        return self.conv_out(F.silu(self.conv_norm_out(x)))
