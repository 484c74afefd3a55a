#!/usr/bin/env python3
"""What `--deinterlace` gives on interlaced footage, against the ground truth (CPU).

Held-out photos (data/photos/val) panned under a window, one step a field: each field's picture
is the window at that time, shrunk x4 (bicubic, antialiased); frame k weaves field 2k (top) and
2k + 1 (bottom), as an interlaced camera records a pan. The frames are coded as interlaced H.264
(top field first, CRF 18) and upscaled x4 by `video.upscale_file` (the shipped default, FFV1
output) with `--deinterlace off` and `auto` (bwdif), and by bicubic on the decoded frames for
reference. Scored against the window at the top field's time (what bwdif rebuilds): Y-PSNR.
Writes a crop sheet with `--sheet`.

    .venv/bin/python scripts/interlaced_check.py --photos 3 --sheet docs/img/deinterlace_crops.jpg
"""
import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gendrpix_video import load_model
from gendrpix_video.training.metrics import psnr_y
from gendrpix_video.video import UpscaleSettings, upscale_file

LR_W, LR_H, SCALE, FRAMES, STEP = 240, 180, 4, 10, 6  # STEP: ground-truth pixels a field


def fields(photo: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(ground truth H x W x 3 uint8 at each field time, the LR picture of each field)."""
    img = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB"))).permute(2, 0, 1).float() / 255
    H, W = LR_H * SCALE, LR_W * SCALE
    y0 = (img.shape[1] - H) // 2
    gts, lrs = [], []
    for s in range(2 * FRAMES):
        x0 = (img.shape[2] - W - STEP * 2 * FRAMES) // 2 + STEP * s
        gt = img[:, y0:y0 + H, x0:x0 + W]
        lr = F.interpolate(gt[None], size=(LR_H, LR_W), mode="bicubic", antialias=True, align_corners=False)[0]
        gts.append((gt.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
        lrs.append((lr.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    return gts, lrs


def write_interlaced(path: Path, lrs: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1", "crf": "18"})
        v.width, v.height, v.pix_fmt = LR_W, LR_H, "yuv420p"
        v.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        v.codec_context.field_order = 2  # tt
        for k in range(FRAMES):
            woven = lrs[2 * k].copy()
            woven[1::2] = lrs[2 * k + 1][1::2]
            f = av.VideoFrame.from_ndarray(woven, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = k, Fraction(1, 25)
            c.mux(v.encode(f))
        c.mux(v.encode(None))


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def to_t(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/photos/val")
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--sheet", default=None, help="a JPEG of crops: woven input, bicubic, off, auto, truth")
    a = ap.parse_args()
    model = load_model(None, device="cpu")
    rows = {k: [] for k in ("bicubic of the woven frames", "deinterlace off", "deinterlace auto (bwdif)")}
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        need = (LR_W * SCALE + STEP * 2 * FRAMES, LR_H * SCALE)
        photos = [p for p in sorted(Path(a.data).glob("*.jpg"))
                  if Image.open(p).size[0] >= need[0] and Image.open(p).size[1] >= need[1]]
        for i, photo in enumerate(photos[:a.photos]):
            gts, lrs = fields(photo)
            truth = to_t(gts[0::2])  # the top field's time
            src = Path(tmp) / f"in{i}.mkv"
            write_interlaced(src, lrs)
            outs = {"bicubic of the woven frames": (F.interpolate(to_t(rgb_frames(src)), scale_factor=SCALE, mode="bicubic",
                                                                  align_corners=False).clamp(0, 255).round())}
            for mode in ("off", "auto"):
                dst = Path(tmp) / f"out{i}_{mode}.mkv"
                settings = UpscaleSettings.from_preset("default").override(
                    "script", height=LR_H * SCALE, codec="ffv1", pix_fmt="yuv444p", deinterlace=mode)
                upscale_file(src, dst, settings, model=model, device="cpu", max_minutes=float("inf"))
                outs["deinterlace off" if mode == "off" else "deinterlace auto (bwdif)"] = to_t(rgb_frames(dst))
            for name, x in outs.items():
                rows[name].append(float(psnr_y(x / 255, truth / 255).mean()))
            print(f"{photo.name}: " + ", ".join(f"{n} {rows[n][-1]:.2f} dB" for n in outs), flush=True)
            outs["ground truth"] = truth
            k = FRAMES // 2
            woven = F.interpolate(to_t(rgb_frames(src))[k:k + 1], scale_factor=SCALE, mode="nearest")[0]
            crop = (slice(None), slice(LR_H * SCALE // 2 - 96, LR_H * SCALE // 2 + 96),
                    slice(LR_W * SCALE // 2 - 128, LR_W * SCALE // 2 + 128))
            panels.append([woven[crop]] + [outs[n][k][crop] for n in outs])
    print("\n| method | Y-PSNR (dB) |\n|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {np.mean(r):.2f} |")
    if a.sheet:
        grid = torch.cat([torch.cat(p, 2) for p in panels], 1)
        Image.fromarray(grid.permute(1, 2, 0).clamp(0, 255).byte().numpy()).save(a.sheet, quality=90)
        print(f"wrote {a.sheet} (columns: woven input x4 nearest, bicubic, off, auto, ground truth)")


if __name__ == "__main__":
    main()
