"""One user-facing exception type and the one-line messages the command prints.

Anything the user can fix (a bad input, a full disk, too little GPU memory) becomes a `VideoError`
whose message is a single line; the CLI prints `gendrpix-video: error: <message>` and no
traceback unless --debug.
"""
from __future__ import annotations

import errno
import sys

from ..argparsing import PROG


class VideoError(Exception):
    """A problem with one job that the user can act on. `str(e)` is one line."""

    def __init__(self, message: str, *, hint: str | None = None):
        message = " ".join(str(message).split())  # one line, whatever the cause said
        if hint:
            message = f"{message} ({hint})"
        super().__init__(message)


class OutputError(VideoError):
    """A problem with the output (its folder, its disk): named by the output's path, not the input's."""


class DamagedInput(VideoError):
    """Damage in the input met with `strict=True`; the finished segments stay for a resumed run."""


def warn(message: str) -> None:
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def error_line(message: str) -> str:
    return f"{PROG}: error: {' '.join(str(message).split())}"


def _is_oom(exc: BaseException) -> bool:
    try:
        import torch
        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except Exception:  # torch missing or old
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def translate(exc: BaseException, *, batch: int | None = None, where: str | None = None) -> VideoError | None:
    """Map a low-level exception to a VideoError, or None if it is a bug (shown as unexpected)."""
    if isinstance(exc, VideoError):
        return exc
    if _is_oom(exc):
        b = f" (now {batch})" if batch else ""
        return VideoError("out of GPU memory", hint=f"lower --batch{b}, or the output size with --height/--scale")
    if isinstance(exc, MemoryError):
        return VideoError("out of host memory", hint="lower --batch, or the encoder count in the preset (encoders)")
    if isinstance(exc, OSError):
        target = f" {where}" if where else ""
        name = getattr(exc, "filename", None)
        if exc.errno == errno.ENOSPC:
            return OutputError(f"disk full while writing{target}", hint="free space or choose another output folder")
        if exc.errno == errno.EDQUOT:
            return OutputError(f"disk quota exceeded while writing{target}")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return OutputError(f"permission denied: {name or where or exc}")
        if exc.errno == errno.ENOTDIR:
            return OutputError(f"not a folder: {name or where}")
    return None
