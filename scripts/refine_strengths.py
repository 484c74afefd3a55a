"""Y-PSNR (and NIQE) of a source's network against the refiner's strength, on the real-input set.

    .venv/bin/python scripts/refine_strengths.py --source clean --strengths 0,0.5,0.6,0.75,1 --scales 4,3,2
    .venv/bin/python scripts/refine_strengths.py --source any --strengths 0,0.3,1 --niqe data/niqe_pris_params.npz

`--source clean`: the set's clean chain at x4 and its ground truth bicubic-downscaled at the other
`--scales`, as eval-real's clean columns. `--source any`: the five damaged chains (x4), averaged.
The network runs at its default detail (or `--detail`) with `refine_strength` set to each value
(a model without a refiner: 0 only); outputs rounded to 8 bits and scored as eval-real scores.
CPU minutes.
"""
import argparse

import numpy as np
import torch

from gendrpix_video import load_model
from gendrpix_video.padcfg import restore
from gendrpix_video.policy import resolve_detail
from gendrpix_video.training.degrade import bicubic_down
from gendrpix_video.training.metrics import psnr_y
from gendrpix_video.training.realinput import DAMAGED, RealInputSet, to_float, to_u8

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--model", default=None, help="weights file (default: the shipped default)")
ap.add_argument("--set", default="data/realinput.npz")
ap.add_argument("--source", choices=("any", "clean"), default="clean")
ap.add_argument("--strengths", default="0,0.5,0.75,1")
ap.add_argument("--scales", default="4", help="clean source: comma-separated scales (4 is the set's chain)")
ap.add_argument("--detail", type=float, default=None)
ap.add_argument("--niqe", default=None, help="NIQE pristine model (niqe_pris_params.npz); left out: no NIQE")
a = ap.parse_args()
torch.set_grad_enabled(False)

data = RealInputSet(a.set)
hrs = to_float(data.hr)
size = tuple(hrs.shape[-2:])
model = load_model(a.model, device="cpu", dtype=torch.float32)
net = model.for_source(a.source)[0] if a.source != "any" else model
detail = resolve_detail(model, a.detail, a.source)
niqe = None
if a.niqe:
    from gendrpix_video.training.realeval import NiqePool

    niqe = NiqePool(a.niqe)
if a.source == "clean":
    sets = {f"clean x{s}": [to_float(data.lr["clean"]) if s == 4 else bicubic_down(hrs, s)]
            for s in (int(v) for v in a.scales.split(","))}
else:
    sets = {"damaged": [to_float(data.lr[c]) for c in DAMAGED]}
for strength in (float(v) for v in a.strengths.split(",")):
    if strength and net.refine is None:
        raise SystemExit(f"refine_strengths: error: {a.model or 'the default'} has no refiner")
    net.refine_strength = strength
    for name, chains in sets.items():
        psnrs, outs = [], []
        for lrs in chains:
            for i in range(len(hrs)):
                y = torch.round(restore(net, lrs[i:i + 1], size, detail).clamp(0, 1) * 255) / 255
                psnrs.append(float(psnr_y(y, hrs[i:i + 1])))
                outs.append(to_u8(y)[0])
        extra = f"  NIQE {np.mean(niqe(outs)):.3f}" if niqe else ""
        print(f"strength {strength:g}  detail {detail:g}  {name:9} Y-PSNR {np.mean(psnrs):.3f}{extra}", flush=True)
