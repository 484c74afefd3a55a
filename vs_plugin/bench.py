"""Throughput of the ``gendrpix`` VapourSynth filter measured through ``vspipe``.

    python -m vsgendrpix.bench                    # 1080p -> 2160p, default model, CUDA
    python -m vsgendrpix.bench --batch-size 4 --num-streams 2 --dtype bf16
    python -m vsgendrpix.bench --input video.mkv  # a real clip opened with bestsource
    python -m vsgendrpix.bench --smoke            # tiny untrained model, 64x48 -> 128x96 (CPU ok)

Two vspipe runs are timed: one rendering ``--warmup`` frames and one rendering
``--warmup + --frames`` frames.  The steady-state fps is ``frames / (t_long - t_short)``,
which cancels interpreter start, model loading and the first (autotuning) batches.
One JSON object with the result is printed to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_VPY = r'''
import vapoursynth as vs
from vsgendrpix import gendrpix

core = vs.core
if int(threads) > 0:
    core.num_threads = int(threads)
w, h, n = int(in_width), int(in_height), int(length)
if source:
    clip = core.bs.VideoSource(source=source, cachemode=0)
    clip = clip * (n // clip.num_frames + 1)
    clip = core.resize.Bicubic(clip[:n], width=w, height=h, format=vs.RGBH, matrix_in_s="709")
else:
    import numpy as np

    base = core.std.BlankClip(width=w, height=h, format=vs.RGBH, length=1, fpsnum=24000, fpsden=1001)

    def paint(n, f):  # a smooth pattern with some texture
        fo = f.copy()
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        planes = [xx / w, yy / h, 0.5 + 0.25 * np.sin(xx * 0.21) * np.cos(yy * 0.17)]
        for p in range(3):
            np.copyto(np.asarray(fo[p]), planes[p].astype(np.float16))
        return fo

    clip = core.std.Loop(core.std.ModifyFrame(base, base, paint), times=n)
clip = gendrpix(
    clip,
    height=int(out_height),
    detail=float(detail),
    batch_size=int(batch_size),
    num_streams=int(num_streams),
    model=model or None,
    dtype=dtype or None,
    source="any",  # the network the benchmark times, whatever "auto" would say of the synthetic clip
)
if output == "yuv":
    clip = core.resize.Bicubic(clip, format=vs.YUV420P10, matrix_s="709")
clip.set_output()
'''


def _pythonpath() -> str:
    """PYTHONPATH for vspipe so it imports the same vsgendrpix/gendrpix_video as this process."""
    import gendrpix_video

    import vsgendrpix

    paths = [str(Path(gendrpix_video.__file__).resolve().parent.parent)]
    pkg = Path(vsgendrpix.__file__).parent  # not resolved: may be a shim symlink named vsgendrpix
    if pkg.name == "vsgendrpix":
        paths.insert(0, str(pkg.parent))
    # (an editable install maps vsgendrpix -> vs_plugin through its own import hook)
    old = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(paths + ([old] if old else []))


def vspipe_env() -> dict[str, str]:
    """The environment for vspipe: this package on PYTHONPATH, and VapourSynth's config from the
    venv when scripts/setup.sh wrote it there (so nothing goes to ~/.config)."""
    env = dict(os.environ, PYTHONPATH=_pythonpath())
    config = Path(sys.prefix) / "config"
    if (config / "vapoursynth" / "vapoursynth.toml").is_file():
        env["XDG_CONFIG_HOME"] = str(config)
    return env


def _vspipe() -> str:
    local = Path(sys.executable).parent / "vspipe"
    if local.exists():
        return str(local)
    found = shutil.which("vspipe")
    if not found:
        raise SystemExit("vspipe not found (install vapoursynth into this environment)")
    return found


def _run(vpy: Path, args: dict[str, str], end: int, container: str, env: dict[str, str]) -> float:
    cmd = [_vspipe(), str(vpy), os.devnull, "-e", str(end)]
    if container:
        cmd[3:3] = ["-c", container]
    for k, v in args.items():
        cmd += ["-a", f"{k}={v}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"vspipe failed ({proc.returncode}):\n{proc.stderr}")
    return dt


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m vsgendrpix.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny untrained model and tiny frames (CPU test)")
    ap.add_argument("--input", default="", help="video file (opened with bestsource) instead of a synthetic clip")
    ap.add_argument("--in-size", default="1920x1080", help="input WxH (default 1920x1080)")
    ap.add_argument("--out-height", type=int, default=2160, help="output height (width keeps aspect)")
    ap.add_argument("--frames", type=int, default=240, help="timed frames (default 240)")
    ap.add_argument("--warmup", type=int, default=48, help="untimed frames (default 48)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--num-streams", type=int, default=2)
    ap.add_argument("--detail", type=float, default=1.0)
    ap.add_argument("--dtype", default="", help="bf16/fp16/fp32 (default: filter default)")
    ap.add_argument("--model", default="", help="weights path (default: embedded default model)")
    ap.add_argument("--threads", type=int, default=0, help="core.num_threads (0 = VapourSynth default)")
    ap.add_argument(
        "--output", choices=["yuv", "rgb"], default="yuv",
        help="yuv: convert to YUV420P10 and write y4m (like an encode); rgb: raw RGBH",
    )
    a = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="vsgendrpix-bench-"))
    try:
        model = a.model
        if a.smoke:
            from gendrpix_video import build_model, save_weights

            model = str(tmp / "tiny.safetensors")
            save_weights(build_model("tiny", device="cpu"), model)
            if a.in_size == "1920x1080":
                a.in_size = "64x48"
            if a.out_height == 2160:
                a.out_height = 96
            a.frames = min(a.frames, 8) if a.frames == 240 else a.frames
            a.warmup = min(a.warmup, 4) if a.warmup == 48 else a.warmup
            a.batch_size = min(a.batch_size, 2)
        in_w, in_h = (int(v) for v in a.in_size.lower().split("x"))
        vpy = tmp / "bench.vpy"
        vpy.write_text(_VPY)
        args = {
            "in_width": str(in_w), "in_height": str(in_h), "out_height": str(a.out_height),
            "length": str(a.warmup + a.frames), "detail": str(a.detail),
            "batch_size": str(a.batch_size), "num_streams": str(a.num_streams),
            "model": model, "dtype": a.dtype, "threads": str(a.threads),
            "source": a.input, "output": a.output,
        }
        env = vspipe_env()
        container = "y4m" if a.output == "yuv" else ""
        t_short = _run(vpy, args, a.warmup - 1, container, env) if a.warmup > 0 else 0.0
        t_long = _run(vpy, args, a.warmup + a.frames - 1, container, env)
        # None when the run is too short to separate from start-up noise (e.g. --smoke)
        fps = a.frames / (t_long - t_short) if t_long - t_short > 0.05 else None

        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        result = {
            "device": device,
            "input": a.input or f"synthetic {in_w}x{in_h} RGBH",
            "in_size": f"{in_w}x{in_h}",
            "out_height": a.out_height,
            "model": model or "default (embedded)",
            "dtype": a.dtype or "filter default",
            "batch_size": a.batch_size,
            "num_streams": a.num_streams,
            "detail": a.detail,
            "output": a.output,
            "frames_timed": a.frames,
            "warmup_frames": a.warmup,
            "seconds_short_run": round(t_short, 3),
            "seconds_long_run": round(t_long, 3),
            "fps_steady": None if fps is None else round(fps, 3),
            "fps_overall": round((a.warmup + a.frames) / t_long, 3),
        }
        print(json.dumps(result, indent=2))
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
