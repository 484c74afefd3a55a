"""argparse for every front end: errors as one line naming the command, integer checks.

Kept apart from the video pipeline so the model-only front ends (bench, eval) import without PyAV.
"""
from __future__ import annotations

import argparse

# The command name every message starts with.
PROG = "gendrpix-video"


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one `gendrpix-video: error:` line (no usage block above it)."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {self.prog.removeprefix(PROG + ' ')}: {' '.join(message.split())} "
                     f"(see {self.prog} --help)\n")


def int_at_least(lo: int):
    """An argparse type: an integer >= lo, refused in one line otherwise."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v
    return parse
