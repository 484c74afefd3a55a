"""Make and check the damage detector behind `--source auto` (`gendrpix_video/damage.py`).

    python -m gendrpix_video.training.damage_fit patches --data data/photos --out runs/damage/patches.npz
    python -m gendrpix_video.training.damage_fit train --patches runs/damage/patches.npz \\
        --out gendrpix_video/weights/detectors/damage.safetensors
    python -m gendrpix_video.training.damage_fit oracle --data data/photos --split val --out runs/damage/val.npz
    python -m gendrpix_video.training.damage_fit score --oracle runs/damage/val.npz

`patches`: luma patches of the training photos' crops (never the val split), each made clean (a
downscale by one of several kernels, then at most a light sharpen, a trace of grain or a
high-bitrate x264 encode, as masters come) or damaged (noise, JPEG, blur + noise + JPEG, H.264 or
MPEG-2 at low quality through PyAV, with and without deinterlace softening), labelled so.
`train`: the CNN on those labels (CPU minutes). `oracle`: crops of a split through a wider spread
of chains, each restored by both of the default model's networks, storing the LR frame and each
network's Y-PSNR: which network the crop really needed. `score`: the detector's choice on an oracle
set, chain by chain, against always "any", always "clean" and the oracle; `--fit-threshold` sets
the shipped threshold from an oracle set of the training split (`best_threshold`: the lowest
within 0.01 dB of the most mean Y-PSNR).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..argparsing import OneLineParser
from ..damage import DETECTOR, DamageNet, luma
from .dataset import PhotoBank
from .degrade import filter2d, gaussian_kernel, jpeg, lr_size
from .realinput import PAN, bob_deinterlace, encode_decode, pan_windows, to_float, to_u8

SCALE = 4
CLIP = 3          # frames of a codec clip; the middle one is kept (a P frame)
DAMAGED_FAMILIES = ("noise", "jpeg", "realistic", "h264", "mpeg2")
ORACLE_FAMILIES = ("clean", "clean_x264", "noise", "jpeg", "realistic", "h264", "mpeg2")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def downscale(x: torch.Tensor, mode: str, scale: float = SCALE) -> torch.Tensor:
    """Down by `scale` with one of the kernels masters are made with."""
    from PIL import Image

    h, w = lr_size(*x.shape[-2:], scale)
    if mode == "lanczos":
        ims = [Image.fromarray(a).resize((w, h), Image.LANCZOS) for a in to_u8(x)]
        return to_float(np.stack([np.asarray(i) for i in ims]))
    if mode == "area":
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode=mode, align_corners=False, antialias=True)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return filter2d(x, gaussian_kernel(sigma, 2 * math.ceil(3 * sigma) + 1)) if sigma > 0 else x


def noisy(x: torch.Tensor, sigma: float, g: torch.Generator, grey: bool) -> torch.Tensor:
    z = torch.randn(x.shape, generator=g)
    if grey:
        z = z[:, :1].expand_as(z)
    return (x + z * sigma / 255).clamp(0, 1)


def make_clip(hr: torch.Tensor, fam: str, rng: np.random.Generator, g: torch.Generator,
              wide: bool = False, scale: float = SCALE) -> tuple[np.ndarray, dict]:
    """The middle LR frame (h x w x 3 uint8) of HR clip `hr` (CLIP x 3 x H x W) through chain
    family `fam` with random settings, and the settings. `wide`: the oracle's spread, which reaches
    into light damage (where either network may be better); otherwise the detector's training
    ranges, clearly clean or clearly damaged. `scale`: the downscale factor."""
    mode = str(rng.choice(["bicubic", "bicubic", "bilinear", "area", "lanczos"]))
    s = {"fam": fam, "mode": mode}
    if fam in ("clean", "clean_x264"):
        x = downscale(hr, mode, scale)
        if not wide and rng.random() < 0.3:  # sharpened masters
            a = float(rng.uniform(0.1, 0.6))
            x = (x + a * (x - blur(x, 1.0))).clamp(0, 1)
            s["sharpen"] = a
        if not wide and rng.random() < 0.3:  # a trace of grain
            s["grain"] = float(rng.uniform(0.2, 0.8))
            x = noisy(x, s["grain"], g, bool(rng.random() < 0.5))
        lr = to_u8(x)
        if fam == "clean_x264" or (not wide and rng.random() < 0.3):
            s["crf"] = int(rng.integers(12, 25) if wide else rng.integers(6, 19))
            lr = encode_decode(lr, "libx264", s["crf"])
        return lr[CLIP // 2], s
    s["blur"] = float(rng.uniform(0.3, 1.5)) if fam in ("realistic", "h264", "mpeg2") else 0.0
    lo = 0.5 if wide else {"noise": 2.5, "jpeg": 0.0}.get(fam, 0.5)
    s["noise"] = float(rng.uniform(lo, 12 if fam == "noise" else 8)) if fam != "jpeg" else 0.0
    x = noisy(downscale(blur(hr, s["blur"]), mode, scale), s["noise"], g, bool(rng.random() < 0.5))
    lr = to_u8(x)
    if fam in ("h264", "mpeg2") and rng.random() < 0.4:
        s["deint"] = True
        lr = bob_deinterlace(lr)
    if fam in ("jpeg", "realistic"):
        s["q"] = int(rng.integers(30, 96) if wide else rng.integers(15, 76))
        lr = to_u8(jpeg(to_float(lr), s["q"]))
    elif fam == "h264":
        s["crf"] = int(rng.integers(22, 40) if wide else rng.integers(27, 41))
        lr = encode_decode(lr, "libx264", s["crf"])
    elif fam == "mpeg2":
        s["q"] = int(rng.integers(2, 17) if wide else rng.integers(4, 21))
        lr = encode_decode(lr, "mpeg2video", s["q"])
    return lr[CLIP // 2], s


def hr_clips(bank: PhotoBank, crop: int, rng: np.random.Generator):
    """Endless (photo name, CLIP x 3 x crop x crop panning HR clip) from photos big enough."""
    ok = [k for k, im in enumerate(bank.images)
          if im.shape[1] > crop + CLIP * PAN[1] and im.shape[2] > crop + CLIP * PAN[0]]
    while True:
        p = int(rng.choice(ok))
        im = bank.images[p]
        y0 = int(rng.integers(0, im.shape[1] - crop - CLIP * PAN[1]))
        x0 = int(rng.integers(0, im.shape[2] - crop - CLIP * PAN[0]))
        clip = pan_windows(im, y0, x0, crop, CLIP)
        if rng.random() < 0.5:
            clip = clip.flip(-1)
        yield bank.names[p], clip


# --- patches and training ----------------------------------------------------------------------


def make_patches(data, n: int, patch: int = 96, seed: int = 0) -> dict:
    bank = PhotoBank.load(data, "train")
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    clips = hr_clips(bank, patch * SCALE, rng)
    ys, labels, settings = [], [], []
    t0 = time.time()
    for i in range(n):
        _, clip = next(clips)
        damaged = i % 2 == 1
        fam = str(rng.choice(DAMAGED_FAMILIES)) if damaged else str(rng.choice(["clean", "clean_x264"], p=[0.7, 0.3]))
        lr, s = make_clip(clip, fam, rng, g)
        ys.append((luma(lr)[0, 0] * 255).round().to(torch.uint8).numpy())
        labels.append(int(damaged))
        settings.append(s)
        if (i + 1) % 500 == 0:
            log(f"{i + 1}/{n} patches, {time.time() - t0:.0f} s")
    return {"y": np.stack(ys), "label": np.array(labels, np.uint8), "settings": json.dumps(settings)}


def train_detector(y: np.ndarray, label: np.ndarray, steps: int = 2500, batch: int = 32, lr: float = 2e-3,
                   width: int = 16, crop: int = 64, seed: int = 0,
                   val_fraction: float = 0.1) -> tuple[DamageNet, dict]:
    """The CNN on patches `y` (N x h x w uint8 luma) and labels (1 = damaged), on random `crop`
    windows of them, flipped at random (a codec's block grid lands at every phase, as it does
    under a fully convolutional net's pooled score); a held-out tenth of the patches, whole,
    gives the accuracy in the returned report."""
    torch.manual_seed(seed)
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    nv = int(n * val_fraction)
    va, tr = perm[:nv], perm[nv:]
    Y = torch.from_numpy(y).float().div(255)[:, None]
    L = torch.from_numpy(label).float()
    net = DamageNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.from_numpy(tr)[torch.randint(len(tr), (batch,), generator=g)]
        oy, ox = (int(v) for v in torch.randint(Y.shape[-1] - crop + 1, (2,), generator=g))
        x = Y[idx, :, oy:oy + crop, ox:ox + crop]
        if torch.rand(1, generator=g) < 0.5:
            x = x.flip(-1)
        if torch.rand(1, generator=g) < 0.5:
            x = x.flip(-2)
        loss = F.binary_cross_entropy_with_logits(net.score(x), L[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0:
            log(f"step {step + 1}/{steps}: loss {loss.item():.4f}, {time.time() - t0:.0f} s")
    net.eval()
    with torch.inference_mode():
        p = torch.cat([torch.sigmoid(net.score(Y[va][k:k + 256])) for k in range(0, nv, 256)])
    acc = float(((p > 0.5).float() == L[va]).float().mean())
    return net, {"patches": n, "held_out": nv, "held_out_accuracy": round(acc, 4), "steps": steps,
                 "seconds": round(time.time() - t0, 1)}


def save_detector(net: DamageNet, path, threshold: float, report: dict) -> None:
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    meta = {"width": str(net.width), "threshold": json.dumps(threshold),
            "report": json.dumps(report), "made_by": "python -m gendrpix_video.training.damage_fit"}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)


def set_threshold(path, threshold: float, fitted_on: str = "") -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ..damage import load_detector

    with safe_open(str(path), "pt") as f:
        meta, state = dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
    meta["threshold"] = json.dumps(threshold)
    meta["threshold_fitted_on"] = fitted_on
    save_file(state, str(path), metadata=meta)
    load_detector.cache_clear()


# --- oracle: which network a crop really needed --------------------------------------------------


def make_oracle(data, split: str, n: int, crop: int = 512, seed: int = 0, model=None) -> dict:
    from ..loading import load_model
    from ..padcfg import restore
    from ..policy import resolve_detail
    from .metrics import psnr_y

    model = model or load_model(device="cpu")
    bank = PhotoBank.load(data, split)
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    clips = hr_clips(bank, crop, rng)
    fams = rng.choice(ORACLE_FAMILIES, size=n, p=[0.25, 0.15, 0.1, 0.1, 0.1, 0.15, 0.15])
    lrs, rows = [], []
    t0 = time.time()
    for i in range(n):
        name, clip = next(clips)
        lr, s = make_clip(clip, str(fams[i]), rng, g, wide=True)
        hr = clip[CLIP // 2: CLIP // 2 + 1]
        row = {"photo": name, **s}
        with torch.inference_mode():
            for src in ("any", "clean"):
                out = restore(model, to_float(lr[None]), size=(crop, crop),
                              detail=resolve_detail(model, None, src), source=src)
                row[f"psnr_{src}"] = float(psnr_y(torch.round(out.clamp(0, 1) * 255) / 255, hr))
        lrs.append(lr)
        rows.append(row)
        if (i + 1) % 50 == 0:
            log(f"{i + 1}/{n} crops, {time.time() - t0:.0f} s")
    return {"lr": np.stack(lrs), "rows": json.dumps(rows)}


def score_oracle(rows: list[dict], p: np.ndarray, threshold: float) -> dict:
    """Per chain family of an oracle set: how often damage probabilities `p` under `threshold`
    pick clean, how often clean was better, and the mean Y-PSNR of always "any", always "clean",
    the pick and the oracle."""
    pa = np.array([r["psnr_any"] for r in rows])
    pc = np.array([r["psnr_clean"] for r in rows])
    table = {}
    for fam in ("all",) + ORACLE_FAMILIES:
        m = np.ones(len(rows), bool) if fam == "all" else np.array([r["fam"] == fam for r in rows])
        if not m.any():
            continue
        clean = p[m] < threshold
        table[fam] = {"n": int(m.sum()), "picked_clean": float(clean.mean()),
                      "clean_better": float((pc[m] > pa[m]).mean()),
                      "any": float(pa[m].mean()), "clean": float(pc[m].mean()),
                      "auto": float(np.where(clean, pc[m], pa[m]).mean()),
                      "oracle": float(np.maximum(pc[m], pa[m]).mean())}
    return table


def best_threshold(p: np.ndarray, rows: list[dict], tolerance: float = 0.01) -> float:
    """The threshold on the damage probability for an oracle set: the lowest whose mean Y-PSNR is
    within `tolerance` dB of the best. Where Y-PSNR cannot tell the networks apart (light damage),
    the one that removes damage is kept: on damaged input it gives the more natural picture (NIQE)."""
    pa = np.array([r["psnr_any"] for r in rows])
    pc = np.array([r["psnr_clean"] for r in rows])
    cands = np.round(np.linspace(0.05, 0.95, 91), 2)
    means = np.array([np.where(p < t, pc, pa).mean() for t in cands])
    return float(cands[np.flatnonzero(means >= means.max() - tolerance)[0]])


# --- CLI ----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = OneLineParser(prog="python -m gendrpix_video.training.damage_fit", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("patches")
    a.add_argument("--data", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--n", type=int, default=16000)
    a.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("train")
    a.add_argument("--patches", required=True)
    a.add_argument("--out", default=str(DETECTOR))
    a.add_argument("--steps", type=int, default=2500)
    a.add_argument("--threshold", type=float, default=0.5)
    a = sub.add_parser("oracle")
    a.add_argument("--data", required=True)
    a.add_argument("--split", choices=("train", "val"), default="val")
    a.add_argument("--out", required=True)
    a.add_argument("--n", type=int, default=250)
    a.add_argument("--seed", type=int, default=1)
    a = sub.add_parser("score")
    a.add_argument("--oracle", required=True)
    a.add_argument("--detector", default=str(DETECTOR))
    a.add_argument("--fit-threshold", action="store_true",
                   help="first write the threshold with the most mean Y-PSNR on this oracle set into the detector")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.cmd == "patches":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out, **make_patches(args.data, args.n, seed=args.seed))
        log(f"wrote {args.out}")
    elif args.cmd == "train":
        z = np.load(args.patches)
        net, report = train_detector(z["y"], z["label"], steps=args.steps)
        save_detector(net, args.out, args.threshold, report)
        print(json.dumps(report))
    elif args.cmd == "oracle":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out, **make_oracle(args.data, args.split, args.n, seed=args.seed))
        log(f"wrote {args.out}")
    else:
        from ..damage import damage_probability, load_detector

        z = np.load(args.oracle)
        rows = json.loads(str(z["rows"]))
        net, threshold = load_detector(args.detector)
        p = np.array([damage_probability([lr], net)[0] for lr in z["lr"]])
        if args.fit_threshold:
            threshold = best_threshold(p, rows)
            set_threshold(args.detector, threshold, f"{args.oracle}: {len(rows)} crops")
            log(f"threshold {threshold} written to {args.detector}")
        table = score_oracle(rows, p, threshold)
        print(f"threshold {threshold:g}\n")
        print("| chains | crops | picked clean | clean better | any | clean | auto | oracle |")
        print("|---|---|---|---|---|---|---|---|")
        for fam, r in table.items():
            print(f"| {fam} | {r['n']} | {r['picked_clean']:.2f} | {r['clean_better']:.2f} | {r['any']:.2f} | "
                  f"{r['clean']:.2f} | {r['auto']:.2f} | {r['oracle']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
