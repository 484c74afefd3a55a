"""`gendrpix-video presets`: list the presets and what they do."""
from __future__ import annotations

import sys

from ..argparsing import OneLineParser
from ..video.presets import PresetError, UpscaleSettings, available


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="gendrpix-video presets", description="List the upscale presets.")
    ap.parse_args(argv)
    rows = []
    for name, path in available().items():
        try:
            p = UpscaleSettings.from_preset(str(path))
        except PresetError as e:
            print(f"gendrpix-video: warning: {e}", file=sys.stderr)
            continue
        size = p.size or (f"x{p.scale}" if p.scale else f"{p.height}p")
        rows.append((name, p.codec, p.pix_fmt, size, p.description))
    head = ("preset", "codec", "pix_fmt", "output", "description")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[4])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
