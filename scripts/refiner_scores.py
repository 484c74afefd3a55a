"""Score refiner files (`refine_fit train` outputs) after a source's network on the real-input set,
without attaching them: the network runs once per crop and chain (its own refiner off), its
outputs are cached, and each refiner is scored on them at each strength as eval-real scores.

    .venv/bin/python scripts/refiner_scores.py --refiners runs/refine/a.safetensors,runs/refine/b.safetensors \\
        --strengths 0.5,1 --niqe data/niqe_pris_params.npz --sheet runs/refine/sheet.png

`--source any` (default): the five damaged chains at x4, averaged; `--source clean`: the clean
chain. `--scale 2` or 3: the chains made again at that scale from the set's ground truth (the
codec chains from a still clip of three frames, the middle one scored). Per refiner and
strength: Y-PSNR, NIQE (with `--niqe`) and the pattern score (eval-real's: texture at one period
the scene lacks). `--sheet`: a PNG of a few crops (bicubic, the network,
each refiner at the last strength, ground truth) to look at. The cache (`--cache`, an .npz) holds
the network's outputs for one model, source and detail; it is rebuilt when those differ. CPU.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gendrpix_video import load_model
from gendrpix_video.padcfg import resize, restore
from gendrpix_video.policy import resolve_detail
from gendrpix_video.refiner import Refiner
from gendrpix_video.training.metrics import psnr_y
from gendrpix_video.training.realeval import pattern_reference, pattern_score
from gendrpix_video.training.realinput import DAMAGED, RealInputSet, codec_clip, to_float, to_u8
from gendrpix_video.training.refine_fit import read_refiner

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--refiners", required=True, help="comma-separated refiner files")
ap.add_argument("--model", default=None, help="weights file (default: the shipped default)")
ap.add_argument("--set", default="data/realinput.npz")
ap.add_argument("--source", choices=("any", "clean"), default="any")
ap.add_argument("--detail", type=float, default=None)
ap.add_argument("--scale", type=int, default=4, help="x4: the set's own LR; 2 or 3: made again at that scale")
ap.add_argument("--strengths", default="0.5,1")
ap.add_argument("--niqe", default=None, help="NIQE pristine model (niqe_pris_params.npz)")
ap.add_argument("--cache", default="runs/refine/scores_cache.npz")
ap.add_argument("--sheet", default=None, help="PNG of a few crops")
ap.add_argument("--sheet-crops", default="Grey.jpg#1:mpeg2_deint,Grey.jpg#1:realistic,seeding:h264",
                help="NAME_PART:CHAIN items, a crop each")
a = ap.parse_args()
torch.set_grad_enabled(False)

data = RealInputSet(a.set)
hrs = to_float(data.hr)
size = tuple(hrs.shape[-2:])
model = load_model(a.model, device="cpu", dtype=torch.float32)
net = model.for_source(a.source)[0] if a.source != "any" else model
net.refine_strength = 0.0
detail = resolve_detail(model, a.detail, a.source)
chains = list(DAMAGED) if a.source == "any" else ["clean"]
key = json.dumps({"model": str(a.model), "source": a.source, "detail": detail, "set": a.set, "scale": a.scale})


def chain_lr(c: str) -> torch.Tensor:
    """N x 3 x h x w LR crops of chain `c` at `a.scale`."""
    if a.scale == 4:
        return to_float(data.lr[c])
    from gendrpix_video.training.degrade import bicubic_down, realistic_eval

    out = []
    for i in range(len(hrs)):
        hr = hrs[i:i + 1]
        if c == "clean":
            out.append(bicubic_down(hr, a.scale).clamp(0, 1))
        elif c == "realistic":
            out.append(to_float(to_u8(realistic_eval(hr, seed=i, scale=a.scale))))
        else:
            out.append(to_float(codec_clip(hr.repeat(3, 1, 1, 1), c, seed=i, scale=a.scale)[1:2]))
    return torch.cat(out)


cache = Path(a.cache)
z = np.load(cache) if cache.exists() else None
if z is not None and str(z["key"]) == key:
    ys, ups = torch.from_numpy(z["y"]).float(), torch.from_numpy(z["up"]).float()
else:
    ys, ups = [], []
    for c in chains:
        lrs = chain_lr(c)
        for i in range(len(hrs)):
            x = lrs[i:i + 1]
            ys.append(restore(net, x, size, detail, source="any"))  # the network alone, clamped
            ups.append(resize(x, size).clamp(0, 1))
    ys, ups = torch.cat(ys), torch.cat(ups)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=key, y=ys.half().numpy(), up=ups.half().numpy())
gts = hrs.repeat(len(chains), 1, 1, 1)
refs = [pattern_reference(gts[i:i + 1]) for i in range(len(gts))]
niqe = None
if a.niqe:
    from gendrpix_video.training.realeval import NiqePool

    niqe = NiqePool(a.niqe)


def scores(outs: torch.Tensor) -> dict:
    outs = torch.round(outs.clamp(0, 1) * 255) / 255
    row = {"y_psnr": float(np.mean([float(psnr_y(outs[i:i + 1], gts[i:i + 1])) for i in range(len(outs))])),
           "pattern": float(np.mean([pattern_score(outs[i:i + 1], refs[i]) for i in range(len(outs))]))}
    if niqe:
        row["niqe"] = float(np.mean(niqe([to_u8(outs[i:i + 1])[0] for i in range(len(outs))])))
    return row


def show(name: str, row: dict) -> None:
    extra = f"  NIQE {row['niqe']:.3f}" if "niqe" in row else ""
    print(f"{name:40} Y-PSNR {row['y_psnr']:.3f}  pattern {row['pattern']:.4f}{extra}", flush=True)


show(f"network alone (detail {detail:g})", scores(ys))
strengths = [float(v) for v in a.strengths.split(",")]
sheet_cols = {"bicubic": ups, "network": ys}
for path in a.refiners.split(","):
    ref = Refiner.from_state(read_refiner(path)[0]).eval()
    for s in strengths:
        outs = torch.cat([ref(ys[i:i + 1], ups[i:i + 1], s) for i in range(len(ys))])
        show(f"{Path(path).stem} @ {s:g}", scores(outs))
    sheet_cols[f"{Path(path).stem}@{s:g}"] = outs
sheet_cols["ground truth"] = gts

if a.sheet:
    from PIL import Image, ImageDraw

    picks = []
    for item in a.sheet_crops.split(","):
        part, _, chain = item.partition(":")
        idx = next(i for i, n in enumerate(data.names) if part in n)
        picks.append(chains.index(chain) * len(hrs) + idx)
    tile = 256  # the crop's central 256 px, at full size
    o = (size[0] - tile) // 2
    img = Image.new("RGB", (tile * len(sheet_cols), (tile + 14) * len(picks)), "white")
    d = ImageDraw.Draw(img)
    for r, k in enumerate(picks):
        for c, (name, t) in enumerate(sheet_cols.items()):
            im = to_u8(t[k:k + 1, :, o:o + tile, o:o + tile].clamp(0, 1))[0]
            img.paste(Image.fromarray(im), (c * tile, r * (tile + 14) + 14))
            d.text((c * tile + 2, r * (tile + 14)), name if r == 0 else "", fill="black")
    img.save(a.sheet)
    print(f"wrote {a.sheet}")
