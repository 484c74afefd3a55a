#!/usr/bin/env python3
"""The VapourSynth filter's frame rate in-process (GPU machine: no vspipe set-up needed there).

A synthetic 1080p RGBH pan (2 px a frame) through `vsgendrpix.gendrpix` to 2160p with each
setting, its frames drawn in order with VapourSynth's own prefetching (`core.num_threads`
requests in flight, as vspipe does); fps of the second of two passes over fresh filter
instances (the first warms cuDNN and the model). `python -m vsgendrpix.bench` measures the same
through vspipe where VapourSynth is configured.

    python3 scripts/vs_speed.py --frames 240 --run "" --run grid=fixed,temporal=0
"""
import argparse
import time

import numpy as np
import vapoursynth as vs

from gendrpix_video import load_model
from vsgendrpix import gendrpix
from vs_settings import parse

core = vs.core


def pan(n: int, h: int = 1080, w: int = 1920, step: int = 2) -> vs.VideoNode:
    rng = np.random.default_rng(0)
    width = w + step * n
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(width)[None, :]
    pic = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(h, width))) * np.exp(-2 * (np.pi * 3) ** 2 * (fy ** 2 + fx ** 2)),
                        s=(h, width))
    pic = (0.5 + 0.25 * np.tanh(2 * pic / pic.std())).astype(np.float16)
    blank = core.std.BlankClip(format=vs.RGBH, width=w, height=h, length=n, fpsnum=24000, fpsden=1001)

    def paint(n, f):
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), np.roll(pic, 7 * p, 0)[:, step * n:step * n + w])
        return out
    return core.std.ModifyFrame(blank, blank, paint)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--run", action="append", required=True, help="filter settings: key=value,...")
    a = ap.parse_args()
    core.num_threads = a.threads
    model = load_model(None, device="cuda")
    src = pan(a.frames)
    print("| settings | fps (1080p -> 2160p, RGBH) |\n|---|---|")
    for text in a.run:
        kw = {"batch_size": 4, "num_streams": 2, "source": "any", **parse(text)}
        fps = 0.0
        for _ in range(2):
            node = gendrpix(src, height=2160, model=model, **kw)
            t0 = time.perf_counter()
            for _f in node.frames():
                pass
            fps = a.frames / (time.perf_counter() - t0)
        print(f"| {text or 'defaults'} ({', '.join(f'{k}={v}' for k, v in kw.items())}) | {fps:.1f} |", flush=True)


if __name__ == "__main__":
    main()
