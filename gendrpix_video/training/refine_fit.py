"""Train the refiner (`gendrpix_video/refiner.py`) on a frozen model's outputs and attach it.

    python -m gendrpix_video.training.refine_fit bank --data data/photos --source clean --out runs/refine/clean.npz
    python -m gendrpix_video.training.refine_fit train --bank runs/refine/clean.npz --out runs/refine/clean.safetensors
    python -m gendrpix_video.training.refine_fit attach --refiner runs/refine/clean.safetensors \\
        --strength clean=0.6 --out gendrpix_video/weights/default.safetensors

`bank`: crops of the training photos (never the val split), made LR at scales drawn over the
model's range through the chains a source's footage has (`damage_fit.make_clip`'s wide spread:
clean masters, with and without a high-bitrate x264 encode, for `clean`; noise, JPEG, blur + noise
+ JPEG, H.264 and MPEG-2 for `any`), then restored by that source's network at its default detail.
It stores the ground truth, the restored crop and the bicubic input (uint8). `train`: the refiner
on random windows of the bank, L1 to the ground truth, Adam with a cosine schedule, CPU minutes; the
last tenth of the bank is held back and its Y-PSNR gain reported. `--adv-weight` adds a patch
discriminator on output pixels (windows at random offsets, so every phase of the x2 and x8 grids),
`--pattern-weight` the pattern loss (texture at one period the scene lacks), `--init` starts from a
trained refiner (an L1 fit, say, then the adversary). `attach`: the model with the
refiner in its config, each source's strength in the weights' metadata (0: the refiner is not run
for that source) and, with `--detail`, its default detail (the one the bank was restored at), the
rest tensor for tensor as it was.
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
from ..loading import load_model
from ..model import SOURCES, GenDRPix, build_model
from ..padcfg import resize, restore
from ..policy import resolve_detail
from ..refiner import Refiner
from ..weights import save_weights
from .damage_fit import CLIP, DAMAGED_FAMILIES, hr_clips, make_clip
from .dataset import PhotoBank
from .degrade import luma
from .losses import PixelDiscriminator, pattern_loss
from .metrics import psnr_y
from .realinput import to_float, to_u8

FAMILIES = {"clean": (("clean", "clean_x264"), (0.7, 0.3)),
            "any": (DAMAGED_FAMILIES, (0.15, 0.15, 0.2, 0.25, 0.25))}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_bank(data, source: str, n: int, crop: int = 192, seed: int = 0, model: GenDRPix | None = None,
              detail: float | None = None, teacher=None, device: str = "cpu") -> dict:
    """`n` crops restored by `source`'s network at `detail` (None: that network's default), and
    with `teacher` (a `Teacher`) its output for each LR crop too (key "t"). The crops are degraded
    on the CPU; `model` and `teacher` run where they are, `device`."""
    model = model or load_model(device=device)
    lo, hi = max(2.0, model.scale_range[0]), model.scale_range[1]
    fams, probs = FAMILIES[source]
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    clips = hr_clips(PhotoBank.load(data, "train"), crop, rng)
    detail = resolve_detail(model, detail, source)
    hrs, ys, ups, ts, rows = [], [], [], [], []
    t0 = time.time()
    for i in range(n):
        name, clip = next(clips)
        # an even LR size, as the 4:2:0 codecs need
        scale = crop / (2 * round(crop / float(rng.uniform(lo, hi)) / 2))
        lr, s = make_clip(clip, str(rng.choice(fams, p=probs)), rng, g, wide=True, scale=scale)
        x = to_float(lr[None]).to(device)
        with torch.inference_mode():
            y = restore(model, x, size=(crop, crop), detail=detail, source=source).cpu()
            up = resize(x, (crop, crop)).clamp(0, 1).cpu()
            if teacher is not None:
                ts.append(to_u8(teacher.restore_to(x, (crop, crop)).clamp(0, 1).cpu())[0])
        hrs.append(to_u8(clip[CLIP // 2: CLIP // 2 + 1])[0])
        ys.append(to_u8(y)[0])
        ups.append(to_u8(up)[0])
        rows.append({"photo": name, "scale": round(scale, 3), **s})
        if (i + 1) % 200 == 0:
            log(f"{i + 1}/{n} crops, {time.time() - t0:.0f} s")
    out = {"hr": np.stack(hrs), "y": np.stack(ys), "up": np.stack(ups), "rows": json.dumps(rows),
           "source": source, "detail": detail}
    if teacher is not None:
        out.update(t=np.stack(ts), teacher=teacher.name)
    return out


def load_banks(paths: list[str]) -> dict:
    """Banks of one source and detail (made with different seeds, say) joined into one."""
    banks = [dict(np.load(p)) for p in paths]
    for p, b in zip(paths[1:], banks[1:]):
        if str(b["source"]) != str(banks[0]["source"]) or float(b["detail"]) != float(banks[0]["detail"]):
            raise SystemExit(f"refine_fit: {p} holds source {b['source']} at detail {float(b['detail']):g}, "
                             f"{paths[0]} source {banks[0]['source']} at {float(banks[0]['detail']):g}")
    keys = ("hr", "y", "up", "t") if all("t" in b for b in banks) else ("hr", "y", "up")
    out = {k: np.concatenate([b[k] for b in banks]) for k in keys}
    rows = [r for b in banks for r in json.loads(str(b.get("rows", "[]")))]
    extra = {"teacher": banks[0]["teacher"]} if "t" in out else {}
    return {**out, **extra, "rows": json.dumps(rows), "source": banks[0]["source"], "detail": banks[0]["detail"]}


def _planes(a: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """A bank's crops on the device, N x 3 x H x W uint8: in fp32 a bank of thousands of crops is
    four times the size; batches are made float as they are drawn (`_float`)."""
    return torch.from_numpy(a).to(device).permute(0, 3, 1, 2)


def _float(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 255


def edge_map(x: torch.Tensor, step: float) -> torch.Tensor:
    """N x 1 x H x W in [0, 1]: where `x` has an edge, its luma gradient over `step` (a luma step a
    pixel that counts fully), spread to the 3 x 3 neighbourhood."""
    lum = luma(x)
    gy = F.pad(lum[..., 1:, :] - lum[..., :-1, :], (0, 0, 0, 1)).abs()
    gx = F.pad(lum[..., :, 1:] - lum[..., :, :-1], (0, 1, 0, 0)).abs()
    return F.max_pool2d(torch.maximum(gx, gy) / step, 3, 1, 1).clamp(0, 1)


def held_out_gain(net: Refiner, y: torch.Tensor, up: torch.Tensor, hr: torch.Tensor) -> tuple[float, float]:
    """Mean Y-PSNR of the restored crops and its gain with the refiner (outputs rounded to 8 bits)."""
    with torch.no_grad():
        out = torch.round(net(y, up).clamp(0, 1) * 255) / 255
    base = np.mean([float(psnr_y(y[i:i + 1], hr[i:i + 1])) for i in range(len(y))])
    refined = np.mean([float(psnr_y(out[i:i + 1], hr[i:i + 1])) for i in range(len(y))])
    return float(base), float(refined - base)


def train_refiner(bank: dict, channels: int = 32, blocks: int = 4, minutes: float = 10.0, batch: int = 16,
                  window: int = 96, lr: float = 1e-3, seed: int = 0, steps: int | None = None,
                  adv_weight: float = 0.0, pattern_weight: float = 0.0,
                  init: dict | None = None, device: str = "cpu", hr_weight: float = 1.0,
                  teacher_weight: float = 0.0, edge_gate: float = 0.0, down: int = 2,
                  ungated: float = 0.0, blend: bool = False, gate_from: str = "teacher",
                  adv_target: str = "hr", adv_luma: bool = False) -> tuple[Refiner, dict]:
    """The refiner trained on `bank` for `minutes` of wall time (or exactly `steps`), and a report.
    `init`: a refiner's state to start from (its channels, blocks and `down` win). Returned on the CPU.
    The loss: `hr_weight` L1 to the ground truth, `teacher_weight` L1 to the teacher's output (a
    bank made with `--teacher`: the teacher restored the same LR, so its edges are a target the
    refiner can follow, where the ground truth of damaged input is only known on average).
    `edge_gate` > 0: the teacher is followed only on its edges (`edge_map` with that step) and the
    network's own output elsewhere, so the texture the UNet draws stays. From an untrained refiner
    that loss keeps it at zero (any change costs L1 over the whole frame and gains only on the
    edges, before its features can tell edges apart): `ungated`, the share of the budget spent
    following the teacher everywhere first. `blend`: one L1 to the edge-weighted mix of the teacher
    and the network instead, which moves every pixel by its edge share and needs no such start.
    `gate_from`: whose edges gate, "teacher" or "network" (the restored frame the refiner sees).
    `adv_target`: what the pixel discriminator (`adv_weight` > 0) takes as real: the ground truth
    ("hr"), or the teacher's output ("teacher"), judged on the patches where the teacher has edges,
    a push towards its edges that an L1 to an uncertain target does not give. `adv_luma`: the
    discriminator sees luma alone, so its push cannot tint edges."""
    if (teacher_weight > 0 or adv_target == "teacher") and "t" not in bank:
        raise SystemExit("refine_fit: --teacher-weight (or --adv-target teacher) needs a bank made with --teacher")
    hr, y, up = (_planes(bank[k], device) for k in ("hr", "y", "up"))
    tt = _planes(bank["t"], device) if teacher_weight > 0 or adv_target == "teacher" else None
    window = min(window, hr.shape[-2], hr.shape[-1])
    n_val = max(1, len(hr) // 10)
    train_idx = torch.arange(n_val, len(hr))
    torch.manual_seed(seed)
    net = (Refiner.from_state(init) if init is not None else Refiner(channels, blocks, down)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    disc = PixelDiscriminator().to(device) if adv_weight > 0 else None
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.99)) if disc else None
    # on luma alone: all three channels the same, so its push cannot tint edges
    judge = (lambda z: disc(luma(z).expand(-1, 3, -1, -1))) if adv_luma else disc
    g = torch.Generator().manual_seed(seed)
    t0, step, budget = time.time(), 0, minutes * 60
    while (step < steps) if steps is not None else (time.time() - t0 < budget):
        frac = step / steps if steps is not None else (time.time() - t0) / budget
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        idx = train_idx[torch.randint(len(train_idx), (batch,), generator=g)]
        oy = int(torch.randint(0, hr.shape[-2] - window + 1, (1,), generator=g))
        ox = int(torch.randint(0, hr.shape[-1] - window + 1, (1,), generator=g))
        views = [_float(t[idx, :, oy:oy + window, ox:ox + window]) for t in (y, up, hr, tt) if t is not None]
        if torch.rand(1, generator=g) < 0.5:
            views = [v.flip(-1) for v in views]
        if torch.rand(1, generator=g) < 0.5:
            views = [v.transpose(-1, -2) for v in views]
        out = net(views[0], views[1])
        loss = hr_weight * F.l1_loss(out, views[2])
        t_edges = edge_map(views[3], edge_gate or 0.08) if tt is not None else None
        if tt is not None and teacher_weight > 0:
            if edge_gate > 0 and frac >= ungated:
                # the teacher's edges, which the refiner does not see (it learns to stay near zero),
                # or the network's, which it does
                e = t_edges if gate_from == "teacher" else edge_map(views[0], edge_gate)
                if blend:  # one target a pixel: L1 pulls every pixel its share of the way
                    loss = loss + teacher_weight * F.l1_loss(out, e * views[3] + (1 - e) * views[0])
                else:  # each term its L1: a pixel goes to the teacher where e > 0.5, else stays
                    keep = ((1 - e) * (out - views[0]).abs()).mean()
                    loss = loss + teacher_weight * ((e * (out - views[3]).abs()).mean() + keep)
            else:
                loss = loss + teacher_weight * F.l1_loss(out, views[3])
        if pattern_weight > 0:
            loss = loss + pattern_weight * pattern_loss(out, views[2])
        if disc is not None:
            # non-saturating GAN; the discriminator's step on this batch before the refiner's
            if adv_target == "teacher":
                real = views[3]
                w = F.avg_pool2d(t_edges, 4)  # a weight per logit (4 px)

                def avg(z: torch.Tensor) -> torch.Tensor:
                    return (z * w).sum() / w.sum().clamp_min(1e-6)
            else:
                real, avg = views[2], torch.mean
            d_loss = avg(F.softplus(-judge(real))) + avg(F.softplus(judge(out.detach())))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            loss = loss + adv_weight * avg(F.softplus(-judge(out)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0:
            log(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    net.eval()
    base, gain = held_out_gain(net, *(_float(t[:n_val]) for t in (y, up, hr)))
    net.cpu()
    return net, {"steps": step, "minutes": round((time.time() - t0) / 60, 1), "device": device,
                 "batch": batch, "window": window,
                 "lr": lr, "hr_weight": hr_weight, "teacher_weight": teacher_weight, "edge_gate": edge_gate,
                 "ungated": ungated, "blend": blend, "gate_from": gate_from,
                 "adv_weight": adv_weight, "adv_target": adv_target, "adv_luma": adv_luma, "down": net.down,
                 "pattern_weight": pattern_weight, "init": init is not None,
                 "held_back": n_val, "psnr_y": round(base, 3), "gain_db": round(gain, 3)}


def with_refiner(model: GenDRPix, refiner: Refiner | None) -> GenDRPix:
    """A copy of `model` (on the CPU, fp32) with `refiner` after its UNet, or with none; the UNet,
    contexts, source deltas and metadata as they were."""
    cfg = model.config.replace(refiner=refiner.shape if refiner else ())
    new = build_model(cfg, device="cpu")
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items() if not k.startswith("refine.")}
    if refiner is not None:
        state.update({f"refine.{k}": v.detach().float().cpu() for k, v in refiner.state_dict().items()})
    new.load_state_dict(state, strict=True)
    new.scale_range, new.default_detail = model.scale_range, model.default_detail
    new.source_deltas = model.source_deltas
    new.metadata = json.loads(json.dumps(model.metadata))
    return new.eval()


def attach(model: GenDRPix, refiner: Refiner, strengths: dict[str, float], provenance: dict,
           details: dict[str, float] | None = None, keep: tuple[str, ...] = ()) -> GenDRPix:
    """`model` with `refiner` after its UNet; `strengths` per source (missing: 0, not run);
    `details`: new default details per source (the refiner learnt one network's outputs at one
    detail; missing: as they were). `keep`: sources other than "any" whose network keeps the
    refiner it has (stored in that source's delta) and its strength, unless `strengths` names it."""
    for src in keep:
        if src == "any" or src not in model.source_deltas:
            raise SystemExit(f"refine_fit: --keep {src}: the model has no network of its own for {src!r}")
        if model.refine is None:
            raise SystemExit(f"refine_fit: --keep {src}: the model has no refiner to keep")
    if keep and refiner.shape != model.config.refiner:
        raise SystemExit(f"refine_fit: --keep needs a refiner of the model's shape {model.config.refiner}, got "
                         f"{refiner.shape}")
    kept = {}
    for src in keep:  # each kept source's refiner as it runs now: the shared one plus its delta
        twin = model.for_source(src)[0]
        kept[src] = ({k: v.detach().float().cpu() for k, v in twin.refine.state_dict().items()},
                     twin.refine_strength)
    new = with_refiner(model, refiner)
    if kept:
        new.source_deltas = {src: dict(d) for src, d in model.source_deltas.items()}
        state = {k: v.detach().float() for k, v in refiner.state_dict().items()}
        for src, (own, _) in kept.items():
            new.source_deltas[src].update({f"refine.{k}": own[k] - state[k] for k in state})
    new.refine_strength = float(strengths.get("any", 0.0))
    details = details or {}
    if "any" in details:
        new.default_detail = float(details["any"])
    meta = new.metadata
    old_prov = meta.get("provenance", {}).get("refiner")
    for src in model.sources:
        if src != "any":
            own = meta.setdefault("sources", {}).setdefault(src, {})
            if src in kept and src not in strengths:
                own["refine_strength"] = kept[src][1]
            else:
                own["refine_strength"] = float(strengths.get(src, 0.0))
            if src in kept and old_prov is not None:
                own["refiner"] = own.get("refiner", old_prov)
            if src in details:
                own["default_detail"] = float(details[src])
    meta.setdefault("provenance", {})["refiner"] = provenance
    return new


def parse_per_source(items: list[str], flag: str, hi: float) -> dict[str, float]:
    """`SOURCE=VALUE` items, each value in [0, hi]."""
    out = {}
    for item in items:
        src, _, value = item.partition("=")
        try:
            v = float(value)
        except ValueError:
            v = None
        if src not in SOURCES or v is None:
            raise SystemExit(f"{flag} takes SOURCE=VALUE with SOURCE one of {', '.join(SOURCES)}, got {item!r}")
        if not 0 <= v <= hi:
            raise SystemExit(f"{flag}: {item!r} is outside 0-{hi:g}")
        out[src] = v
    return out


def read_refiner(path: str) -> tuple[dict, dict]:
    """A refiner file's tensors (fp32) and its training report."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}, json.loads((f.metadata() or {}).get("report", "{}"))


def main(argv=None) -> int:
    ap = OneLineParser(prog="python -m gendrpix_video.training.refine_fit", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("bank")
    a.add_argument("--data", required=True)
    a.add_argument("--source", choices=("clean", "any"), default="clean")
    a.add_argument("--model", default=None, help="model name or weights file (default: the shipped default)")
    a.add_argument("--n", type=int, default=2000)
    a.add_argument("--crop", type=int, default=192)
    a.add_argument("--detail", type=float, default=None, help="the network's detail (default: its own)")
    a.add_argument("--teacher", default=None, help="also store this teacher's output for each crop (a name or .safetensors)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--device", default="cpu", help="where the network and the teacher run (cpu, cuda)")
    a.add_argument("--out", required=True)
    a = sub.add_parser("train")
    a.add_argument("--bank", required=True, help="a bank (.npz), or several joined by commas")
    a.add_argument("--channels", type=int, default=32)
    a.add_argument("--blocks", type=int, default=4)
    a.add_argument("--down", type=int, choices=(2, 4), default=2,
                   help="the refiner's unshuffle factor (4: twice the view for about the same work)")
    a.add_argument("--minutes", type=float, default=10.0)
    a.add_argument("--steps", type=int, default=None, help="a fixed number of steps instead of --minutes")
    a.add_argument("--batch", type=int, default=16)
    a.add_argument("--window", type=int, default=96, help="training window in output pixels")
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--hr-weight", type=float, default=1.0, help="weight of L1 to the ground truth")
    a.add_argument("--teacher-weight", type=float, default=0.0,
                   help="weight of L1 to the teacher's output (a bank made with --teacher)")
    a.add_argument("--edge-gate", type=float, default=0.0,
                   help="follow the teacher only on its edges (luma steps of about this size a pixel) and "
                        "the network's output elsewhere (0: everywhere)")
    a.add_argument("--ungated", type=float, default=0.0,
                   help="share of the budget that follows the teacher everywhere before the edge gate "
                        "(an untrained refiner needs it: the gated loss alone keeps it at zero)")
    a.add_argument("--gate-from", choices=("teacher", "network"), default="teacher",
                   help="with --edge-gate: the edges of the teacher's output or of the network's (which "
                        "the refiner sees, so it can tell where to follow the teacher)")
    a.add_argument("--blend", action="store_true",
                   help="with --edge-gate: L1 to the edge-weighted mix of the teacher and the network")
    a.add_argument("--adv-weight", type=float, default=0.0, help="weight of the pixel discriminator's term (0: none)")
    a.add_argument("--adv-target", choices=("hr", "teacher"), default="hr",
                   help="what the discriminator takes as real: the ground truth, or the teacher's output "
                        "on the patches where it has edges (a bank made with --teacher)")
    a.add_argument("--adv-luma", action="store_true", help="the discriminator sees luma alone (no tinted edges)")
    a.add_argument("--pattern-weight", type=float, default=0.0, help="weight of the pattern loss (0: none)")
    a.add_argument("--init", default=None, help="a trained refiner (.safetensors) to start from")
    a.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    a.add_argument("--out", required=True)
    a = sub.add_parser("attach")
    a.add_argument("--model", default=None, help="model name or weights file (default: the shipped default)")
    a.add_argument("--refiner", required=True)
    a.add_argument("--strength", action="append", default=[], metavar="SOURCE=VALUE",
                   help="the refiner's strength for a source's network (repeatable; missing: 0)")
    a.add_argument("--detail", action="append", default=[], metavar="SOURCE=VALUE",
                   help="a source's new default detail, the one its refiner was trained at (repeatable)")
    a.add_argument("--keep", action="append", default=[], metavar="SOURCE",
                   help="a source whose network keeps its refiner and strength (repeatable): the new "
                        "refiner then serves the network for any source and the sources not kept")
    a.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "bank":
        model = load_model(args.model, device=args.device, dtype=torch.float32)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        teacher = None
        if args.teacher:
            from .teacher import load_teacher

            teacher = load_teacher(args.teacher, device=args.device)
        np.savez(args.out, **make_bank(args.data, args.source, args.n, args.crop, args.seed, model, args.detail,
                                       teacher, args.device))
        log(f"wrote {args.out}")
    elif args.cmd == "train":
        from safetensors.torch import save_file

        bank = load_banks(args.bank.split(","))
        init = read_refiner(args.init)[0] if args.init else None
        net, report = train_refiner(bank, args.channels, args.blocks, args.minutes, args.batch, args.window, args.lr,
                                    steps=args.steps, adv_weight=args.adv_weight,
                                    pattern_weight=args.pattern_weight, init=init, device=args.device,
                                    hr_weight=args.hr_weight, teacher_weight=args.teacher_weight,
                                    edge_gate=args.edge_gate, down=args.down, ungated=args.ungated,
                                    blend=args.blend, gate_from=args.gate_from,
                                    adv_target=args.adv_target, adv_luma=args.adv_luma)
        report.update(bank=str(args.bank), crops=len(bank["hr"]), crop=int(bank["hr"].shape[1]),
                      source=str(bank["source"]), detail=float(bank["detail"]), channels=net.head.out_channels,
                      blocks=len(net.body), teacher=str(bank.get("teacher", "")))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, args.out,
                  metadata={"report": json.dumps(report)})
        print(json.dumps(report))
    else:
        state, report = read_refiner(args.refiner)
        net = Refiner.from_state(state)
        model = load_model(args.model, device="cpu", dtype=torch.float32)
        strengths = parse_per_source(args.strength, "--strength", 2.0)
        details = parse_per_source(args.detail, "--detail", 4.0)
        new = attach(model, net, strengths, {**report, "strength": strengths}, details, tuple(args.keep))
        src, at = report.get("source"), report.get("detail")
        if src in new.sources and at is not None and resolve_detail(new, None, src) != at:
            log(f"note: the refiner learnt source {src}'s outputs at detail {at:g}; that network now runs at "
                f"{resolve_detail(new, None, src):g} (--detail {src}={at:g} to match)")
        save_weights(new, args.out, dtype=torch.float16)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
