"""Multi-stage distillation of GenDR-Pix (design: method.md section 3).

    python -m gendrpix_video.training.train --stage 1 --config small --data data/photos \
        --teacher realesrgan-x4plus --out runs/s1 --minutes 8.5
    python -m gendrpix_video.training.train --stage 2 --init runs/s1/model.safetensors --out runs/s2 ...
    torchrun --standalone --nproc_per_node 8 -m gendrpix_video.training.train ...   # one process per GPU

Stage I (regression): c_pos learns L1(G, T) + a L1(G, HR) + 0.1 L_F; c_neg learns the fidelity
target L1(G, HR) + 0.1 L_F. Stage II (adversarial): G2 starts from G1; a discriminator on G1's
frozen features judges RandPad-ed real and fake; c_pos learns L1(G2, T) + 0.05 softplus(-D) + L_P +
0.1 L_F, c_neg the Stage I output. bf16 autocast. Each run is a chunk of at most `--minutes`; it
resumes from `OUT/ckpt.safetensors` (model, optimizers, step, GPU time; safetensors, no pickle).

The teacher is the expensive part of a step, so LR/teacher pairs are made once into a bank on the
GPU and reused; a slice of the bank is refreshed every few steps. Under torchrun each GPU keeps its
own bank and the gradients are averaged (distributed.py): the batch per step is N x --batch.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..configs import SHUFFLE
from ..model import NEG, POS, build_model, count_parameters
from ..padcfg import restore, run_padded
from ..policy import cuda_ready, pick_device
from ..weights import load_weights, save_weights
from .checkpoint import load_checkpoint, save_checkpoint
from . import distributed
from .dataset import PhotoBank
from .ema import EMA
from .degrade import (DegradeOptions, bicubic_down, degrade, degrade_first_order, degrade_video,
                      realistic_eval)
from .losses import Discriminator, G1Features, masked_fourier_loss, pattern_loss, perceptual_loss, rand_pad
from .metrics import psnr_y
from .plot import loss_curve_png


def build_parser():
    p = argparse.ArgumentParser(prog="gendrpix-video train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", type=int, choices=(1, 2), default=1)
    p.add_argument("--config", default="small")
    p.add_argument("--init", help="weights to start from (stage 2: the Stage I model, G1)")
    p.add_argument("--data", default="data/photos")
    p.add_argument("--teacher", default="realesrgan-x4plus", help="teacher name or .safetensors file")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=8.5, help="wall-clock budget of this chunk")
    p.add_argument("--max-steps", type=int, help="stop at this step count (resumed runs included)")
    p.add_argument("--total-steps", type=_steps, default=30000,
                   help="length of the cosine schedule; 'auto': the steps this chunk's --minutes allow, "
                        "estimated from the step time after 100 steps and again every 500 (one-shot runs)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--scale", type=_scale_range, default=(2.0, 4.0), metavar="MIN,MAX",
                   help="overall scales drawn uniformly per batch (one number: that scale only); "
                        "stored in the weights as the scale range the model serves")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--hr-weight", type=float, default=1.0, help="a: weight of L1 to the ground truth")
    p.add_argument("--stage2-hr-weight", type=float, default=0.0,
                   help="Stage II's L1 to the ground truth (0 = the paper's loss); keeps fidelity while "
                        "the adversarial term adds texture")
    p.add_argument("--stage2-teacher-weight", type=float, default=1.0,
                   help="Stage II's L1 to the teacher (1 = the paper's loss); lower it when the teacher "
                        "invents detail the ground truth does not have")
    p.add_argument("--adv-weight", type=float, default=0.05, help="Stage II's adversarial term")
    p.add_argument("--perceptual-weight", type=float, default=1.0,
                   help="Stage II's L1 between G1 features of the output and of the ground truth")
    p.add_argument("--stability-weight", type=float, default=0.0,
                   help="Stage II: L1 between outputs for an input and for it with fresh sensor noise "
                        "(steadier video; 0: off)")
    p.add_argument("--phase-weight", type=float, default=0.0,
                   help="L1 between outputs for one input on two x8 grid phases (4 px apart), both "
                        "branches: moving content crosses the fixed grid, so phase-dependent output "
                        "is temporal error (0: off)")
    p.add_argument("--temporal-weight", type=float, default=0.0,
                   help="L1 between the outputs for two frames of a pan: the same crop moved by 1-7 HR "
                        "pixels (a sub-pixel step of the LR input), the same degradation with fresh "
                        "per-frame noise, on one frame-fixed grid phase, compared where they overlap "
                        "(0: off)")
    p.add_argument("--temporal-grid", choices=("follow", "fixed"), default="follow",
                   help="--temporal-weight's pairs: the second frame's grid follows its content, as the "
                        "video pipeline's default restores a pan (follow), or stays on the frame (fixed)")
    p.add_argument("--stage2-neg-target", choices=("g1", "hr"), default="g1",
                   help="Stage II's c_neg target: the Stage I output (g1, the paper's) or the ground "
                        "truth (hr: the fidelity branch keeps learning, e.g. new degradations)")
    p.add_argument("--fourier-weight", type=float, default=0.1)
    p.add_argument("--pattern-weight", type=float, default=0.0,
                   help="Stage II: the pattern loss (losses.pattern_loss: spectrum energy above 4x the HR's "
                        "local level, the mesh of fixed-period texture) on the c_pos outputs against HR")
    p.add_argument("--neg-fraction", type=float, default=0.25, help="share of each batch that trains c_neg")
    p.add_argument("--clean-fraction", type=float, default=0.0,
                   help="share of bank batches made by plain bicubic downscaling (clean input stays sharp)")
    p.add_argument("--mild-fraction", type=float, default=0.0,
                   help="share of bank batches made by one round of degradation instead of two")
    p.add_argument("--video-fraction", type=float, default=0.0,
                   help="share of bank batches made by the video-encoder degradation (deinterlace, "
                        "block-DCT coding at a low quality, deblocking)")
    p.add_argument("--balance-clean", action="store_true",
                   help="scale each clean batch's loss by the running ratio of the damaged batches' loss to "
                        "the clean ones' (at most x10): Adam's step size follows the larger damaged-batch "
                        "gradients, so in a mixed run clean batches otherwise move the weights a few times less "
                        "than in a clean-only run")
    p.add_argument("--clean-teacher",
                   help="teacher for the clean batches (default: --teacher); a fidelity model such as "
                        "span-x4 gives clean input a sharp, faithful target")
    p.add_argument("--degrade", action="append", default=[], metavar="FIELD=VALUE",
                   help="set one range or probability of the damaged batches' degradations "
                        "(training.degrade.DegradeOptions), e.g. noise_range=3,30; repeatable")
    p.add_argument("--bank", type=int, default=256, help="batches of (HR, LR, teacher) kept on the GPU")
    p.add_argument("--refresh", type=int, default=4, help="bank batches remade every 10 steps")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    p.add_argument("--resume-state", help="state.json of an earlier chunk, when only its weights (--init) "
                   "survived (a fresh machine): steps, GPU time and history continue; the optimizer restarts")
    p.add_argument("--ship", help="also write fp16 weights with provenance here at the end")
    p.add_argument("--snapshots", action="store_true",
                   help="also keep the evaluated weights at each eval, OUT/snapshots/step_NNNNNN.safetensors "
                        "(fp16): a Stage II run trades fidelity for detail as it goes, so pick a point later")
    p.add_argument("--ema", type=float, default=0.999,
                   help="decay of the weight average that is evaluated and saved (0: none)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--channels-last", action="store_true", help="NHWC activations in the UNet")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="profile N steps after warm-up, print the top kernels and ms/step, then stop")
    return p


def _steps(text: str):
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive step count or 'auto', got {text!r}")
    return n


class PairBank:
    """(HR, LR, teacher output) batches kept on the device as uint8; refreshed a slice at a time."""

    def __init__(self, photos: PhotoBank, teacher, args, g: torch.Generator, clean_teacher=None):
        self.photos, self.teacher, self.args, self.g = photos, teacher, args, g
        self.clean_teacher = clean_teacher or teacher
        self.opts = degrade_options(args)
        self.items: list[tuple] = []
        self.made = 0
        self.kinds = {"clean": 0, "mild": 0, "video": 0, "full": 0}

    def pick_kind(self) -> str:
        """A batch's degradation, drawn with the run's shares."""
        a, r = self.args, random.random()
        for kind, share in (("clean", a.clean_fraction), ("mild", a.mild_fraction), ("video", a.video_fraction)):
            if r < share:
                return kind
            r -= share
        return "full"

    def degrade(self, hr: torch.Tensor, kind: str, scale: float | None = None) -> torch.Tensor:
        """LR of `hr` by the degradation `kind` (clean: plain bicubic down)."""
        if kind == "clean":
            # The first trial over-smoothed clean input (bicubic-x4 set below bicubic): show it some.
            return bicubic_down(hr, scale if scale is not None else random.uniform(*self.opts.scale))
        fn = {"mild": degrade_first_order, "video": degrade_video, "full": degrade}[kind]
        return fn(hr, self.g, self.opts, scale=scale).lr

    def make(self):
        a = self.args
        hr = self.photos.sample(a.batch, a.crop, self.g)
        kind = self.pick_kind()
        teacher = self.clean_teacher if kind == "clean" else self.teacher
        lr = self.degrade(hr, kind)
        self.kinds[kind] += 1
        # LR sizes vary with the random scale: with cuDNN autotuning on, every new size re-tunes all
        # of the teacher's ~350 convolutions (measured: most of a 268 ms step was CPU time in
        # cudnn_convolution). The heuristic choice is close enough for a teacher.
        with torch.autocast(hr.device.type, dtype=torch.bfloat16, enabled=hr.is_cuda), \
                torch.backends.cudnn.flags(enabled=True, benchmark=False):
            t = teacher.restore_to(lr, tuple(hr.shape[-2:]))
        self.made += 1
        q = lambda x: (x.float().clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
        return q(hr), q(lr), q(t), kind == "clean"

    def fill(self):
        while len(self.items) < self.args.bank:
            self.items.append(self.make())

    def refresh(self, n):
        for _ in range(n):
            self.items[random.randrange(len(self.items))] = self.make()

    def draw(self):
        """(HR, LR, teacher) of one batch as floats, and whether the batch is clean."""
        hr, lr, t, clean = self.items[random.randrange(len(self.items))]
        return hr.float() / 255, lr.float() / 255, t.float() / 255, clean


def forward_random_phase(model, lr, size, ctx, phase=None):
    """Bicubic up, pad on a random x8 phase (or `phase`, (p, q)), run, crop: the network sees every
    grid phase."""
    x = F.interpolate(lr, size=size, mode="bicubic", align_corners=False)
    p, q = phase or (random.randrange(SHUFFLE), random.randrange(SHUFFLE))
    phase = (p, SHUFFLE - p, q, SHUFFLE - q)
    return run_padded(model, x, phase, ctx, tuple(lr.shape[-2:]))


class KindBalance:
    """Running means of the clean and the damaged batches' losses (`--balance-clean`)."""

    def __init__(self, decay: float = 0.98, cap: float = 10.0):
        self.decay, self.cap, self.mean = decay, cap, {}

    def __call__(self, loss: torch.Tensor, clean: bool) -> tuple[torch.Tensor, float]:
        """`loss`, scaled if clean by the damaged-to-clean ratio (1 until both kinds were seen)."""
        k = "clean" if clean else "damaged"
        v = float(loss.detach())
        self.mean[k] = v if k not in self.mean else self.decay * self.mean[k] + (1 - self.decay) * v
        if not clean or "damaged" not in self.mean:
            return loss, 1.0
        w = min(self.cap, max(1.0, self.mean["damaged"] / max(self.mean["clean"], 1e-8)))
        return loss * w, w


def stability_loss(net, lr, y, size, ctx, phase, share=0.25, sigma=(1 / 255, 8 / 255)):
    """L1 between the output for every 1/`share`-th sample (both contexts) and for the same input
    with fresh Gaussian noise (sigma uniform in `sigma`) on the same grid phase: a video restorer
    should not turn sensor noise, which changes every frame, into texture that changes with it
    (flicker). Both sides get gradients, so neither output is the fixed point (ours, not in method.md)."""
    idx = torch.arange(0, len(lr), max(1, round(1 / share)), device=lr.device)
    s = torch.empty(len(idx), 1, 1, 1, device=lr.device).uniform_(*sigma)
    x = lr[idx]
    with torch.autocast(lr.device.type, dtype=torch.bfloat16, enabled=lr.device.type == "cuda"):
        y2 = forward_random_phase(net, (x + s * torch.randn_like(x)).clamp(0, 1), size, ctx[idx], phase)
    return F.l1_loss(y2.float(), y[idx])


def phase_loss(net, lr, y, size, ctx, phase, share=0.25):
    """L1 between the output for every 1/`share`-th sample (both contexts) and for the same input on
    the grid phase 4 px away in x and y: the x8 grid is fixed to the frame while content moves, so
    output that depends on the phase changes from frame to frame (ours, not in method.md)."""
    idx = torch.arange(0, len(lr), max(1, round(1 / share)), device=lr.device)
    other = ((phase[0] + SHUFFLE // 2) % SHUFFLE, (phase[1] + SHUFFLE // 2) % SHUFFLE)
    with torch.autocast(lr.device.type, dtype=torch.bfloat16, enabled=lr.device.type == "cuda"):
        y2 = forward_random_phase(net, lr[idx], size, ctx[idx], other)
    return F.l1_loss(y2.float(), y[idx])


def pan_pair_loss(net, bank: PairBank, hr, ctx, phase, share=0.25, sigma=(0.0, 3 / 255), margin=8,
                  follow=False):
    """L1 between the outputs for two frames of a pan, where they overlap: every 1/`share`-th crop of
    the batch (both contexts) and the same crop moved by (dy, dx) HR pixels, 1-7 each way (a
    sub-pixel step of the LR input at x2-x4), degraded alike (one draw of the degradation's settings
    and noise, then fresh Gaussian noise per frame, sigma uniform in `sigma`). The ground truth of
    the two frames is equal on the overlap, so any difference is output that changes as content
    moves: the flow-aligned error of moving footage (ours, not in method.md). Both frames on the
    same frame-fixed x8 grid phase, or with `follow` the second's grid moved with its content (as
    the video pipeline's `--grid follow` restores a pan): then only what the grid cannot explain
    counts (the LR sampling, noise and coding that change from frame to frame). `phase_loss`
    moves the grid alone."""
    idx = torch.arange(0, len(hr), max(1, round(1 / share)), device=hr.device)
    dy, dx = random.randint(1, SHUFFLE - 1), random.randint(1, SHUFFLE - 1)
    h, w = hr.shape[-2] - SHUFFLE, hr.shape[-1] - SHUFFLE
    frames = (hr[idx, :, :h, :w], hr[idx, :, dy:dy + h, dx:dx + w])
    kind = bank.pick_kind()
    scale = random.uniform(*bank.opts.scale)
    state = bank.g.get_state()
    lrs = []
    for f in frames:
        bank.g.set_state(state)
        lr = bank.degrade(f, kind, scale)
        s = torch.empty(len(idx), 1, 1, 1, device=hr.device).uniform_(*sigma)
        lrs.append(((lr + s * torch.randn_like(lr)).clamp(0, 1) * 255).round() / 255)
    # The second frame's content sits (dy, dx) pixels up-left of the first's: a grid that follows
    # it pads (dy, dx) more (motion.py's convention: content moved by d, padding less by d).
    moved = ((phase[0] + dx) % SHUFFLE, (phase[1] + dy) % SHUFFLE) if follow else phase
    with torch.autocast(hr.device.type, dtype=torch.bfloat16, enabled=hr.device.type == "cuda"):
        a = forward_random_phase(net, lrs[0], (h, w), ctx[idx], phase).float()
        b = forward_random_phase(net, lrs[1], (h, w), ctx[idx], moved).float()
    m = margin
    return F.l1_loss(a[..., dy + m:h - m, dx + m:w - m], b[..., m:h - dy - m, m:w - dx - m])


class ValSet:
    """Held-out photos, centre crops, the fixed realistic degradation: Y-PSNR during training."""

    def __init__(self, root, device, crop=512, limit=8):
        bank = PhotoBank.load(root, "val")
        hrs = []
        for im in bank.images[:limit]:
            _, h, w = im.shape
            c = min(crop, h, w) // 8 * 8
            y, x = (h - c) // 2, (w - c) // 2
            hrs.append(im[:, y:y + c, x:x + c].float() / 255)
        self.hr = [h[None].to(device) for h in hrs]
        self.lr = [realistic_eval(h, seed=i) for i, h in enumerate(self.hr)]

    def psnr(self, fn) -> float:
        vals = [float(psnr_y(fn(lr, tuple(hr.shape[-2:])).float(), hr)) for lr, hr in zip(self.lr, self.hr)]
        return sum(vals) / len(vals)


def _scale_range(text: str) -> tuple[float, float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a scale or MIN,MAX") from None
    lo, hi = (vals[0], vals[0]) if len(vals) == 1 else tuple(vals)[:2] if len(vals) == 2 else (0, 0)
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"'{text}': scales must be 1 <= MIN <= MAX")
    return lo, hi


def degrade_options(args) -> DegradeOptions:
    opts = DegradeOptions(scale=args.scale)
    for text in args.degrade:
        opts = opts.override(text)
    return opts


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        degrade_options(args)
    except ValueError as e:
        parser.error(str(e))
    fr = (args.clean_fraction, args.mild_fraction, args.video_fraction)
    if min(fr) < 0 or sum(fr) > 1:
        parser.error("--clean-fraction, --mild-fraction and --video-fraction must be >= 0 and sum "
                     "to at most 1")
    group = distributed.setup(str(pick_device(args.device)))
    try:
        return _train(args, group)
    finally:
        distributed.close(group)


def _train(args, group: distributed.Group) -> int:
    dev = group.device
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda *a, **k: print(*a, file=sys.stderr, flush=True, **k)) if group.main else (lambda *a, **k: None)
    # Each rank draws its own crops, degradations and grid phases; the weights start equal anyway.
    random.seed(args.seed + 1000 * group.rank)
    torch.manual_seed(args.seed)
    t_start = time.time()
    deadline = t_start + args.minutes * 60
    if dev.type == "cuda":
        cuda_ready()

    # -- models ------------------------------------------------------------------------------
    ckpt_path = out / "ckpt.safetensors"
    if args.init:
        model = load_weights(args.init, device=dev, dtype=torch.float32)
        # Another source's delta was made for these weights, not for what training makes of them;
        # so was a refiner, trained on this UNet's outputs.
        model.source_deltas = {}
        if model.refine is not None:
            from .refine_fit import with_refiner

            model = with_refiner(model, None).to(dev)
    else:
        model = build_model(args.config, device=dev)
    model.train().requires_grad_(True)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    disc = d_opt = None
    if args.stage == 2:
        if not args.init:
            print("train: error: stage 2 needs --init (the Stage I model)", file=sys.stderr)
            return 2
        g1 = load_weights(args.init, device=dev, dtype=torch.float32)
        g1.requires_grad_(False)
        disc = Discriminator(G1Features(g1)).to(dev)
        d_params = [p for n, p in disc.named_parameters() if not n.startswith("trunk.")]
        d_opt = torch.optim.AdamW(d_params, lr=args.lr, betas=(0.5, 0.99), weight_decay=0.0)
    fused = dict(fused=True) if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0, **fused)
    # Only rank 0 saves, so only rank 0 keeps the weight average.
    ema = EMA(model, args.ema) if args.ema > 0 and group.main else None
    state = {"step": 0, "gpu_seconds": 0.0, "history": [], "evals": []}
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, model, opt, disc, d_opt, ema)
        log(f"resumed at step {state['step']} ({state['gpu_seconds'] / 60:.1f} {_time_unit(dev)})")
    elif args.resume_state:
        state = json.loads(Path(args.resume_state).read_text())
        log(f"continuing from weights at step {state['step']}; optimizer restarts")
    distributed.same_weights(model, group)
    if disc is not None:
        distributed.same_weights(disc, group)
    log(f"stage {args.stage}: {model.config.name}, {count_parameters(model) / 1e6:.2f}M parameters, "
        f"{group.world} process(es) x batch {args.batch}")
    net = torch.compile(model) if args.compile else model
    shipped = ema.model if ema else model

    # -- data ----------------------------------------------------------------------------------
    from .teacher import load_teacher
    tdtype = torch.float16 if dev.type == "cuda" else torch.float32
    teacher = load_teacher(args.teacher, device=dev, dtype=tdtype)
    clean_teacher = load_teacher(args.clean_teacher, device=dev, dtype=tdtype) if args.clean_teacher else None
    g = torch.Generator(device=dev).manual_seed(args.seed * 7919 + state["step"] + 104729 * group.rank)
    photos = PhotoBank.load(args.data, "train", device=dev)
    bank = PairBank(photos, teacher, args, g, clean_teacher)
    bank.fill()
    val = ValSet(args.data, dev) if group.main else None
    if group.main and not state["evals"]:
        bic = val.psnr(lambda lr, s: F.interpolate(lr, size=s, mode="bicubic", align_corners=False).clamp(0, 1))
        tea = val.psnr(lambda lr, s: teacher.restore_to(lr.to(teacher_dtype(teacher)), s).float())
        state["baselines"] = {"bicubic": bic, "teacher": tea}
    distributed.barrier(group)
    log(f"bank ready in {time.time() - t_start:.0f}s; val baselines {state.get('baselines')}")

    def schedule(step):
        warm = 200
        if step < warm:
            return (step + 1) / warm
        total = state.get("total_steps", "auto") if args.total_steps == "auto" else args.total_steps
        if total == "auto":  # not estimated yet: the first 100 steps are warm-up anyway
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))

    n_neg = int(round(args.batch * args.neg_fraction))
    ctx_any = torch.tensor([POS] * (args.batch - n_neg) + [NEG] * n_neg, device=dev)
    # Configs with clean-source contexts learn them on the clean batches, the others on the rest.
    ctx_clean = ctx_any + model.context_offset("clean") if model.config.source_contexts else ctx_any
    npos = args.batch - n_neg
    balance = KindBalance() if args.balance_clean else None
    t_loop = time.time()
    # GPU time counts every GPU: N processes for t seconds are N*t GPU-seconds.
    gpu_before = state["gpu_seconds"] + (t_loop - t_start) * group.world
    gpu_now = lambda: gpu_before + (time.time() - t_loop) * group.world  # noqa: E731
    last = t_loop
    def train_step(step):
        for grp in opt.param_groups:
            grp["lr"] = args.lr * schedule(step)
        hr, lr, t, clean = bank.draw()
        ctx = ctx_clean if clean else ctx_any
        size = tuple(hr.shape[-2:])
        phase = (random.randrange(SHUFFLE), random.randrange(SHUFFLE))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            y = forward_random_phase(net, lr, size, ctx, phase).float()
        yp, yn = y[:npos], y[npos:]
        l_t = F.l1_loss(yp, t[:npos])
        l_hr = F.l1_loss(yp, hr[:npos])
        l_f = masked_fourier_loss(yp, t[:npos])
        logs = {}
        if args.stage == 1:
            loss_pos = l_t + args.hr_weight * l_hr + args.fourier_weight * l_f
            target_neg = hr[npos:]
        else:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                adv = F.softplus(-disc(rand_pad(yp))).mean()
                l_p = perceptual_loss(disc.trunk, yp, hr[:npos])
                target_neg = hr[npos:] if args.stage2_neg_target == "hr" else None
                if n_neg and target_neg is None:  # (a batch too small for a c_neg share has none)
                    with torch.no_grad():
                        target_neg = forward_random_phase(disc.trunk.g1, lr[npos:], size, None).float().clamp(0, 1)
            loss_pos = (args.stage2_teacher_weight * l_t + args.stage2_hr_weight * l_hr + args.adv_weight * adv
                        + args.perceptual_weight * l_p + args.fourier_weight * l_f)
            logs.update(adv=adv, perc=l_p)
            if args.pattern_weight:
                l_pat = pattern_loss(yp, hr[:npos])
                loss_pos = loss_pos + args.pattern_weight * l_pat
                logs["pattern"] = l_pat
        loss_neg = F.l1_loss(yn, target_neg) + args.fourier_weight * masked_fourier_loss(yn, target_neg) if n_neg else 0
        loss = loss_pos * (npos / args.batch) + loss_neg * (n_neg / args.batch)
        if args.stage == 2 and args.stability_weight:  # both terms span both branches
            l_s = stability_loss(net, lr, y, size, ctx, phase)
            loss = loss + args.stability_weight * l_s
            logs["stability"] = l_s
        if args.phase_weight:
            l_ph = phase_loss(net, lr, y, size, ctx, phase)
            loss = loss + args.phase_weight * l_ph
            logs["phase"] = l_ph
        if args.temporal_weight:
            l_tp = pan_pair_loss(net, bank, hr, ctx, phase, follow=args.temporal_grid == "follow")
            loss = loss + args.temporal_weight * l_tp
            logs["temporal"] = l_tp
        if balance is not None:
            loss, logs["clean_scale"] = balance(loss, clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(model.parameters(), group)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            ema.update(model, step)
        if disc is not None:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                d_loss = (F.softplus(disc(rand_pad(yp.detach()))) + F.softplus(-disc(rand_pad(hr[:npos])))).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            distributed.average_gradients(d_params, group)
            d_opt.step()
            logs["d"] = d_loss
        if step % 10 == 0:
            bank.refresh(args.refresh)
        return dict(loss=loss, l1_teacher=l_t, l1_hr=l_hr, fourier=l_f, **logs)

    if args.profile:
        return profile_steps(train_step, state["step"], args.profile, dev)

    first, mark = state["step"], None
    auto = args.total_steps == "auto" and "total_steps" not in state
    while args.max_steps is None or state["step"] < args.max_steps:
        step = state["step"]
        # Every rank must stop at the same step (the next all-reduce would wait forever): decide
        # together, every 10 steps, since the check waits for the GPU.
        if step % 10 == 0 and distributed.any_rank(time.time() >= deadline - 20, group):
            break
        if step == first + 20:
            mark = (step, time.time())
        # 'auto': fit the cosine to the time left, after the first 100 steps and again every 500
        # (steps speed up once cuDNN has tuned: one early estimate left 20% of a run at lr 0).
        if auto and (step == first + 100 or step > first + 100 and step % 500 == 0):
            now = time.time()
            per_step = (now - mark[1]) / (step - mark[0])
            mark = (step, now)
            est = step + max(1, int((deadline - 30 - now) / per_step))
            state["total_steps"] = int(distributed.from_main(est, group))
            log(f"schedule: {per_step * 1000:.0f} ms/step, cosine over {state['total_steps']} steps")
        logs = train_step(step)
        state["step"] = step + 1
        if step % 50 == 0 and group.main:
            now = time.time()
            rec = dict(step=step, lr=opt.param_groups[0]["lr"], gpu_min=gpu_now() / 60,
                       **{k: float(v.detach() if torch.is_tensor(v) else v) for k, v in logs.items()})
            state["history"].append(rec)
            if step % 500 == 0:
                log(f"step {step} loss {rec['loss']:.4f} ({(now - last) / 50 * 1000 if step else 0:.0f} ms/step)")
            last = now
        if step and step % args.eval_every == 0 and group.main:
            gpu_seconds = gpu_now()
            run_eval(shipped, val, state, gpu_seconds)
            if args.snapshots:
                save_snapshot(shipped, out, args, state, group, gpu_seconds)

    state["gpu_seconds"] = gpu_now()
    if group.main:  # rank 0 alone: last eval, checkpoint, weights (and shipped fp16), curve, state
        run_eval(shipped, val, state, state["gpu_seconds"])
        save_checkpoint(ckpt_path, model, opt, state, disc, d_opt, ema)
        shipped.metadata = {"provenance": provenance(args, state, group, state["gpu_seconds"])}
        save_weights(shipped, out / "model.safetensors", scale_range=args.scale)
        if args.ship:
            save_weights(shipped, args.ship, dtype=torch.float16, scale_range=args.scale,
                         license="Apache-2.0 (weights); trained on CC/GPL photos from Debian packages, "
                                 f"teacher {args.teacher}"
                                 + (f", clean-input teacher {args.clean_teacher}" if args.clean_teacher else "")
                                 + " (check each teacher's licence; see MODEL_CARD.md)")
        loss_curve_png(state, out / "loss.png")
        (out / "state.json").write_text(json.dumps(state, indent=1))
        print(f"bank batches made this chunk (rank 0): {bank.kinds}", file=sys.stderr)
        print(f"stopped at step {state['step']}, {state['gpu_seconds'] / 60:.1f} {_time_unit(dev)}; "
              f"val Y-PSNR {state['evals'][-1]['psnr_y']:.2f} (bicubic {state['baselines']['bicubic']:.2f}, "
              f"teacher {state['baselines']['teacher']:.2f})", file=sys.stderr)
    distributed.barrier(group)
    return 0


def profile_steps(train_step, start: int, n: int, dev) -> int:
    """Time n steps after 10 warm-up steps and print where the time goes (kernels by GPU time)."""
    from torch.profiler import ProfilerActivity, profile
    for i in range(10):
        train_step(start + i)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t0 = time.time()
    for i in range(n):
        train_step(start + 10 + i)
    sync()
    wall = (time.time() - t0) / n * 1000
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for i in range(n):
            train_step(start + 10 + n + i)
        sync()
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25))
    print(f"profile: {wall:.1f} ms/step over {n} steps (no profiler)")
    return 0


def provenance(args, state, group, gpu_seconds: float) -> dict:
    """What the saved weights came from: data, teachers, stage, steps, GPU time, last val score."""
    # Process-minutes on the device that trained: gpu_minutes on CUDA, cpu_minutes on the CPU.
    minutes = {f"{_device_kind(group.device)}_minutes": round(gpu_seconds / 60, 1)}
    prov = dict(trained=True, stage=args.stage, steps=state["step"], **minutes, init=args.init,
                teacher=args.teacher, clean_teacher=args.clean_teacher or args.teacher,
                clean_fraction=args.clean_fraction, mild_fraction=args.mild_fraction,
                video_fraction=args.video_fraction, data=str(args.data), batch=args.batch * group.world, crop=args.crop, lr=args.lr, scale=list(args.scale),
                val_psnr_y=state["evals"][-1]["psnr_y"], baselines=state.get("baselines"),
                device=group.device.type)
    if args.stage == 2:
        prov["losses"] = dict(teacher=args.stage2_teacher_weight, hr=args.stage2_hr_weight, adv=args.adv_weight,
                              perceptual=args.perceptual_weight, fourier=args.fourier_weight,
                              stability=args.stability_weight, neg_target=args.stage2_neg_target)
    if args.phase_weight:
        prov["phase_weight"] = args.phase_weight
    if args.temporal_weight:
        prov["temporal_weight"] = args.temporal_weight
        prov["temporal_grid"] = args.temporal_grid
    if args.pattern_weight:
        prov["pattern_weight"] = args.pattern_weight
    if args.balance_clean:
        prov["balance_clean"] = True
    if args.degrade:
        prov["degrade"] = list(args.degrade)
    if group.active:
        prov["gpus"] = group.world
    if args.ema > 0:
        prov["ema"] = args.ema
    return prov


def _device_kind(dev: torch.device) -> str:
    """'gpu' for CUDA, else the device type ('cpu'): what the training time was spent on."""
    return "gpu" if dev.type == "cuda" else dev.type


def _time_unit(dev: torch.device) -> str:
    kind = _device_kind(dev)
    return "GPU-minutes" if kind == "gpu" else f"{kind.upper()} process-minutes"


def save_snapshot(model, out: Path, args, state, group, gpu_seconds: float) -> None:
    """fp16 copy of the evaluated weights at this step."""
    model.metadata = {"provenance": provenance(args, state, group, gpu_seconds)}
    (out / "snapshots").mkdir(exist_ok=True)
    save_weights(model, out / "snapshots" / f"step_{state['step']:06d}.safetensors", dtype=torch.float16,
                 scale_range=args.scale)


def teacher_dtype(teacher):
    return next(teacher.parameters()).dtype


def run_eval(model, val: ValSet, state, gpu_seconds):
    model.eval()
    try:
        v = val.psnr(lambda lr, s: restore(model, lr, s, detail=1.0))
    finally:
        model.train()
    state["evals"].append({"step": state["step"], "gpu_min": round(gpu_seconds / 60, 2), "psnr_y": round(v, 3)})
    print(f"eval step {state['step']}: val Y-PSNR {v:.3f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
