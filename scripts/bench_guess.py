"""How long `--source auto` takes to decide a file: `pipeline.choose_source` on a 10-s x264 clip.

    .venv/bin/python scripts/bench_guess.py 1920 1080

The clip (`measure.bench_e2e.synth_clip`: x264 at CRF 12 with its default keyframe interval, 250
frames, one keyframe, so every look seeks to the start and decodes forward: a heavy case) is
written to /tmp first; the time printed is the decision alone: decoding the 8 frames
(`decode.sample_frames`) and the detector on them (`damage.damage_probability`).
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gendrpix_video.damage import GUESS_FRAMES, damage_probability
from gendrpix_video.measure.bench_e2e import synth_clip
from gendrpix_video.video.decode import sample_frames
from gendrpix_video.video.pipeline import choose_source
from gendrpix_video.video.presets import UpscaleSettings
from gendrpix_video.video.probe import probe


def main() -> None:
    w, h = (int(v) for v in sys.argv[1:3]) if len(sys.argv) > 2 else (1920, 1080)
    path = f"/tmp/bench_guess_{w}x{h}.mkv"
    synth_clip(Path(path), w, h, 250)
    info = probe(path)
    damage_probability([np.zeros((64, 64, 3), np.uint8)])  # load the detector outside the timing
    t0 = time.perf_counter()
    frames = sample_frames(info, GUESS_FRAMES)
    t1 = time.perf_counter()
    damage_probability(frames)
    t2 = time.perf_counter()
    _, how = choose_source(info, UpscaleSettings(), ("any", "clean"))
    t3 = time.perf_counter()
    print(f"{w}x{h}: decode {t1 - t0:.2f} s, detector {t2 - t1:.2f} s; choose_source {t3 - t2:.2f} s -> {how}; "
          f"{torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
