"""Degradation chains that user footage really has, and the frozen evaluation set made from them.

    python -m gendrpix_video.training.realinput --data data/photos --out data/realinput.npz

The dev set of `evaluate.py` degrades with the family the models were trained on; gains there did
not transfer to an independent check. This set is made the way footage reaches a user, and is
frozen in one file so every machine and every model sees the same pixels (encoder builds differ):

  clean         x4 bicubic downscale (the classic benchmark; no damage to remove)
  realistic     Gaussian blur 1.2, x4 bicubic down, noise 5/255, JPEG 60 (`degrade.realistic_eval`)
  h264          blur 0.8, x4 down, noise 2/255 per frame, a panning clip encoded by libx264 at
                CRF `H264_CRF` (low bitrate); the frame scored is a P/B frame mid-clip
  h264_deint    as h264, each LR frame first softened as a bob deinterlacer leaves it (one field
                kept, the other field's lines interpolated)
  mpeg2         as h264 with mpeg2video at quantiser `MPEG2_Q`, the DVD/broadcast codec
  mpeg2_deint   as mpeg2 with the deinterlace softening

Every codec chain encodes a short clip of the crop window panning across the photo (`PAN`
HR pixels a frame), so inter-frame prediction, not only intra coding, leaves its artefacts.
Photos: the val split of the photo set (never trained on), `crops` windows of each. Moving
footage for the temporal check: the h264 chain's whole clips of the first `motion_clips` crops,
with the ground-truth frames' optical flow (OpenCV DIS, medium preset) and a forward-backward
consistency mask stored beside them, so scoring needs neither OpenCV nor PyAV.

Needs PyAV (a base dependency) and OpenCV (`pip install .[eval]`), only to build the file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import PhotoBank
from .degrade import bicubic_down, filter2d, gaussian_kernel, lr_size, realistic_eval

SCALE = 4
CHAINS = ("clean", "realistic", "h264", "h264_deint", "mpeg2", "mpeg2_deint")
# chains that damage the input (the targets average over these)
DAMAGED = CHAINS[1:]
# Constant quality, not a bitrate: rate control has no time to settle in a clip of 8 small frames.
# Both leave the LR frame about 31-38 dB from its clean source, as low-bitrate footage is.
H264_CRF = 32
MPEG2_Q = 12
FRAMES = 8         # frames of each codec clip
SCORED = 5         # the clip frame that is scored (not the keyframe)
PAN = (3, 1)       # HR pixels per frame (x, y): 0.75 and 0.25 LR pixels, sub-pixel motion
FLOW_STEP = 8      # flow stored in 1/8 pixels as int16


# --- chains --------------------------------------------------------------------------------


def bob_deinterlace(x: np.ndarray) -> np.ndarray:
    """T x H x W x 3 uint8: keep the top field, rebuild the bottom field's lines by linear
    interpolation, as a bob deinterlacer does with interlaced footage (half vertical detail)."""
    y = x.astype(np.float32)
    out = y.copy()
    h = y.shape[1]
    for r in range(1, h, 2):
        below = y[:, r + 1] if r + 1 < h else y[:, r - 1]
        out[:, r] = 0.5 * (y[:, r - 1] + below)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def encode_decode(frames: np.ndarray, codec: str, quality: int, fps: int = 25) -> np.ndarray:
    """Encode T x h x w x 3 uint8 RGB frames as yuv420p with `codec` at constant `quality` (x264's
    CRF, or MPEG-2's quantiser) in memory, and decode them back: the codec's real artefacts."""
    import io

    import av

    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = Fraction(1, fps)
        if codec == "libx264":
            s.options = {"preset": "medium", "crf": str(quality), "bf": "2", "keyint": str(4 * t),
                         "threads": "1"}
        else:  # qmin = qmax pins the quantiser (PyAV's global_quality is ignored by mpeg2video)
            s.options = {"g": str(4 * t), "bf": "2", "qmin": str(quality), "qmax": str(quality)}
            s.codec_context.thread_count = 1
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    buf.seek(0)
    with av.open(buf) as inp:
        dec = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    if len(dec) != t:
        raise RuntimeError(f"{codec}: {len(dec)} frames decoded of {t}")
    return np.stack(dec)


def to_u8(x: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W float [0, 1] -> N x H x W x 3 uint8."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_float(x: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255


def pan_windows(photo: torch.Tensor, y0: int, x0: int, crop: int, frames: int) -> torch.Tensor:
    """frames x 3 x crop x crop HR windows of `photo` (3 x H x W uint8) moving by PAN a frame."""
    return torch.stack([photo[:, y0 + t * PAN[1]: y0 + t * PAN[1] + crop,
                              x0 + t * PAN[0]: x0 + t * PAN[0] + crop] for t in range(frames)]
                       ).float() / 255


def codec_clip(hr: torch.Tensor, chain: str, seed: int, scale: int = SCALE) -> np.ndarray:
    """The LR clip of a codec chain: T x h x w x 3 uint8 from T x 3 x H x W HR windows, `scale`
    times smaller."""
    g = torch.Generator().manual_seed(seed)
    x = filter2d(hr, gaussian_kernel(0.8, 5))
    x = F.interpolate(x, size=lr_size(*x.shape[-2:], scale), mode="bicubic", align_corners=False,
                      antialias=True)
    x = x + torch.randn(x.shape, generator=g) * (2 / 255)
    lr = to_u8(x)
    if chain.endswith("_deint"):
        lr = bob_deinterlace(lr)
    codec, q = ("libx264", H264_CRF) if chain.startswith("h264") else ("mpeg2video", MPEG2_Q)
    return encode_decode(lr, codec, q)


# --- flow for the temporal check -------------------------------------------------------------


def gt_flow(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow cur -> prev of two H x W x 3 uint8 GT frames (DIS, medium preset) and a
    forward-backward consistency mask (True where prev warped by the flow is valid at cur)."""
    import cv2

    gp = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    gc = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    back = dis.calc(gc, gp, None)   # at cur's pixels, where they are in prev
    fwd = dis.calc(gp, gc, None)
    h, w = gc.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + back[..., 0], gy + back[..., 1]
    fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=1e4)
    err = np.hypot(back[..., 0] + fwd_at[..., 0], back[..., 1] + fwd_at[..., 1])
    inside = (mx >= 1) & (mx <= w - 2) & (my >= 1) & (my <= h - 2)
    return back, inside & (err < 0.5)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp N x C x H x W `x` by backward flow N x H x W x 2 (pixels): out(p) = x(p + flow(p))."""
    n, _, h, w = x.shape
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    px = (gx[None] + flow[..., 0]) / (w - 1) * 2 - 1
    py = (gy[None] + flow[..., 1]) / (h - 1) * 2 - 1
    return F.grid_sample(x.float(), torch.stack([px, py], -1), mode="bilinear",
                         padding_mode="border", align_corners=True)


# --- the set -------------------------------------------------------------------------------


def crop_origins(h: int, w: int, crop: int, n: int) -> list[tuple[int, int]]:
    """n window origins spread along the photo's long axis (room left for the pan)."""
    span_y = h - crop - FRAMES * PAN[1]
    span_x = w - crop - FRAMES * PAN[0]
    if span_y < 0 or span_x < 0:
        return []
    out = []
    for k in range(n):
        f = (k + 0.5) / n
        if w >= h:
            out.append((span_y // 2, int(f * span_x)))
        else:
            out.append((int(f * span_y), span_x // 2))
    return out


def build(data, out, crop: int = 512, crops: int = 2, motion_clips: int = 3, motion_frames: int = 12,
          limit: int | None = None, log=print) -> dict:
    """Make the frozen set; returns its settings (also stored in the file as JSON)."""
    bank = PhotoBank.load(data, "val")
    n_photos = len(bank) if limit is None else min(limit, len(bank))
    arrays: dict[str, list] = {"hr": []}
    arrays.update({f"lr_{c}": [] for c in CHAINS})
    names, origins = [], []
    for p in range(n_photos):
        photo = bank.images[p]
        for k, (y0, x0) in enumerate(crop_origins(photo.shape[1], photo.shape[2], crop, crops)):
            i = len(names)
            clip_hr = pan_windows(photo, y0, x0, crop, FRAMES)
            hr = clip_hr[SCORED:SCORED + 1]
            arrays["hr"].append(to_u8(hr)[0])
            arrays["lr_clean"].append(to_u8(bicubic_down(hr, SCALE))[0])
            arrays["lr_realistic"].append(to_u8(realistic_eval(hr, seed=i, scale=SCALE))[0])
            for c in CHAINS[2:]:
                arrays[f"lr_{c}"].append(codec_clip(clip_hr, c, seed=i)[SCORED])
            names.append(f"{bank.names[p]}#{k}")
            origins.append((y0 + SCORED * PAN[1], x0 + SCORED * PAN[0]))
            log(f"crop {i + 1}: {names[-1]}")
    motion = {"lr": [], "flow": [], "mask": [], "gt_warp_error": []}
    for i in range(min(motion_clips, len(names))):
        p = bank.names.index(names[i].split("#")[0])
        y0, x0 = origins[i][0] - SCORED * PAN[1], origins[i][1] - SCORED * PAN[0]
        photo = bank.images[p]
        if (y0 + crop + motion_frames * PAN[1] > photo.shape[1]
                or x0 + crop + motion_frames * PAN[0] > photo.shape[2]):
            y0, x0 = 0, 0
        clip_hr = pan_windows(photo, y0, x0, crop, motion_frames)
        motion["lr"].append(codec_clip(clip_hr, "h264", seed=500 + i))
        gt = to_u8(clip_hr)
        flows, masks = [], []
        for t in range(1, motion_frames):
            fl, m = gt_flow(gt[t - 1], gt[t])
            flows.append(np.round(fl * FLOW_STEP).astype(np.int16))
            masks.append(m)
        motion["flow"].append(np.stack(flows))
        motion["mask"].append(np.stack(masks))
        motion["gt_warp_error"].append(warp_error(to_float(gt), torch.from_numpy(np.stack(flows)),
                                                  torch.from_numpy(np.stack(masks))))
        log(f"motion clip {i + 1}: {names[i]}, {motion_frames} frames")
    settings = {
        "data": str(data), "crop": crop, "scale": SCALE, "chains": list(CHAINS),
        "h264_crf": H264_CRF, "mpeg2_q": MPEG2_Q, "frames": FRAMES, "scored_frame": SCORED,
        "pan": PAN, "names": names, "origins": origins, "motion_clips": len(motion["lr"]),
        "motion_frames": motion_frames, "gt_warp_error": motion["gt_warp_error"],
        "flow": "OpenCV DIS (medium) on the ground-truth frames, backward, 1/8 px int16; mask: "
                "forward-backward error < 0.5 px and inside the frame",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, settings=np.frombuffer(json.dumps(settings).encode(), dtype=np.uint8),
        **{k: np.stack(v) for k, v in arrays.items()},
        **({"motion_lr": np.stack(motion["lr"]), "motion_flow": np.stack(motion["flow"]),
            "motion_mask": np.packbits(np.stack(motion["mask"]), axis=-1)} if motion["lr"] else {}))
    return settings


class RealInputSet:
    """The frozen set, loaded (no pickle): HR crops, LR per chain, moving clips with flow."""

    def __init__(self, path):
        with np.load(path, allow_pickle=False) as z:
            self.settings = json.loads(bytes(z["settings"]).decode())
            self.hr = z["hr"]
            self.lr = {c: z[f"lr_{c}"] for c in CHAINS}
            if "motion_lr" in z.files:
                self.motion_lr = z["motion_lr"]
                self.motion_flow = z["motion_flow"]
                w = self.hr.shape[2]
                self.motion_mask = np.unpackbits(z["motion_mask"], axis=-1)[..., :w].astype(bool)
            else:
                self.motion_lr = self.motion_flow = self.motion_mask = None
        self.names = self.settings["names"]

    def __len__(self) -> int:
        return len(self.names)


def warp_error(frames: torch.Tensor, flow_int: torch.Tensor, mask: torch.Tensor) -> float:
    """Flow-aligned temporal error of a clip: mean |Y_t - warp(Y_{t-1})| in 8-bit levels over the
    consistent pixels, frames T x 3 x H x W in [0, 1], flow (T-1) x H x W x 2 in 1/8 px."""
    from .metrics import rgb_to_y

    y = rgb_to_y(frames.float())  # 16..235 scale
    prev = warp(y[:-1], flow_int.float() / FLOW_STEP)
    diff = (y[1:] - prev).abs()[:, 0]
    m = mask.bool()
    return float(diff[m].mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gendrpix_video.training.realinput",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/photos", help="photo set built by training/dataset.py")
    p.add_argument("--out", default="data/realinput.npz", help="the frozen set's file")
    p.add_argument("--crop", type=int, default=512, help="HR crop side (multiple of 8)")
    p.add_argument("--crops", type=int, default=2, help="windows per val photo")
    p.add_argument("--motion-clips", type=int, default=3, help="moving clips for the temporal check")
    p.add_argument("--motion-frames", type=int, default=12, help="frames of each moving clip")
    p.add_argument("--limit", type=int, help="first N val photos")
    a = p.parse_args(argv)
    try:
        s = build(a.data, a.out, a.crop, a.crops, a.motion_clips, a.motion_frames, a.limit,
                  log=lambda m: print(m, file=sys.stderr))
    except (FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"realinput: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {a.out}: {len(s['names'])} crops x {len(CHAINS)} chains, "
          f"{s['motion_clips']} moving clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
