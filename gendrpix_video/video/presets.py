"""Upscale settings: the `UpscaleSettings` dataclass and the YAML presets in `presets/` that load
into it. Every key is checked once, on the way in: a bad preset or value is one PresetError whose
one line names each bad key."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..damage import AUTO, SOURCE_CHOICES
from ..policy import SUPERSAMPLE_RANGE, output_size as policy_output_size
from .colour import layout
from .encode import CODECS, supported_pix_fmts
from ..temporal import DEFAULT_STRENGTH
from .engine import GRIDS

DEINTERLACE = ("auto", "on", "off")  # auto: when the probe finds the video interlaced


def _preset_dir() -> Path:
    """presets/ of the checkout (editable installs), else the copy packaged with a wheel install."""
    repo = Path(__file__).resolve().parents[2] / "presets"
    if repo.is_dir():
        return repo
    from importlib.resources import files
    return Path(str(files("gendrpix_video.presets_data")))


PRESET_DIR = _preset_dir()
DEFAULT = "default"


class PresetError(ValueError):
    """A bad preset file or value; the message is one line naming the key."""


@dataclass(frozen=True)
class Range:
    """A numeric setting's allowed values: lo..hi (lo itself excluded when `open_lo`)."""
    lo: float
    hi: float
    integer: bool = False
    open_lo: bool = False
    unit: str = ""

    def check(self, v):
        """`v` when it lies in the range, else ValueError saying what the range is."""
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.integer and not isinstance(v, int)):
            raise ValueError(f"must be {'an integer' if self.integer else 'a number'}, got {v!r}")
        if v != v or (v <= self.lo if self.open_lo else v < self.lo) or v > self.hi:
            raise ValueError(f"must be {self.describe()}, got {v:g}")
        return v

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.open_lo:
            return f"more than {self.lo:g}{unit}"
        return f"between {self.lo:g} and {self.hi:g}{unit}"


# Every numeric setting of a job, from a preset or a flag. Zero lies outside every range where it
# has no meaning (a zero scale, height or duration is refused, never read as "not given").
RANGES: dict[str, Range] = {
    "crf": Range(0, 63),
    "height": Range(16, 8640, integer=True, unit="pixels"),
    "width": Range(16, 16384, integer=True, unit="pixels"),   # of --size
    "scale": Range(0.25, 16),
    "detail": Range(0, 4),
    "temporal": Range(0, 0.95),
    "supersample": Range(*SUPERSAMPLE_RANGE),
    "seed": Range(0, 2**31 - 1, integer=True),
    "batch": Range(1, 256, integer=True),
    "encoders": Range(1, 64, integer=True),
    "segment_frames": Range(1, 100000, integer=True),
    "start": Range(0, 1e7, unit="seconds"),
    "duration": Range(0, 1e7, open_lo=True, unit="seconds"),
    "max_memory": Range(0, 1e5, open_lo=True, unit="GiB"),
    "max_minutes": Range(0, math.inf, open_lo=True, unit="minutes"),   # inf: no limit
}


def _number(key: str):
    return RANGES[key].check


def parse_size(v) -> str:
    """'WIDTHxHEIGHT' with both sides in range, else ValueError."""
    try:
        w, h = (int(x) for x in str(v).lower().split("x"))
    except Exception:
        raise ValueError(f"must be WIDTHxHEIGHT such as 3840x2160, got {v!r}")
    for side, n in (("width", w), ("height", h)):
        try:
            RANGES[side].check(n)
        except ValueError as e:
            raise ValueError(f"{side} {e}") from None
    return f"{w}x{h}"


def _string(choices=None):
    def check(v):
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ValueError(f"must be a string, got {v!r}")
        if choices and str(v) not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {v!r}")
        return str(v)
    return check


def _options(v):
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise ValueError("must be a mapping of FFmpeg encoder options to values")
    return {k: str(x) for k, x in v.items()}


def _encoders(v):
    return "auto" if v == "auto" else _number("encoders")(v)


def _codec(v):
    return _string(CODECS)(v)


SCHEMA = {
    "description": _string(),
    "codec": _codec,
    "speed": _string(),                      # the encoder's own preset: x264 "veryfast", SVT-AV1 "8"
    "crf": _number("crf"),
    "pix_fmt": _string(),
    "container": _string(("mkv", "mp4", "mov")),
    "height": _number("height"),
    "scale": _number("scale"),
    "size": parse_size,
    "detail": _number("detail"),
    "seed": _number("seed"),
    "source": _string(SOURCE_CHOICES),       # what the footage is: "auto" (guessed), "any" or "clean"
    "grid": _string(GRIDS),                  # "follow": the x8 grid moves with the picture; "fixed"
    "deinterlace": _string(DEINTERLACE),     # "auto": bwdif on interlaced input; "on"; "off"
    "temporal": _number("temporal"),         # temporal filter strength; 0: every frame on its own
    "supersample": _number("supersample"),   # restore to up to 2x the output size, then shrink (policy.run_size)
    "batch": _number("batch"),
    "encoders": _encoders,                   # segment encoders running in parallel
    "segment_frames": _number("segment_frames"),
    "options": _options,                     # extra FFmpeg encoder options
}



def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def validate(values: dict, source: str) -> dict:
    """Every key checked at once: one PresetError whose one line names each bad key."""
    out, bad = {}, []
    for key, value in values.items():
        if key not in SCHEMA:
            bad.append(f"unknown key {key!r} (known: {', '.join(SCHEMA)})")
        elif value is None:
            out[key] = None
        else:
            try:
                out[key] = SCHEMA[key](value)
            except ValueError as e:
                bad.append(f"bad value for {key!r}: {e}")
    if bad:
        raise PresetError(f"{source}: " + "; ".join(bad))
    return out


def _load(name_or_file: str | None) -> dict:
    name = name_or_file or DEFAULT
    presets = available()
    path = presets.get(name) or Path(name)
    if not path.is_file():
        raise PresetError(f"unknown preset {name!r} (available: {', '.join(presets) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PresetError(f"preset {path}: cannot read it: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise PresetError(f"preset {path}: must be a mapping of keys to values")
    values = validate(data, f"preset {path.name}")
    values["name"] = path.stem
    return values


@dataclass(frozen=True)
class UpscaleSettings:
    """What a preset can say about a job. Build one with `from_preset` or `override` (validated);
    the defaults are the built-in ones (2160p keeping the aspect ratio, x265 10-bit)."""
    codec: str = "libx265"
    speed: str | None = None           # the encoder's own preset: x264 "veryfast", SVT-AV1 "8"
    crf: float | None = None
    pix_fmt: str = "yuv420p10le"
    container: str | None = None       # mkv, mp4, mov; None: the input's when it can hold the streams
    height: int | None = 2160          # one of height, scale, size sets the output size
    scale: float | None = None
    size: str | None = None            # "WIDTHxHEIGHT", as users write it
    detail: float | None = None        # None: the model's default_detail
    seed: int = 0
    source: str = AUTO                 # guessed per file; "any": may be damaged; "clean": a clean master
    grid: str = "follow"               # the model's x8 grid moves with the picture (steadier pans)
    deinterlace: str = "auto"          # bwdif, one frame per frame, when the input is interlaced
    temporal: float = DEFAULT_STRENGTH  # frames blended with the previous where they agree (temporal.py)
    supersample: float = 1.0           # >1: the model restores to that much more, shrunk to the output
    batch: int = 4
    encoders: int | str = "auto"       # segment encoders in parallel
    segment_frames: int = 48
    options: dict = field(default_factory=dict)  # extra FFmpeg encoder options
    description: str = ""
    name: str = ""                     # the preset it came from

    @classmethod
    def from_preset(cls, name_or_file: str | None = None) -> UpscaleSettings:
        """A preset (a name in presets/ or a YAML path; None: `default`) over the built-in defaults."""
        return cls(**_load(name_or_file))

    def override(self, origin: str = "settings", **values) -> UpscaleSettings:
        """These settings with `values` (None: leave as is) validated and applied as flags are
        (`origin` names them in errors, e.g. "command line"): one of height/scale/size replaces the
        others; another codec drops the preset's speed, quality and options (they belong to its
        codec) and keeps its bit depth where the codec allows."""
        values = validate({k: v for k, v in values.items() if v is not None}, origin)
        new = dict(values)
        if {"height", "scale", "size"} & values.keys():
            new = {"height": None, "scale": None, "size": None, **values}
        codec = values.get("codec")
        if codec and codec != self.codec:
            new = {"speed": None, "crf": None, "options": {}, **new}
        out = dataclasses.replace(self, **new)
        if codec and "pix_fmt" not in values and out.pix_fmt not in supported_pix_fmts(codec):
            lay = layout(out.pix_fmt)
            bits10 = lay is not None and lay.bits > 8
            for f in (["yuv420p10le", "yuv422p10le"] if bits10 else ["yuv420p", "yuv422p10le"]):
                if f in supported_pix_fmts(codec):
                    out = dataclasses.replace(out, pix_fmt=f)
                    break
        return out

    def output_size(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) for input (h, w): the size, scale or height, on the output's chroma grid."""
        lay = layout(self.pix_fmt)
        multiple = (1 << lay.log2_ch, 1 << lay.log2_cw)
        if self.size:
            w, h = (int(x) for x in self.size.split("x"))
            return policy_output_size(in_size, height=h, width=w, multiple=multiple)
        if self.scale:
            return policy_output_size(in_size, scale=self.scale, multiple=multiple)
        return policy_output_size(in_size, height=int(self.height or 2160), multiple=multiple,
                                  aspect_multiple=multiple[1])
