"""GenDR-Pix: pixel-unshuffle x8 -> UNet -> pixel-shuffle x8, no VAE.

`GenDRPix.forward` maps a target-sized RGB image in [0, 1], already padded to the x8 grid, to its
restoration. Resizing, grid phases and guidance live in `padcfg.py`.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

from .configs import SHUFFLE, UNetConfig, get_config
from .refiner import Refiner
from .unet import Conditioning, UNet

# Contexts: 0 = c_pos (the restoration prompt), 1 = c_neg (the softer, fidelity-leaning one);
# configs with `source_contexts` add the same pair for clean sources at SOURCE_OFFSET["clean"].
POS, NEG = 0, 1
# What the user says of a clip: "any" (it may be noisy or compressed: remove the damage) or "clean"
# (a clean master: sharpen, nothing to remove).
SOURCES = ("any", "clean")
SOURCE_OFFSET = {"any": 0, "clean": 2}
DEFAULT_SCALE_RANGE = (1.0, 4.0)
DEFAULT_DETAIL = 1.0


def source_default_detail(metadata: dict | None, source: str, fallback: float) -> float:
    """The detail a source's network runs at when none is given: its own, where the weights'
    metadata gives one (`sources[SOURCE]["default_detail"]`), else `fallback` (the model's)."""
    return _source_value(metadata, source, "default_detail", fallback)


def source_refine_strength(metadata: dict | None, source: str, fallback: float) -> float:
    """The refiner's strength for a source's network: its own (`sources[SOURCE]["refine_strength"]`),
    else `fallback` (the model's)."""
    return _source_value(metadata, source, "refine_strength", fallback)


def _source_value(metadata: dict | None, source: str, key: str, fallback: float) -> float:
    own = (metadata or {}).get("sources", {}).get(source, {})
    if isinstance(own, dict) and own.get(key) is not None:
        return float(own[key])
    return float(fallback)


class GenDRPix(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config)
        # Learned prompt embeddings replace the text encoder (stored in the weights file).
        self.c_pos = nn.Parameter(torch.randn(config.context_tokens, config.cross_attention_dim) * 0.02)
        self.c_neg = nn.Parameter(torch.randn(config.context_tokens, config.cross_attention_dim) * 0.02)
        if config.source_contexts:
            self.c_pos_clean = nn.Parameter(torch.randn(config.context_tokens, config.cross_attention_dim) * 0.02)
            self.c_neg_clean = nn.Parameter(torch.randn(config.context_tokens, config.cross_attention_dim) * 0.02)
        # After the UNet at output resolution, for configs with one; `refine_strength` scales its
        # correction (0: not run).
        self.refine = Refiner(*config.refiner) if config.refiner else None
        self.refine_strength = 1.0
        self.scale_range = DEFAULT_SCALE_RANGE
        # The detail the model was tuned for (PadCFG w): what `restore` uses when none is given.
        self.default_detail = DEFAULT_DETAIL
        self.metadata: dict = {}
        # Weight deltas that make the network for another source ({"clean": {tensor name: delta}},
        # float, on the CPU), from the weights file; the network for that source is built on demand.
        self.source_deltas: dict[str, dict[str, torch.Tensor]] = {}
        self._twins: dict = {}
        self.compile_mode: str | None = None
        self._cache: tuple | None = None
        self._lock = threading.Lock()

    # -- properties the callers use ------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.c_pos.device

    @property
    def dtype(self) -> torch.dtype:
        return self.c_pos.dtype

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources this model restores differently: ("any",) or ("any", "clean")."""
        return tuple(s for s in SOURCES if s == "any" or self.config.source_contexts or s in self.source_deltas)

    def for_source(self, source: str) -> tuple["GenDRPix", int]:
        """The network and the context offset that restore `source`: this network (with the
        source's contexts, for `source_contexts` configs) or, from the weights file's delta for the
        source, a twin network with its own weights (made once per device and dtype)."""
        if source == "any" or self.config.source_contexts:
            return self, self.context_offset(source)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if source not in self.source_deltas:
            raise ValueError(f"model config {self.config.name!r} has no network for source {source!r} "
                             f"(only: {', '.join(self.sources)})")
        key = (source, self.device, self.dtype)
        twin = self._twins.get(key)
        if twin is None:
            with self._lock:
                twin = self._twins.get(key)
                if twin is None:
                    twin = self._make_twin(source)
                    self._twins = {key: twin}  # one source's twin at a time is kept
        return twin, 0

    def _make_twin(self, source: str) -> "GenDRPix":
        delta = self.source_deltas[source]
        twin = GenDRPix(self.config)
        state = {k: v.detach().float().cpu() for k, v in self.state_dict().items()}
        with torch.no_grad():
            twin.load_state_dict({k: v + delta[k] if k in delta else v for k, v in state.items()})
        twin.scale_range = self.scale_range
        twin.default_detail = source_default_detail(self.metadata, source, self.default_detail)
        twin.refine_strength = source_refine_strength(self.metadata, source, self.refine_strength)
        twin.metadata = {**self.metadata, "for_source": source}
        twin = twin.to(self.device, self.dtype).eval().requires_grad_(False)
        if self.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last):
            twin = twin.to(memory_format=torch.channels_last)
        if self.compile_mode:  # accel.compile_model
            twin.unet.compile(mode=self.compile_mode, dynamic=False, fullgraph=False)
            twin.compile_mode = self.compile_mode
        return twin

    def context_names(self) -> tuple[str, ...]:
        """The learned contexts in index order (the per-sample `ctx_index` picks one)."""
        return ("c_pos", "c_neg") + (("c_pos_clean", "c_neg_clean") if self.config.source_contexts else ())

    def context_offset(self, source: str) -> int:
        """Index offset of `source`'s (c_pos, c_neg) pair; a clear error for a source the model lacks."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if source != "any" and not self.config.source_contexts:
            raise ValueError(f"model config {self.config.name!r} has no contexts for source {source!r}")
        return SOURCE_OFFSET[source]

    @property
    def trained(self) -> bool:
        return self.metadata.get("provenance", {}).get("trained", False) is True

    # -- constants, once per load ---------------------------------------------------------------
    def conditioning(self, scale: float | None = None) -> Conditioning:
        """Time projections and cross-attention K/V for every context (`context_names`), and the upscale factor
        `scale` for configs with `scale_embed` (ignored otherwise).

        In training they depend on the weights being learned, so they are recomputed each call; in
        inference they are computed once per scale and cached until the weights, device or dtype
        change.
        """
        scale = round(float(scale), 6) if scale is not None and self.config.scale_embed else None
        contexts = lambda: torch.stack([getattr(self, n) for n in self.context_names()])  # noqa: E731
        if self.training or torch.is_grad_enabled() and self.c_pos.requires_grad:
            return self.unet.conditioning(contexts(), scale)
        key = (self.device, self.dtype)
        cache = self._cache
        if cache is None or cache[0] != key or scale not in cache[1]:
            with self._lock:  # several CUDA streams / VapourSynth threads may ask at once
                cache = self._cache
                if cache is None or cache[0] != key:
                    cache = (key, {})
                if scale not in cache[1]:
                    with torch.no_grad():
                        conds = dict(list(cache[1].items())[-7:])  # a clip keeps one scale: a few suffice
                        conds[scale] = self.unet.conditioning(contexts(), scale)
                    cache = self._cache = (key, conds)
        return cache[1][scale]

    def invalidate(self) -> None:
        self._cache = None
        self._twins = {}

    def train(self, mode: bool = True):
        self.invalidate()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self.invalidate()
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        self.invalidate()
        return super().load_state_dict(*args, **kwargs)

    # -- the network ------------------------------------------------------------------------------
    def to_latent(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The input transform: [0, 1] -> [-1, 1] (`s`), then x8 unshuffle (`z`, the UNet's input).
        A config with `lr_grid` planes takes them in `grid` (1 or N x 4 x H x W, see
        `padcfg.input_grid`); None gives zeros (images that are no upscale, e.g. the
        discriminator's)."""
        s = x * 2 - 1
        if self.config.lr_grid:
            n, _, h, w = s.shape
            grid = (s.new_zeros(n, self.config.lr_grid, h, w) if grid is None
                    else grid.to(s.dtype).expand(n, -1, -1, -1))
            z = F.pixel_unshuffle(torch.cat([s, grid], 1), SHUFFLE)
        else:
            z = F.pixel_unshuffle(s, SHUFFLE)
        if self.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last):
            z = z.contiguous(memory_format=torch.channels_last)
        return s, z

    def forward(self, x: torch.Tensor, ctx_index: torch.Tensor | None = None,
                grid: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
        """`x`: N x 3 x H x W in [0, 1], H and W multiples of 8. `ctx_index`: per-sample context
        (POS/NEG, plus a source's offset); None means c_pos for all. `grid`: the input-grid planes, padded as `x` (configs
        with `lr_grid`). `scale`: the upscale factor that made `x` (configs with `scale_embed`;
        None: no scale term). Returns N x 3 x H x W (not clamped)."""
        s, z = self.to_latent(x, grid)
        out = F.pixel_shuffle(self.unet(z, self.conditioning(scale), ctx_index), SHUFFLE)
        y = s + out if self.config.residual else out
        return (y + 1) * 0.5


def build_model(config_name: str | UNetConfig, device: str | torch.device = "cpu") -> GenDRPix:
    """An untrained network of a registered config (device 'meta' builds it without memory).

    conv_out starts at zero, so with the residual output an untrained model returns the bicubic
    upscale: a safe starting point for training and an honest stand-in before weights exist.
    """
    cfg = config_name if isinstance(config_name, UNetConfig) else get_config(config_name)
    with torch.device(device):
        model = GenDRPix(cfg)
    if model.device.type != "meta":
        nn.init.zeros_(model.unet.conv_out.weight)
        nn.init.zeros_(model.unet.conv_out.bias)
        if model.unet.class_embedding is not None:  # no scale term until training gives it one
            zero_scale_embedding(model)
    model.metadata = {"provenance": {"trained": False, "note": "untrained: output equals bicubic"}}
    return model.eval()


def zero_scale_embedding(model: GenDRPix) -> None:
    """Zero the scale embedding's last layer: the model then ignores the scale, and training can
    still give it weight (the first layer's output is not zero)."""
    nn.init.zeros_(model.unet.class_embedding.linear_2.weight)
    nn.init.zeros_(model.unet.class_embedding.linear_2.bias)
    model.invalidate()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
