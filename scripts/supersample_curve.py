"""Y-PSNR (and NIQE) of the default model's networks against --supersample, on the held-out crops.

    .venv/bin/python scripts/supersample_curve.py --scale 2 --chain clean [--niqe data/niqe_pris_params.npz]

The real-input set's ground truth (data/realinput.npz, 14 crops of 512 px from held-out photos),
downscaled by `--scale` on the fly: clean (bicubic) or realistic (blur, down, noise, JPEG 60, as
`degrade.realistic_eval`). Each network (any at its detail, clean at its own) restores every crop to
K times its size (K from 1 to what x4 allows) and the result is shrunk back (`restore_any_scale`),
rounded to 8 bits and scored as eval-real scores (Y-PSNR, 4-px border). CPU minutes.
"""
import argparse

import numpy as np
import torch

from gendrpix_video import load_model
from gendrpix_video.padcfg import resize, restore_any_scale
from gendrpix_video.policy import resolve_detail
from gendrpix_video.training.degrade import bicubic_down, realistic_eval
from gendrpix_video.training.metrics import psnr_y
from gendrpix_video.training.realinput import RealInputSet, to_float


def draw_crops(model, hrs, a, out: str, picks=(13, 7, 12), at=160, side=192) -> None:
    from PIL import Image

    rows = []
    for i in picks:
        hr = hrs[i:i + 1]
        size = tuple(hr.shape[-2:])
        lr = bicubic_down(hr, a.scale) if a.chain == "clean" else realistic_eval(hr, seed=i, scale=a.scale)
        detail = resolve_detail(model, None, "clean")
        with torch.inference_mode():
            outs = [resize(lr, size), restore_any_scale(model, lr, size, detail, source="clean"),
                    restore_any_scale(model, lr, size, detail, source="clean", supersample=1.5), hr]
        rows.append(np.concatenate([(o[0, :, at:at + side, at:at + side].clamp(0, 1).permute(1, 2, 0).numpy() * 255)
                                    .round().astype(np.uint8) for o in outs], 1))
    im = Image.fromarray(np.concatenate(rows, 0))
    im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(out, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="data/realinput.npz")
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--chain", choices=("clean", "realistic"), default="clean")
    ap.add_argument("--factors", default="1,1.25,1.5,1.75,2")
    ap.add_argument("--niqe", help="NIQE model (.npz) to score NIQE too")
    ap.add_argument("--clean-details", help="comma-separated details for the clean network (default: its own)")
    ap.add_argument("--crops", metavar="JPG", help="also draw bicubic / clean K1 / clean K1.5 / ground truth "
                                                   "of three crops (192 px at 160,160, shown x2) into JPG")
    a = ap.parse_args()
    model = load_model(device="cpu")
    hrs = to_float(RealInputSet(a.set).hr)
    factors = [float(f) for f in a.factors.split(",") if a.scale * float(f) <= 4.0001]
    q = lambda x: torch.round(x.clamp(0, 1) * 255) / 255  # noqa: E731
    psnr: dict = {}
    niqe: dict = {}
    if a.niqe:
        from gendrpix_video.training.niqe import get_model, niqe as niqe_of
        nm = get_model(a.niqe)
    for i in range(len(hrs)):
        hr = hrs[i:i + 1]
        size = tuple(hr.shape[-2:])
        lr = bicubic_down(hr, a.scale) if a.chain == "clean" else realistic_eval(hr, seed=i, scale=a.scale)
        outs = {"bicubic": q(resize(lr, size))}
        runs = [("any", resolve_detail(model, None, "any"), "")]
        runs += [("clean", float(d), f"@{float(d):g}") for d in a.clean_details.split(",")] if a.clean_details \
            else [("clean", resolve_detail(model, None, "clean"), "")]
        for src, detail, tag in runs:
            for k in factors:
                with torch.inference_mode():
                    outs[f"{src}{tag} K{k:g}"] = q(restore_any_scale(model, lr, size, detail, source=src,
                                                                    supersample=k))
        for name, o in outs.items():
            psnr.setdefault(name, []).append(float(psnr_y(o, hr)))
            if a.niqe:
                niqe.setdefault(name, []).append(niqe_of((o[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
                                                         model=nm))
    if a.crops:
        draw_crops(model, hrs, a, a.crops)
    print(f"x{a.scale:g} {a.chain}, {len(hrs)} crops, Y-PSNR" + (" / NIQE" if a.niqe else ""))
    for name in psnr:
        print(f"  {name:14} {np.mean(psnr[name]):6.2f}" + (f" / {np.mean(niqe[name]):5.2f}" if a.niqe else ""))


if __name__ == "__main__":
    main()
