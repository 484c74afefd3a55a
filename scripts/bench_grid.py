#!/usr/bin/env python3
"""Engine time per frame with the x8 grid fixed, following the picture, and following with the
temporal filter (the CLI's defaults) (GPU machine).

The video engine (CUDA streams, pinned buffers, bf16, the CLI's batch) on a synthetic 1080p
yuv420p pan (2 input pixels a frame) to 2160p, the encoders left out (emit does nothing): what
`--grid follow` adds is the motion estimate on the CPU before each batch and each frame padded on
its own phase; the filter adds a bicubic warp, two local differences and a blend a frame on the
GPU. Prints ms a frame for each setting, median of 3 timed passes after a warm-up pass.
usage: python3 scripts/bench_grid.py [FRAMES] [BATCH] [--supersample K,...] [--sources any,clean]
With --supersample (or --sources), the CLI's settings only (grid following, temporal filter) for
each source's network at its own default detail and each K (`--supersample`: the model restores
to K times the output and the result is shrunk): what `--source auto` and `--supersample` cost.
"""
import argparse
import statistics
import time

import numpy as np
import torch

from gendrpix_video import load_model
from gendrpix_video.policy import resolve_detail
from gendrpix_video.temporal import DEFAULT_STRENGTH
from gendrpix_video.video.colour import layout
from gendrpix_video.video.decode import Frame
from gendrpix_video.video.engine import Engine, EngineConfig

ap = argparse.ArgumentParser()
ap.add_argument("frames", type=int, nargs="?", default=48)
ap.add_argument("batch", type=int, nargs="?", default=4)
ap.add_argument("--supersample", default=None, help="comma-separated K values")
ap.add_argument("--sources", default=None, help="comma-separated sources (any, clean)")
args = ap.parse_args()
frames_n, batch = args.frames, args.batch
h, w, step = 1080, 1920, 2
rng = np.random.default_rng(0)
spec = np.fft.rfft2(rng.normal(size=(h, w + step * frames_n)))
fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w + step * frames_n)[None, :]
pic = np.fft.irfft2(spec * np.exp(-2 * (np.pi * 3) ** 2 * (fy ** 2 + fx ** 2)), s=(h, w + step * frames_n))
pic = (128 + 60 * np.tanh(2 * pic / pic.std())).astype(np.uint8)
chroma = np.full((h // 2, w // 2), 128, np.uint8)
frames = [Frame(t, t, [np.ascontiguousarray(pic[:, step * t:step * t + w]), chroma, chroma], None)
          for t in range(frames_n)]
lay = layout("yuv420p")
model = load_model(None, device="cuda")
if args.supersample or args.sources:
    runs = [("follow", DEFAULT_STRENGTH, src, float(k)) for src in (args.sources or "any").split(",")
            for k in (args.supersample or "1").split(",")]
else:
    runs = [(grid, temporal, "any", 1.0) for grid, temporal in
            (("fixed", 0.0), ("follow", 0.0), ("follow", DEFAULT_STRENGTH))]
for grid, temporal, source, k in runs:
    torch.cuda.reset_peak_memory_stats()
    cfg = EngineConfig(in_layout=lay, in_size=(h, w), in_matrix=1, in_full=False, out_layout=layout("yuv420p10le"),
                       out_size=(2160, 3840), out_matrix=1, out_full=False, batch=batch, grid=grid,
                       temporal=temporal, segment_frames=48, source=source, supersample=k,
                       detail=resolve_detail(model, None, source))
    times = []
    for rep in range(4):
        eng = Engine(model, cfg, torch.device("cuda"))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            eng.run([frames[i:i + batch] for i in range(0, frames_n, batch)], lambda f, planes: None)
        torch.cuda.synchronize()
        if rep:
            times.append((time.perf_counter() - t0) / frames_n * 1000)
    print(f"grid {grid}, temporal {temporal:g}, source {source}, supersample {k:g}: "
          f"{statistics.median(times):.2f} ms a frame (passes {', '.join(f'{t:.2f}' for t in times)}), "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
