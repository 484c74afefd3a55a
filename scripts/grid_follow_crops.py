#!/usr/bin/env python3
"""Crops of a moving clip restored with the x8 grid fixed and following the picture.

Rows: grid fixed, grid following; columns: frame T, frame T+1 moved back by the clip's pan, and
their difference x4 (what the flow-aligned warp error sums). The real-input set's moving clip
CLIP (H.264-coded pan, 3 and 1 output pixels a frame), the default at DETAIL, on the CPU.
usage: python scripts/grid_follow_crops.py SET OUT.png [CLIP] [T] [DETAIL]
"""
import sys

import numpy as np
import torch
from PIL import Image

from gendrpix_video import load_model
from gendrpix_video.training import realeval
from gendrpix_video.training.realinput import PAN, RealInputSet, to_float

data, out = RealInputSet(sys.argv[1]), sys.argv[2]
clip, t, detail = (int(sys.argv[3]) if len(sys.argv) > 3 else 2, int(sys.argv[4]) if len(sys.argv) > 4 else 4,
                   float(sys.argv[5]) if len(sys.argv) > 5 else 0.25)
fn = realeval.model_method(load_model(None, device="cpu", dtype=torch.float32), detail, "cpu")
lrs, size = to_float(data.motion_lr[clip])[:t + 2], tuple(data.hr.shape[1:3])
rows = []
for follow in (False, True):
    y = realeval.run_clip(fn, lrs, size, follow)
    a = y[t, :, 200:360, 200:360]
    b = y[t + 1, :, 200 - PAN[1]:360 - PAN[1], 200 - PAN[0]:360 - PAN[0]]  # content moves by -PAN a frame
    rows.append(torch.cat([a, b, ((b - a).abs() * 4).clamp(0, 1)], 2))
img = (torch.cat(rows, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(out)
print(f"wrote {out}")
