#!/usr/bin/env python3
"""How well `motion.GridFollower` tracks pans on photos the evaluation never uses (the train split).

CLIPS pans of FRAMES frames, each a CROP-pixel window moving a random whole number of HR pixels a
frame (x -8..6, y -2..3), through the real-input set's H.264 and MPEG-2 chains (x4 down, noise,
coding; alternating). Prints the per-frame displacement error in LR pixels and how many consecutive
frames' grid steps differ from the true pan by an output pixel or more (x4).
usage: python scripts/follow_accuracy.py [PHOTOS] [CLIPS] [CROP]
"""
import random
import sys

import numpy as np
import torch

from gendrpix_video.motion import GridFollower, central_window, displacement
from gendrpix_video.training.dataset import PhotoBank
from gendrpix_video.training.metrics import rgb_to_y
from gendrpix_video.training.realinput import codec_clip, to_float

photos = sys.argv[1] if len(sys.argv) > 1 else "data/photos"
clips = int(sys.argv[2]) if len(sys.argv) > 2 else 16
crop = int(sys.argv[3]) if len(sys.argv) > 3 else 768
frames = 8
bank = PhotoBank.load(photos, "train")
rng = random.Random(0)
errs, missing, off, n = [], 0, 0, 0
for i in range(clips):
    ph = bank.images[rng.randrange(len(bank.images))]
    while min(ph.shape[1:]) < crop + 132:
        ph = bank.images[rng.randrange(len(bank.images))]
    vx, vy = rng.choice([-8, -5, -3, -1, 1, 2, 3, 6]), rng.choice([-2, -1, 0, 1, 3])
    h, w = ph.shape[1:]
    y0 = rng.randrange(20, h - crop - 20 - abs(vy) * frames) + (abs(vy) * frames if vy < 0 else 0)
    x0 = rng.randrange(20, w - crop - 20 - abs(vx) * frames) + (abs(vx) * frames if vx < 0 else 0)
    hr = torch.stack([ph[:, y0 + t * vy:y0 + t * vy + crop, x0 + t * vx:x0 + t * vx + crop]
                      for t in range(frames)]).float() / 255
    luma = rgb_to_y(to_float(codec_clip(hr, "h264" if i % 2 == 0 else "mpeg2", seed=i))).numpy()[:, 0]
    follower = GridFollower((4, 4))
    pos = [follower(y) for y in luma]
    for t in range(1, frames):
        n += 1
        d = displacement(central_window(luma[t - 1]), central_window(luma[t]))
        if d is None:
            missing += 1
        else:
            errs.append(np.abs(np.array(d) - (-vy / 4, -vx / 4)))
        step = (np.array(pos[t]) - np.array(pos[t - 1])) * 4 - (-vy, -vx)
        off += int(np.any(np.abs(step) >= 1))
e = np.array(errs)
print(f"{n} frame pairs, {missing} without an estimate; error (y, x) in LR pixels: mean {e.mean(0).round(3)}, "
      f"90th percentile {np.percentile(e, 90, 0).round(3)}; grid steps off by an output pixel or more: {off}/{n}")
