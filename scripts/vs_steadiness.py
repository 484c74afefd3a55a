#!/usr/bin/env python3
"""The VapourSynth filter's steadiness on eval-real's moving clips, as editors run it.

Each moving clip of the real-input set (H.264 pans, 12 frames, 128 -> 512 px) goes through the
real `vsgendrpix.gendrpix` filter with each setting, and its output through eval-real's
flow-aligned temporal error (`realinput.warp_error`, 8-bit frames), reported against bicubic's on
the same clips (x bicubic, as eval-real's warp columns). Per setting also the error of the frame
pairs that straddle the start of a run (`span`: the grid following and the temporal filter
start again there) against the pairs inside a run: what a run's start costs, so a span longer
than the clips can be judged (one start every `span` pairs).

    .venv/bin/python scripts/vs_steadiness.py --run grid=fixed,temporal=0 --run span=4 --run span=12

`--cli`: the video pipeline's way for reference (the whole clip one run, as eval-real's "warp,
video" column). A run's settings are the filter's keyword arguments, comma-separated `key=value`; the model is the
shipped default (or `--model`), on the CPU in fp32.
"""
import argparse
import json

import numpy as np
import torch
import vapoursynth as vs

from gendrpix_video import load_model
from gendrpix_video.temporal import DEFAULT_STRENGTH
from gendrpix_video.training.realeval import auto_method, bicubic, clip_motions, filter_clip, quantise, run_clip
from gendrpix_video.training.realinput import RealInputSet, to_float, warp_error
from vsgendrpix import gendrpix
from vs_settings import DEFAULTS, parse

core = vs.core


def as_clip(frames: torch.Tensor) -> vs.VideoNode:
    """T x 3 x h x w float frames as an RGBS clip."""
    t, _, h, w = frames.shape
    blank = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=t, fpsnum=25, fpsden=1)

    def paint(n, f):
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n, p].numpy())
        return out
    return core.std.ModifyFrame(blank, blank, paint)


def pair_errors(clip: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> list[float]:
    return [warp_error(clip[t:t + 2], flow[t:t + 1], mask[t:t + 1]) for t in range(len(clip) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="data/realinput.npz")
    ap.add_argument("--model", default=None)
    ap.add_argument("--run", action="append", required=True, help="filter settings: key=value,...")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--cli", action="store_true", help="also the video pipeline's way, for reference")
    a = ap.parse_args()
    core.num_threads = 2
    data = RealInputSet(a.set)
    model = load_model(a.model, device="cpu")
    size = tuple(data.hr.shape[1:3])
    clips = [(to_float(data.motion_lr[c]), torch.from_numpy(data.motion_flow[c]),
              torch.from_numpy(data.motion_mask[c])) for c in range(len(data.motion_lr))]
    base = float(np.mean([warp_error(torch.cat([bicubic(lr[t:t + 1], size) for t in range(len(lr))]), fl, m)
                          for lr, fl, m in clips]))
    print(f"bicubic warp {base:.3f} levels")
    results = {"bicubic": base}
    if a.cli:  # the video pipeline's way: one run through the whole clip (eval-real's warp, video)
        fn = auto_method(model, "cpu")
        cli = float(np.mean([warp_error(filter_clip(run_clip(fn, lr, size, True), *clip_motions(lr, size),
                                                    DEFAULT_STRENGTH), fl, m) for lr, fl, m in clips]))
        results["cli"] = cli / base
        print(f"as the CLI runs a clip (grid following, temporal filter {DEFAULT_STRENGTH:g}): {cli / base:.3f} x bicubic")
    print("| settings | warp (x bicubic) | pairs at a run's start | pairs inside a run |")
    print("|---|---|---|---|")
    for text in a.run:
        kw = parse(text)  # "": the filter's defaults
        span, batch = kw.get("span", DEFAULTS["span"]), kw.get("batch_size", DEFAULTS["batch_size"])
        unit = -(-span // batch) * batch
        total, starts, inside = [], [], []
        for lr, fl, m in clips:
            node = gendrpix(as_clip(lr), width=size[1], height=size[0], model=model, **kw)
            out = torch.stack([quantise(torch.from_numpy(np.stack([np.asarray(f[p]) for p in range(3)])))
                               for f in node.frames()])
            total.append(warp_error(out, fl, m))
            for t, e in enumerate(pair_errors(out, fl, m)):
                (starts if (t + 1) % unit == 0 else inside).append(e)
        row = {"warp_x": float(np.mean(total)) / base,
               "start_x": float(np.mean(starts)) / base if starts else None,
               "inside_x": float(np.mean(inside)) / base}
        results[text] = row
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {text} | {row['warp_x']:.3f} | {fmt(row['start_x'])} | {row['inside_x']:.3f} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
