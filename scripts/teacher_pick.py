"""What a per-sample choice of teacher would offer as a training target, on the real-input set.

    .venv/bin/python scripts/teacher_pick.py --teachers realesrgan-x4plus,span-clearreality-x4 \\
        --niqe data/niqe_pris_params.npz

Each teacher restores every crop of the five damaged chains (x4); per crop the pick is the
teacher closest to the ground truth (the highest Y-PSNR), as a training bank could choose with
the ground truth at hand. Prints each teacher's and the pick's mean Y-PSNR and NIQE and how often
each teacher is picked. Teacher outputs are cached (`--cache`), one file per teacher. CPU minutes
(Real-ESRGAN: about 5 s a crop on 2 cores).
"""
import argparse
from pathlib import Path

import numpy as np
import torch

from gendrpix_video.training.metrics import psnr_y
from gendrpix_video.training.realinput import DAMAGED, RealInputSet, to_float, to_u8
from gendrpix_video.training.teacher import load_teacher

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--teachers", default="realesrgan-x4plus,span-clearreality-x4")
ap.add_argument("--set", default="data/realinput.npz")
ap.add_argument("--niqe", default=None, help="NIQE pristine model (niqe_pris_params.npz)")
ap.add_argument("--cache", default="runs/teacher_pick")
a = ap.parse_args()
torch.set_grad_enabled(False)

data = RealInputSet(a.set)
hrs = to_float(data.hr)
gts = hrs.repeat(len(DAMAGED), 1, 1, 1)
names = a.teachers.split(",")
outs = {}
for name in names:
    path = Path(a.cache) / f"{Path(name).stem}.npy"
    if path.exists():
        outs[name] = to_float(np.load(path))
        continue
    t = load_teacher(name, device="cpu")
    got = []
    for c in DAMAGED:
        lrs = to_float(data.lr[c])
        for i in range(len(hrs)):
            got.append(t(lrs[i:i + 1]).clamp(0, 1))
    y = torch.round(torch.cat(got) * 255) / 255
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, to_u8(y))
    outs[name] = y
psnrs = torch.tensor([[float(psnr_y(outs[n][i:i + 1], gts[i:i + 1])) for i in range(len(gts))] for n in names])
pick = psnrs.argmax(0)
picked = torch.stack([outs[names[int(p)]][i] for i, p in enumerate(pick)])
niqe = None
if a.niqe:
    from gendrpix_video.training.realeval import NiqePool

    niqe = NiqePool(a.niqe)
rows = {n: outs[n] for n in names} | {"per-crop pick": picked}
for n, y in rows.items():
    p = float(np.mean([float(psnr_y(y[i:i + 1], gts[i:i + 1])) for i in range(len(gts))]))
    extra = f"  NIQE {np.mean(niqe([to_u8(y[i:i + 1])[0] for i in range(len(y))])):.3f}" if niqe else ""
    print(f"{n:28} Y-PSNR {p:.3f}{extra}", flush=True)
print("picked: " + ", ".join(f"{n} {int((pick == k).sum())}" for k, n in enumerate(names)) + f" of {len(gts)}")
