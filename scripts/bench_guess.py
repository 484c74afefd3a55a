"""How long `--source auto` takes to decide a file: `pipeline.choose_source` on a 10-s x264 clip.

    .venv/bin/python scripts/bench_guess.py 1920 1080

The clip (a scikit-image photo panning, x264 CRF 20, keyframes 10 s apart, so every look seeks
and decodes forward) is written to /tmp first; the time printed is the decision alone: decoding
the 8 frames (`decode.sample_frames`) and the detector on them (`damage.damage_probability`).
"""
import sys
import time

import av
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

from gendrpix_video.damage import GUESS_FRAMES, damage_probability
from gendrpix_video.video.decode import sample_frames
from gendrpix_video.video.pipeline import choose_source
from gendrpix_video.video.presets import UpscaleSettings
from gendrpix_video.video.probe import probe


def make_clip(path: str, w: int, h: int, frames: int = 250) -> None:
    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None] / 255
    big = F.interpolate(photo, size=(h + 200, w + frames), mode="bicubic", align_corners=False).clamp(0, 1)
    with av.open(path, "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "20", "keyint": str(frames)}
        for i in range(frames):
            f = (big[0, :, i % 200: i % 200 + h, i: i + w].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def main() -> None:
    w, h = (int(v) for v in sys.argv[1:3]) if len(sys.argv) > 2 else (1920, 1080)
    path = f"/tmp/bench_guess_{w}x{h}.mkv"
    make_clip(path, w, h)
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
