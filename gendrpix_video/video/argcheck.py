"""Numeric options checked against their ranges (`presets.RANGES`) before any work, each refused
value named as the user wrote it: `--scale 0: must be between 0.25 and 16`.

Front ends pass what they parsed; `upscale_file` checks the job options a library caller passes
(start, duration, limits). Zero is a value like any other: it is refused where it has no meaning,
never read as "not given".
"""
from __future__ import annotations

from .errors import VideoError
from .presets import RANGES, parse_size


class ArgError(VideoError):
    """One or more option values out of range; the message is one line naming each."""


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_numbers(size: str | None = None, **values) -> None:
    """Raise ArgError naming every value (given by its setting name) outside its range, and a
    `size` ("WxH") that is not one; None is "not given" and passes."""
    bad = []
    for key, v in values.items():
        if v is None:
            continue
        try:
            RANGES[key].check(v)
        except ValueError as e:
            why = str(e).rsplit(", got ", 1)[0]
            bad.append(f"{flag(key)} {v:g}: {why}" if isinstance(v, (int, float)) else f"{flag(key)}: {why}")
    if size is not None:
        try:
            parse_size(size)
        except ValueError as e:
            bad.append(f"--size {size}: {str(e).rsplit(', got ', 1)[0]}")
    if bad:
        raise ArgError("; ".join(bad))
