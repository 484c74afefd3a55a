"""The VapourSynth filter's keyword arguments from `key=value,...` text, for the scripts that
measure it (vs_steadiness.py, vs_speed.py): each value takes the type of the filter's default."""
import inspect

from vsgendrpix import gendrpix

DEFAULTS = {k: p.default for k, p in inspect.signature(gendrpix).parameters.items()}
_INTS = ("span", "batch_size", "num_streams", "seed")


def parse(text: str) -> dict:
    """"": the filter's defaults; "span=12,temporal=0" -> {"span": 12, "temporal": 0.0}."""
    kw = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=", 1)
        if key not in DEFAULTS:
            raise SystemExit(f"unknown filter argument {key!r}")
        kw[key] = int(value) if key in _INTS else value if isinstance(DEFAULTS[key], str) else float(value)
    return kw
