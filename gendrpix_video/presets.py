"""Presets: YAML files in `presets/` naming encoder and output settings. CLI flags override
them. Every key is checked: an unknown key or a bad value is an error that names the key."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

def _preset_dir() -> Path:
    """presets/ of the checkout (editable installs), else the copy packaged with a wheel install."""
    repo = Path(__file__).resolve().parent.parent / "presets"
    if repo.is_dir():
        return repo
    from importlib.resources import files
    return Path(str(files("gendrpix_video.presets_data")))


PRESET_DIR = _preset_dir()
DEFAULT = "default"


class PresetError(ValueError):
    """A bad preset file or value; the message is one line naming the key."""


def _number(lo=None, hi=None, integer=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise ValueError(f"must be {'an integer' if integer else 'a number'}, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"must be between {lo} and {hi}, got {v!r}")
        return v
    return check


def _size(v):
    try:
        w, h = (int(x) for x in str(v).lower().split("x"))
        assert w > 0 and h > 0
    except Exception:
        raise ValueError(f"must be WIDTHxHEIGHT such as 3840x2160, got {v!r}")
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
    return "auto" if v == "auto" else _number(1, 64, integer=True)(v)


def _codec(v):
    from .video.encode import CODECS
    return _string(CODECS)(v)


SCHEMA = {
    "description": _string(),
    "codec": _codec,
    "speed": _string(),                      # the encoder's own preset: x264 "veryfast", SVT-AV1 "8"
    "crf": _number(0, 63),
    "pix_fmt": _string(),
    "container": _string(("mkv", "mp4", "mov")),
    "height": _number(16, 8640, integer=True),
    "scale": _number(0.25, 16),
    "size": _size,
    "detail": _number(0, 4),
    "seed": _number(0, 2**31 - 1, integer=True),
    "batch": _number(1, 256, integer=True),
    "encoders": _encoders,                   # segment encoders running in parallel
    "segment_frames": _number(1, 100000, integer=True),
    "options": _options,                     # extra FFmpeg encoder options
}

BUILTIN = {"codec": "libx265", "speed": None, "crf": None, "pix_fmt": "yuv420p10le", "container": None,
           "height": 2160, "scale": None, "size": None, "detail": None, "seed": 0, "batch": 4,
           "encoders": "auto", "segment_frames": 48, "options": {}, "description": ""}


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def validate(values: dict, source: str) -> dict:
    out = {}
    for key, value in values.items():
        if key not in SCHEMA:
            raise PresetError(f"{source}: unknown key {key!r} (known: {', '.join(SCHEMA)})")
        if value is None:
            out[key] = None
            continue
        try:
            out[key] = SCHEMA[key](value)
        except ValueError as e:
            raise PresetError(f"{source}: bad value for {key!r}: {e}") from None
    return out


def load(name_or_file: str | None) -> dict:
    """The settings of a preset (a name in presets/ or a YAML path), over the built-in defaults."""
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
    values = dict(BUILTIN)
    values.update(validate(data, f"preset {path.name}"))
    values["name"] = path.stem
    return values


def main(argv: list[str] | None = None) -> int:
    """`gendrpix-video presets`: list the presets and what they do."""
    import argparse
    ap = argparse.ArgumentParser(prog="gendrpix-video presets", description="List the upscale presets.")
    ap.parse_args(argv)
    rows = []
    for name, path in available().items():
        try:
            p = load(str(path))
        except PresetError as e:
            print(f"gendrpix-video: warning: {e}", file=sys.stderr)
            continue
        size = p["size"] or (f"x{p['scale']}" if p["scale"] else f"{p['height']}p")
        rows.append((name, p["codec"], p["pix_fmt"], size, p["description"]))
    head = ("preset", "codec", "pix_fmt", "output", "description")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[4])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
