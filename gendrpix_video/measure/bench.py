"""Model-only benchmark: time (median of CUDA-event timings after warm-up) and peak memory.

    gendrpix-video bench                      # every config, 1080p and 2160p, one pass and PadCFG
    python -m gendrpix_video.measure.bench --configs sd21 --sizes 3840x2160 --variants eager,cudnn,compile
    python -m gendrpix_video.measure.bench --gendr    # GenDR (with VAE) vs GenDR-Pix, same UNet, at 4K

Times cover `restore`: bicubic resize, padding, the network, cropping and guidance, for a frame
already on the GPU. Peak memory is everything allocated at the peak, weights included.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys

import torch

from .. import accel
from ..configs import CONFIGS
from ..model import build_model, count_parameters
from ..padcfg import restore
from ..policy import cuda_ready
from ..argparsing import OneLineParser, int_at_least
from .gendr import GenDR, gendr_restore

VARIANTS = {
    # name: (attention backend, compile mode, channels-last)
    "eager": ("auto", "none", True),
    "nchw": ("auto", "none", False),
    "cudnn": ("cudnn", "none", True),
    "flash": ("flash", "none", True),
    "compile": ("auto", "default", True),
    "compile-nchw": ("auto", "default", False),
    "autotune": ("auto", "max-autotune-no-cudagraphs", True),
    "graphs": ("auto", "reduce-overhead", True),
    "graphs-nchw": ("auto", "reduce-overhead", False),
    "fa4": ("fa4", "none", True),
    "fa4-compile": ("fa4", "default", True),
    "fa4-autotune": ("fa4", "max-autotune-no-cudagraphs", True),
}


def parse_size(s: str) -> tuple[int, int]:
    w, h = s.lower().split("x")
    return int(h), int(w)


def cuda_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def measure(fn, warmup, repeat) -> dict:
    """Warm up first (cuDNN autotuning, compilation), then reset the peak so it counts inference only."""
    gc.collect()
    torch.cuda.empty_cache()
    try:
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms = cuda_time(fn, repeat)
    except torch.OutOfMemoryError:
        return {"ms": None, "peak_gib": None, "error": "out of memory"}
    return {"ms": round(ms, 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


def make_model(name, variant, dtype):
    attn, comp, cl = VARIANTS[variant]
    m = build_model(name, device="cuda").to(dtype=dtype, memory_format=torch.channels_last if cl else torch.contiguous_format)
    m.requires_grad_(False)
    accel.compile_model(m, comp)
    return m, attn


def bench_gendrpix(args, rows):
    dtype = torch.bfloat16
    for name in args.configs:
        for variant in args.variants:
            model, attn = make_model(name, variant, dtype)
            params = count_parameters(model)
            for out in args.sizes:
                h, w = out
                lr = torch.rand(args.batch, 3, h // args.scale, w // args.scale, device="cuda", dtype=dtype)
                for mode in args.modes:
                    detail = 1.0 if mode == "single" else args.detail
                    rep = args.repeat if max(h, w) <= 3840 else max(3, args.repeat // 4)
                    with accel.attention(attn):
                        r = measure(lambda: restore(model, lr, (h, w), detail=detail), args.warmup, rep)
                    row = dict(model="gendr-pix", config=name, params_m=round(params / 1e6, 2), variant=variant,
                               output=f"{w}x{h}", mode=mode, batch=args.batch, **r)
                    if r["ms"] is not None:
                        row["ms_per_frame"] = round(r["ms"] / args.batch, 2)
                    rows.append(row)
                    print_row(row)
            del model
            torch._dynamo.reset()


def bench_gendr(args, rows):
    """GenDR vs GenDR-Pix with the same UNet config at each size (eager, bf16, channels-last)."""
    dtype = torch.bfloat16
    for name in args.gendr_configs:
        for out in args.sizes:
            h, w = out
            lr = torch.rand(1, 3, h // args.scale, w // args.scale, device="cuda", dtype=dtype)
            for kind in ("gendr", "gendr-pix"):
                if kind == "gendr":
                    model = GenDR(name).to("cuda", dtype).to(memory_format=torch.channels_last).eval()
                    fn_for = lambda d: (lambda: gendr_restore(model, lr, (h, w), detail=d))  # noqa: E731
                else:
                    model = build_model(name, device="cuda").to(dtype=dtype, memory_format=torch.channels_last)
                    fn_for = lambda d: (lambda: restore(model, lr, (h, w), detail=d))  # noqa: E731
                model.requires_grad_(False)
                for mode in args.modes:
                    d = 1.0 if mode == "single" else args.detail
                    r = measure(fn_for(d), args.warmup, max(3, args.repeat // 2))
                    row = dict(model=kind, config=name, params_m=round(count_parameters(model) / 1e6, 2),
                               variant="eager", output=f"{w}x{h}", mode=mode, batch=1, **r)
                    rows.append(row)
                    print_row(row)
                del model, fn_for
                gc.collect()
                torch.cuda.empty_cache()


def profile(args):
    """Where the time goes: the top CUDA kernels of one restore call (eager)."""
    from torch.profiler import ProfilerActivity, profile as prof
    h, w = args.sizes[0]
    for variant in args.variants:
        model, attn = make_model(args.configs[0], variant, torch.bfloat16)
        lr = torch.rand(args.batch, 3, h // args.scale, w // args.scale, device="cuda", dtype=torch.bfloat16)
        with accel.attention(attn):
            for _ in range(2):
                restore(model, lr, (h, w))
            torch.cuda.synchronize()
            with prof(activities=[ProfilerActivity.CUDA]) as p:
                restore(model, lr, (h, w))
                torch.cuda.synchronize()
        print(f"== {args.configs[0]} {variant} {w}x{h}", file=sys.stderr)
        print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70), file=sys.stderr)
        del model


def print_row(r):
    ms = "OOM" if r["ms"] is None else f"{r['ms']:9.2f}"
    mem = "-" if r["peak_gib"] is None else f"{r['peak_gib']:7.2f}"
    print(f"{r['model']:10} {r['config']:6} {r['params_m']:8.2f}M {r['variant']:14} {r['output']:>10} "
          f"{r['mode']:7} b{r['batch']:<2} {ms} ms {mem} GiB", file=sys.stderr, flush=True)


def print_table(rows, out=sys.stdout):
    print("| model | config | params | variant | output | mode | batch | ms | ms/frame | peak GiB |", file=out)
    print("|---|---|---|---|---|---|---|---|---|---|", file=out)
    for r in rows:
        print(f"| {r['model']} | {r['config']} | {r['params_m']}M | {r['variant']} | {r['output']} | {r['mode']} "
              f"| {r['batch']} | {r['ms'] if r['ms'] is not None else 'OOM'} | {r.get('ms_per_frame', '')} "
              f"| {r['peak_gib'] if r['peak_gib'] is not None else '-'} |", file=out)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="gendrpix-video bench", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=",".join(c for c in CONFIGS if c != "tiny"),
                   help=f"network configs to build untrained, comma-separated (any of {', '.join(CONFIGS)})")
    p.add_argument("--sizes", default="1920x1080,3840x2160", help="output sizes WxH")
    p.add_argument("--modes", default="single,padcfg",
                   help="single: one UNet pass a frame; padcfg: both branches as one batch (two passes)")
    p.add_argument("--variants", default="eager", help=f"any of {', '.join(VARIANTS)}")
    p.add_argument("--scale", type=int_at_least(1), default=2, help="input is output / scale")
    p.add_argument("--batch", type=int_at_least(1), default=1, help="frames per model call")
    p.add_argument("--detail", type=float, default=1.5, help="guidance scale for the padcfg mode")
    p.add_argument("--warmup", type=int_at_least(0), default=3, help="untimed calls first (autotuning, allocations)")
    p.add_argument("--repeat", type=int_at_least(1), default=10, help="timed calls; the median is reported")
    p.add_argument("--gendr", action="store_true", help="also GenDR (VAE) vs GenDR-Pix")
    p.add_argument("--gendr-only", action="store_true", help="only GenDR (VAE), no GenDR-Pix rows")
    p.add_argument("--gendr-configs", default="sd21", help="UNet configs for the GenDR rows, comma-separated")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--profile", action="store_true", help="print the top kernels of the first config and size")
    p.add_argument("--e2e", action="store_true", help="end-to-end video benchmark (decode, model, encode)")
    p.add_argument("--flops", action="store_true",
                   help="no timing, no GPU: floating-point operations of one UNet pass per config and "
                        "size (NAME@C1/C2/C3 is config NAME with those level widths)")
    p.add_argument("--scale-out", action="store_true",
                   help="fps against Ray workers beside the plain run (measure/bench_scale.py)")
    return p


def flops_of(cfg, size: tuple[int, int]) -> tuple[float, int]:
    """(FLOPs of one pass at output size (H, W), parameters), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode
    m = build_model(cfg, device="meta").eval()
    h, w = size
    x = torch.zeros(1, 3, h + (-h) % 8, w + (-w) % 8, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    return float(fc.get_total_flops()), sum(q.numel() for q in m.parameters())


def print_flops(names: list[str], sizes: list[tuple[int, int]]) -> int:
    """What a wider or deeper network would cost, before training it: FLOPs against the first
    config's (time on the GPU scales with them only roughly: BENCHMARKS.md has measured times)."""
    rows = []
    for spec in [n for n in names if n]:
        name, _, widths = spec.partition("@")
        try:
            cfg = CONFIGS[name]
            if widths:
                cfg = cfg.replace(name=spec, block_out_channels=tuple(int(v) for v in widths.split("/")))
        except (KeyError, ValueError):
            print(f"gendrpix-video: error: --configs: {spec!r} is not a config (NAME or NAME@C1/C2/...)",
                  file=sys.stderr)
            return 2
        for size in sizes:
            rows.append((spec, size, *flops_of(cfg, size)))
    for spec, (h, w), f, n in rows:
        ref = next(r[2] for r in rows if r[1] == (h, w))
        print(f"{spec:24} {w}x{h}  {n / 1e6:7.2f}M parameters  {f / 1e9:9.1f} GFLOP a pass  x{f / ref:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--e2e" in argv:
        from . import bench_e2e
        argv.remove("--e2e")
        return bench_e2e.main(argv)
    if "--scale-out" in argv:
        from . import bench_scale
        argv.remove("--scale-out")
        return bench_scale.main(argv)
    args = build_parser().parse_args(argv)
    if args.flops:
        return print_flops(args.configs.split(","), [parse_size(x) for x in args.sizes.split(",")])
    if not torch.cuda.is_available():
        print("gendrpix-video: error: the benchmark needs a CUDA GPU", file=sys.stderr)
        return 2
    args.configs = [c for c in args.configs.split(",") if c]
    args.gendr_configs = [c for c in args.gendr_configs.split(",") if c]
    args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.modes = args.modes.split(",")
    args.variants = args.variants.split(",")
    for v in args.variants:
        if v not in VARIANTS:
            print(f"gendrpix-video: error: unknown variant {v!r}", file=sys.stderr)
            return 2
    cuda_ready()
    rows: list[dict] = []
    if args.profile:
        profile(args)
        return 0
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}", file=sys.stderr)
    if not args.gendr_only:
        bench_gendrpix(args, rows)
    if args.gendr or args.gendr_only:
        bench_gendr(args, rows)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
