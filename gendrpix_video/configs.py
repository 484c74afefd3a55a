"""Registry of network configurations (timm-style): a name maps to everything needed to build one."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

# Pixel-(un)shuffle factor: the x8 a VAE latent would have had.
SHUFFLE = 8


def timestep_for_alpha_bar(alpha_bar: float = 0.5, steps: int = 1000) -> float:
    """The SD2.1 'scaled_linear' schedule timestep whose cumulative alpha is `alpha_bar`.

    GenDR fixes alpha-bar = 0.5; on SD2.1's schedule that is t ~ 354. Fractional t is kept because
    the sinusoidal embedding is defined for any real t.
    """
    betas = [(math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * i / (steps - 1)) ** 2
             for i in range(steps)]
    acc, prev = 1.0, None
    for t, b in enumerate(betas):
        prev, acc = acc, acc * (1.0 - b)
        if acc <= alpha_bar:
            # Linear interpolation between t-1 and t in alpha-bar.
            return t - 1 + (prev - alpha_bar) / (prev - acc)
    return float(steps - 1)


@dataclass(frozen=True)
class UNetConfig:
    """An SD-shaped UNet on pixel-unshuffled input.

    `attention` marks, per resolution level, whether the level has transformer blocks
    (CrossAttnDownBlock2D / CrossAttnUpBlock2D in diffusers' terms).
    """

    name: str
    block_out_channels: tuple[int, ...]
    attention: tuple[bool, ...]
    layers_per_block: int = 2
    head_dim: int = 64
    cross_attention_dim: int = 1024
    context_tokens: int = 77
    in_channels: int = 3 * SHUFFLE * SHUFFLE
    out_channels: int = 3 * SHUFFLE * SHUFFLE
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    mid_attention: bool = True
    timestep: float = field(default_factory=lambda: round(timestep_for_alpha_bar(0.5), 4))
    residual: bool = True          # (ours) output added to the bicubic input
    # (ours) extra input planes telling each output pixel where it lies on the input's pixel grid
    # (sin and cos of its input coordinate, y and x: 4). At a scale that is not a divisor of 8 the
    # grid's phase changes from position to position, and without it the network cannot tell
    # which sharpening fits; in_channels counts them ((3 + lr_grid) x 64).
    lr_grid: int = 0
    # (ours) the upscale factor as a second embedding added to the timestep's, so every ResNet block
    # knows how far the input was enlarged: trained on mixed scales without it, one network has to
    # fit x2 and x4 with one sharpening and gives up most of it. diffusers' `class_embed_type=
    # "timestep"` layout, with the scale's position (`scale_position`) as the class label.
    scale_embed: bool = False
    # (ours) a second pair of contexts for clean sources (c_pos_clean, c_neg_clean): told that a clip
    # carries no noise or compression, the network can sharpen where otherwise it must guess from
    # the picture whether to sharpen or to remove damage, and in one set of weights guesses softly.
    source_contexts: bool = False
    pad_mode: str = "reflect"      # (ours) padding to the x8 grid
    # (ours) a small network after the UNet at output resolution (`refiner.Refiner`: channels,
    # blocks and, when not 2, its unshuffle factor); () for none. The UNet's finest features cover 8 x 8 output pixels each, so it places
    # edges less precisely than a network that sees every pixel.
    refiner: tuple[int, ...] = ()
    description: str = ""

    def __post_init__(self):
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError(f"config {self.name}: attention needs one flag per level")
        if self.lr_grid and (self.lr_grid != 4 or self.in_channels != (3 + self.lr_grid) * SHUFFLE * SHUFFLE):
            raise ValueError(f"config {self.name}: lr_grid must be 0 or 4, with in_channels (3 + lr_grid) x 64")
        if self.refiner and (len(self.refiner) not in (2, 3) or not all(isinstance(v, int) and v > 0 for v in self.refiner)
                             or self.refiner[2:] not in ((), (2,), (4,))):
            raise ValueError(f"config {self.name}: refiner must be () or (channels, blocks[, down 2 or 4]), "
                             f"got {self.refiner!r}")
        for c, att in zip(self.block_out_channels, self.attention):
            if c % self.norm_num_groups:
                raise ValueError(f"config {self.name}: {c} channels do not divide into {self.norm_num_groups} groups")
            if (att or self.mid_attention and c == self.block_out_channels[-1]) and c % self.head_dim:
                raise ValueError(f"config {self.name}: {c} channels do not divide into heads of {self.head_dim}")

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UNetConfig":
        d = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        for k in ("block_out_channels", "attention", "refiner"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def replace(self, **changes) -> "UNetConfig":
        return dataclasses.replace(self, **changes)

    def diffusers_config(self) -> dict:
        """The equivalent diffusers `UNet2DConditionModel` constructor arguments (for key checks)."""
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.attention)
        up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.attention))
        return dict(
            sample_size=64, in_channels=self.in_channels, out_channels=self.out_channels,
            down_block_types=down, up_block_types=up,
            mid_block_type="UNetMidBlock2DCrossAttn" if self.mid_attention else None,
            block_out_channels=self.block_out_channels, layers_per_block=self.layers_per_block,
            norm_num_groups=self.norm_num_groups, norm_eps=self.norm_eps,
            cross_attention_dim=self.cross_attention_dim,
            attention_head_dim=tuple(c // self.head_dim for c in self.block_out_channels),
            use_linear_projection=True, flip_sin_to_cos=True, freq_shift=0,
            class_embed_type="timestep" if self.scale_embed else None,
        )


CONFIGS: dict[str, UNetConfig] = {}


def register(cfg: UNetConfig) -> UNetConfig:
    CONFIGS[cfg.name] = cfg
    return cfg


def get_config(name: str) -> UNetConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown config {name!r}; known: {', '.join(sorted(CONFIGS))}") from None


# The paper's size: SD2.1's UNet with 192-channel conv_in/conv_out (about 867M parameters).
register(UNetConfig(
    name="sd21", block_out_channels=(320, 640, 1280, 1280), attention=(True, True, True, False),
    head_dim=64, cross_attention_dim=1024, context_tokens=77,
    description="paper size, diffusers UNet2DConditionModel layout (SD2.1)",
))
# Trainable here: attention only at the coarsest level, where tokens are few.
register(UNetConfig(
    name="base", block_out_channels=(128, 256, 384), attention=(False, False, True),
    head_dim=64, cross_attention_dim=256, context_tokens=4,
    description="about 57M parameters",
))
register(UNetConfig(
    name="small", block_out_channels=(64, 128, 192), attention=(False, False, True),
    head_dim=64, cross_attention_dim=128, context_tokens=4,
    description="about 15M parameters (30 MB in fp16)",
))
register(UNetConfig(
    name="lite", block_out_channels=(64, 128, 128), attention=(False, False, True),
    head_dim=64, cross_attention_dim=128, context_tokens=4,
    description="about 8.5M parameters",
))
# `small` with a wider first level: its 64 channels carry the 192 values (8x8 px x 3) of each
# position, a bottleneck for fine detail (MODEL_CARD.md). `wide` is the shipped default's config.
register(CONFIGS["small"].replace(
    name="mid", block_out_channels=(96, 128, 192),
    description="about 16M parameters: small with a 96-channel first level",
))
register(CONFIGS["small"].replace(
    name="wide", block_out_channels=(128, 128, 192),
    description="about 17M parameters (35 MB in fp16): small with a 128-channel first level; the shipped default",
))
register(CONFIGS["wide"].replace(
    name="wide-grid", lr_grid=4, in_channels=(3 + 4) * SHUFFLE * SHUFFLE,
    description="wide with the input-grid planes (about 17.6M parameters); "
                "`python -m gendrpix_video.training.grow` makes one from a wide model, same output",
))
register(CONFIGS["wide"].replace(
    name="wide-scale", scale_embed=True,
    description="wide with the scale embedding (about 17.7M parameters); "
                "`python -m gendrpix_video.training.grow` makes one from a wide model, same output",
))
register(CONFIGS["wide-scale"].replace(
    name="wide-source", source_contexts=True,
    description="wide-scale with contexts for clean sources (`restore(..., source='clean')`); "
                "`python -m gendrpix_video.training.grow` makes one from a wide-scale model, same output",
))
# Tests: restores a 64x64 frame on the CPU in milliseconds.
register(UNetConfig(
    name="tiny", block_out_channels=(32, 64), attention=(False, True), layers_per_block=1,
    head_dim=32, cross_attention_dim=32, context_tokens=2, norm_num_groups=8,
    description="for tests only",
))
register(CONFIGS["tiny"].replace(name="tiny-grid", lr_grid=4, in_channels=(3 + 4) * SHUFFLE * SHUFFLE,
                                 description="for tests only: tiny with the input-grid planes"))
register(CONFIGS["tiny"].replace(name="tiny-scale", scale_embed=True,
                                 description="for tests only: tiny with the scale embedding"))
register(CONFIGS["tiny-scale"].replace(name="tiny-source", source_contexts=True,
                                       description="for tests only: tiny-scale with clean-source contexts"))


def scale_position(scale: float) -> float:
    """Where an upscale factor sits on the embedding's timestep axis: 100 per octave (x2: 100,
    x4: 200), so neighbouring scales get nearby embeddings and x1 is 0."""
    return 100.0 * math.log2(scale)
