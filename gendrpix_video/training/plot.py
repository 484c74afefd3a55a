"""A loss-curve PNG drawn with Pillow (no plotting library needed on the GPU machine)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

SERIES = (("loss", (31, 119, 180)), ("l1_teacher", (255, 127, 14)), ("l1_hr", (44, 160, 44)))


def loss_curve_png(state: dict, path, size=(900, 420)) -> None:
    hist = state.get("history", [])
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 60, w - 180, 20, h - 40
    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    if len(hist) >= 2:
        xs = [r["step"] for r in hist]
        vals = [r[k] for r in hist for k, _ in SERIES if k in r and r[k] > 0]
        lo, hi = math.log10(min(vals)), math.log10(max(vals))
        hi = hi if hi > lo else lo + 1
        sx = lambda s: left + (s - xs[0]) / max(1, xs[-1] - xs[0]) * (right - left)  # noqa: E731
        sy = lambda v: bottom - (math.log10(v) - lo) / (hi - lo) * (bottom - top)  # noqa: E731
        for i, (key, colour) in enumerate(SERIES):
            pts = [(sx(r["step"]), sy(r[key])) for r in hist if r.get(key, 0) > 0]
            if len(pts) >= 2:
                d.line(pts, fill=colour, width=2)
            d.text((right + 10, top + 16 * i), key, fill=colour)
        d.text((left, bottom + 8), f"step {xs[0]}", fill=(0, 0, 0))
        d.text((right - 80, bottom + 8), f"step {xs[-1]}", fill=(0, 0, 0))
        d.text((4, top), f"{10 ** hi:.3g}", fill=(0, 0, 0))
        d.text((4, bottom - 10), f"{10 ** lo:.3g}", fill=(0, 0, 0))
        d.text((right + 10, top + 70), "log scale", fill=(0, 0, 0))
    for i, e in enumerate(state.get("evals", [])[-12:]):
        d.text((right + 10, top + 100 + 14 * i), f"{e['step']}: {e['psnr_y']:.2f} dB", fill=(90, 90, 90))
    img.save(path)
