"""`gendrpix-video bench --scale-out`: frames a second against Ray workers, beside the plain run.

One synthetic clip is upscaled by:
  plain       `video.upscale_file`, one process (on a CPU limited to the CPUs of one worker, so
              that "1 worker" compares like with like);
  ray N       `cluster.upscale_files` on a local Ray instance of N workers (N CPUs with
              --device cpu, N GPUs with --device cuda).
fps is the file's frames over its own time (model loading before the first frame excluded in the
plain run; the Ray run includes what of its workers' start and model loads did not overlap the
driver's planning). Reported: Ray's overhead, 1 - fps(ray 1) / fps(plain) (target: under 5% on a GPU), and
the scaling efficiency fps(ray N) / (N x fps(ray 1)). On a CPU it also measures the machine's own
ceiling: the model alone (no video, no Ray) in N single-thread processes at once against one, so
that an efficiency below 1 can be told apart from what the cores (or a VM's quota) allow.

  gendrpix-video bench --scale-out --device cpu --workers 1,2 --detail 1    # a CPU machine
  gendrpix-video bench --scale-out --device cuda --workers 1 --input 960x540 --height 2160 --frames 480
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..argparsing import OneLineParser, int_at_least


def plain_fps(clip: Path, out: Path, settings, model: str | None, device: str, threads: int | None) -> dict:
    import torch

    from ..video.pipeline import upscale_file
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        r = upscale_file(clip, out, settings, model=model, device=device, overwrite=True,
                         max_minutes=float("inf"))
    finally:
        torch.set_num_threads(before)
    return {"mode": "plain", "workers": 1, "frames": r.frames, "seconds": round(r.seconds, 3),
            "fps": round(r.frames / r.seconds, 3)}


def ray_fps(clip: Path, out: Path, settings, model: str | None, device: str, workers: int) -> dict:
    from ..cluster.driver import upscale_files
    report = upscale_files([clip], out, settings, model=model, device=device, workers=workers,
                           overwrite=True, max_minutes=float("inf"))
    r = report.results[0]
    if r.error:
        raise SystemExit(f"bench: ray with {workers} workers: {r.error}")
    return {"mode": "ray", "workers": workers, "frames": r.frames, "seconds": round(r.seconds, 3),
            "fps": round(r.frames / r.seconds, 3), "job_seconds": round(report.seconds, 3),
            "nodes": {k: {"fps": round(v.fps, 3), "segments_seconds": round(v.seconds, 3)}
                      for k, v in report.nodes.items()}}


CEILING = """
import sys, time, torch
torch.set_num_threads(1)
from gendrpix_video.loading import load_model
from gendrpix_video.padcfg import restore
h, w, H, W, detail, calls = (float(v) for v in sys.argv[1:7])
model = load_model(sys.argv[7] or None, device="cpu")
x = torch.rand(1, 3, int(h), int(w))
with torch.inference_mode():
    restore(model, x, (int(H), int(W)), detail=detail)
    print("ready", flush=True)
    sys.stdin.readline()  # all processes start the clock together
    t = time.perf_counter()
    for _ in range(int(calls)):
        restore(model, x, (int(H), int(W)), detail=detail)
    print(calls / (time.perf_counter() - t), flush=True)
"""


def model_ceiling(n: int, in_size: tuple[int, int], out_size: tuple[int, int], detail: float,
                  model: str | None, calls: int = 6) -> float:
    """Frames a second of the model alone in `n` single-thread processes started together (summed)."""
    import subprocess
    args = [sys.executable, "-c", CEILING, *map(str, (*in_size, *out_size, detail, calls)), model or ""]
    procs = [subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return sum(float(p.communicate()[0]) for p in procs)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="gendrpix-video bench --scale-out", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale-out", action="store_true", help="(the mode; accepted for `bench --scale-out`)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    ap.add_argument("--input", default="320x180", help="input size WxH of the synthetic clip")
    ap.add_argument("--height", type=int_at_least(16), default=360, help="output height")
    ap.add_argument("--frames", type=int_at_least(1), default=192)
    ap.add_argument("--preset", default="preview", help="preset name or file (codec, batch)")
    ap.add_argument("--segment-frames", type=int_at_least(1), default=24, help="frames a segment (a task): several per worker")
    ap.add_argument("--detail", type=float, default=None, help="default: the model's own")
    ap.add_argument("--model", help="model name or weights file (default: shipped default)")
    ap.add_argument("--json", default="runs/bench_scale.json", help="where to write the results")
    args = ap.parse_args(argv)
    try:
        counts = sorted({int(n) for n in args.workers.split(",")})
        w, h = (int(v) for v in args.input.lower().split("x"))
    except ValueError:
        ap.error(f"--workers {args.workers!r} / --input {args.input!r}: numbers expected")
    if not counts or counts[0] < 1:
        ap.error("--workers: counts of 1 or more")

    from ..video.presets import UpscaleSettings
    from .bench_e2e import synth_clip
    # The network for any source, whatever --source auto would say of the synthetic clip: every
    # row then times the same network.
    settings = UpscaleSettings.from_preset(args.preset).override(
        "command line", height=args.height, detail=args.detail, segment_frames=args.segment_frames,
        source="any")
    tmp = Path(tempfile.mkdtemp(prefix="gendrpix-scale-"))
    try:
        clip = synth_clip(tmp / f"in_{w}x{h}.mp4", w, h, args.frames)
        print(f"{w}x{h} -> height {args.height}, {args.frames} frames, preset {settings.name} "
              f"({settings.codec}, segments of {settings.segment_frames}), {args.device}, "
              f"{os.cpu_count()} CPU cores", file=sys.stderr)
        rows = [plain_fps(clip, tmp / "plain.mkv", settings, args.model, args.device,
                          threads=1 if args.device == "cpu" else None)]
        print(f"plain: {rows[-1]['fps']:.2f} fps", file=sys.stderr)
        for n in counts:
            rows.append(ray_fps(clip, tmp / f"ray{n}.mkv", settings, args.model, args.device, n))
            span = max((v["segments_seconds"] for v in rows[-1]["nodes"].values()), default=0.0)
            # what the file's time holds beside its segments: workers' start, scheduling, the join
            print(f"ray {n}: {rows[-1]['fps']:.2f} fps; segments {span:.1f} s of the file's "
                  f"{rows[-1]['seconds']:.1f} s (job {rows[-1]['job_seconds']:.1f} s)", file=sys.stderr)
        ceiling = {}
        if args.device == "cpu":
            from ..loading import load_model
            from ..policy import resolve_detail
            H, W = settings.output_size((h, w))
            detail = resolve_detail(load_model(args.model, device="cpu"), settings.detail)
            for n in counts:
                ceiling[n] = model_ceiling(n, (h, w), (H, W), detail, args.model)
            print("model alone, single-thread processes at once: " + ", ".join(
                f"{n}: {v:.2f} fps" for n, v in ceiling.items()), file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    plain = rows[0]["fps"]
    one = next((r["fps"] for r in rows[1:] if r["workers"] == 1), None)
    for r in rows[1:]:
        r["overhead_pct"] = round(100 * (1 - r["fps"] / plain), 1) if r["workers"] == 1 else None
        r["efficiency"] = round(r["fps"] / (r["workers"] * one), 3) if one else None
        if ceiling and 1 in ceiling:
            r["machine_efficiency"] = round(ceiling[r["workers"]] / (r["workers"] * ceiling[1]), 3)
    head = ["run", "workers", "frames", "seconds", "fps", "Ray overhead", "efficiency", "machine's (model alone)"]
    table = [head] + [[r["mode"], str(r["workers"]), str(r["frames"]), f"{r['seconds']:.1f}", f"{r['fps']:.2f}",
                       "-" if r.get("overhead_pct") is None else f"{r['overhead_pct']:.1f}%",
                       "-" if r.get("efficiency") is None else f"{r['efficiency']:.2f}",
                       "-" if r.get("machine_efficiency") is None else f"{r['machine_efficiency']:.2f}"]
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(v.rjust(wd) for v, wd in zip(row, widths)))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": args.device, "cpu_cores": os.cpu_count(),
                                               "input": f"{w}x{h}", "height": args.height,
                                               "preset": settings.name, "rows": rows,
                                               "model_alone_fps": ceiling}, indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
