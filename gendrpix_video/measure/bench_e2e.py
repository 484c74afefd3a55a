"""`gendrpix-video bench --e2e`: end-to-end upscale fps beside model-only and encoder-only fps.

For each input size (540p and 1080p by default) a synthetic clip is written, then:
  model-only    `restore` on frames already on the GPU (CUDA events), colour conversion excluded;
  encoder-only  the same 2160p frames (bicubic, made before timing) through the same encoder
                pool (codec, settings, parallel encoders, segments) with no model;
  end-to-end    `video.upscale_file` on the clip: decode -> GPU -> encoders -> join.
Target: end-to-end >= 0.9 x min(model-only, encoder-only).

  python -m gendrpix_video.measure.bench_e2e --e2e                 # H100: 540p and 1080p -> 2160p
  python -m gendrpix_video.measure.bench_e2e --smoke               # CPU, tiny sizes: checks it runs
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..argparsing import OneLineParser

SIZES = {"540p": (960, 540), "1080p": (1920, 1080), "720p": (1280, 720), "smoke": (64, 36)}


def synth_clip(path: Path, width: int, height: int, frames: int, fps: int = 24) -> Path:
    """A moving, textured test clip (x264 near-lossless, AAC audio) that costs little to decode."""
    import av
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.integers(0, 24, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"crf": "12", "preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        cc = v.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 1
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(frames):
            r = (x * 255 / width + 3 * i) % 256
            g = (y * 255 / height + 2 * i) % 256
            b = 128 + 90 * np.sin((x + y + 4 * i) / 17)
            img = np.clip(np.stack([r, g, b], -1), 0, 231).astype(np.uint8) + noise
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", dst_colorspace=1)
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        samples = int(frames / fps * 48000)
        for k in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray((rng.standard_normal((2, 1024)) * 0.05).astype(np.float32),
                                            format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return path


def _device_frames(info, n: int, device):
    """The clip's first n frames as raw planes on the device (for model-only timing)."""
    import torch

    from ..video.decode import Decoder
    planes = [[], [], []]
    with Decoder(info) as dec:
        for f in dec:
            for i in range(3):
                planes[i].append(torch.from_numpy(np.ascontiguousarray(f.planes[i])))
            if len(planes[0]) == n:
                break
    return [torch.stack(p).to(device) for p in planes]


def model_only_fps(model, info, out_size, batch: int, frames: int, device, detail: float,
                   supersample: float = 1.0) -> float:
    import torch

    from ..padcfg import restore_any_scale
    from ..video.colour import resolve_matrix, to_rgb
    raw = _device_frames(info, min(frames, 4 * batch), device)
    rgb = to_rgb(raw, info.layout, resolve_matrix(info.colour.matrix, info.height), info.colour.full_range)
    batches = [rgb[i:i + batch] for i in range(0, len(rgb) - batch + 1, batch)] or [rgb]
    with torch.inference_mode():
        for b in batches[:2]:  # warm-up: kernels, cudnn autotune, allocator
            restore_any_scale(model, b, out_size, detail, 0, supersample=supersample)
        done, t = 0, 0.0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            while done < frames:
                b = batches[(done // batch) % len(batches)]
                restore_any_scale(model, b, out_size, detail, 0, supersample=supersample)
                done += b.shape[0]
            end.record()
            end.synchronize()
            t = start.elapsed_time(end) / 1000
        else:
            t0 = time.perf_counter()
            while done < frames:
                b = batches[(done // batch) % len(batches)]
                restore_any_scale(model, b, out_size, detail, 0, supersample=supersample)
                done += b.shape[0]
            t = time.perf_counter() - t0
    return done / t


def encoder_use(spans: list[tuple[int, float, float]], workers: int) -> dict:
    """How the encoders spent a run: segments, mean seconds a segment (a full one encodes slower
    when the CPU is shared) and the busy share of `workers` encoders from the first segment's
    start to the last one's end (idle encoders at the end: fewer segments left than encoders)."""
    if not spans:
        return {}
    t0, t1 = min(a for _, a, _ in spans), max(b for _, _, b in spans)
    took = [b - a for _, a, b in spans]
    return {"segments": len(spans), "segment_s": round(sum(took) / len(took), 2),
            "busy": round(sum(took) / (workers * max(t1 - t0, 1e-9)), 3)}


def encoder_only_fps(info, settings, out_size, frames: int, workdir: Path, device) -> tuple[float, dict]:
    """The same 2160p frames (bicubic from the clip, made before the clock starts) through the
    same encoder pool as the real run; fps and `encoder_use`."""
    import av
    import torch
    import torch.nn.functional as F

    from ..video.colour import Colour, from_rgb, layout, resolve_matrix, to_rgb
    from ..video.decode import Decoder
    from ..video.encode import EncodeSettings, EncoderPool, Segment
    from ..video.pipeline import auto_encoders
    H, W = out_size
    lay = layout(settings.pix_fmt)
    m = resolve_matrix(info.colour.matrix, info.height)
    colour = Colour(info.colour.primaries, info.colour.trc, m, 1)
    budget_frames = max(1, min(frames, int(6e9 // lay.frame_bytes(W, H))))  # distinct frames kept
    made = []
    with Decoder(info) as dec:
        for f in dec:
            raw = [torch.from_numpy(np.ascontiguousarray(p))[None].to(device) for p in f.planes]
            rgb = F.interpolate(to_rgb(raw, info.layout, m, False), size=(H, W), mode="bicubic").clamp(0, 1)
            planes = [p[0].cpu().numpy().view(lay.dtype) for p in from_rgb(rgb, lay, m, False)]
            vf = av.VideoFrame(W, H, settings.pix_fmt)
            for plane, arr in zip(vf.planes, planes):
                np.frombuffer(plane, dtype=lay.dtype).reshape(plane.height, -1)[:, :plane.width] = arr
            made.append((f.pts, vf))
            if len(made) == budget_frames:
                break
    workers, threads = auto_encoders(settings, W, H)
    enc = EncodeSettings(codec=settings.codec, pix_fmt=settings.pix_fmt, width=W, height=H,
                         time_base=info.time_base, rate=info.rate, colour=colour, crf=settings.crf,
                         speed=settings.speed, options=settings.options, threads=threads)
    seg_frames = int(settings.segment_frames)
    pool = EncoderPool(enc, workers, max(workers * seg_frames, 8))
    step = max(1, round(1 / (info.rate * info.time_base)))
    t0 = time.perf_counter()
    feed = None
    for i in range(frames):
        pts, src = made[i % len(made)]
        if i % seg_frames == 0:
            if feed:
                feed.close()
            feed = pool.begin(Segment(i // seg_frames, i, workdir))
        vf = av.VideoFrame(W, H, settings.pix_fmt)
        for a, b in zip(vf.planes, src.planes):  # a fresh frame per use: encoders keep references
            a.update(bytes(b))
        vf.pts, vf.time_base = i * step, info.time_base
        feed.put(vf)
    feed.close()
    pool.finish()
    return frames / (time.perf_counter() - t0), encoder_use(pool.spans, workers)


def e2e_fps(clip: Path, out: Path, settings, model, device, workers: int) -> tuple[float, int, float, dict]:
    """End-to-end fps, frames, seconds, and where the time went: when the first frame reached the
    encoders, the rate frames reached them in the middle half of the run (the steady state, which
    the encoders' backlog holds back once full), and the seconds from the last frame to the end
    (encoders finishing, the join), with `encoder_use`."""
    from ..video.pipeline import upscale_file
    fed: list[float] = []
    t0 = time.monotonic()
    r = upscale_file(clip, out, settings, model=model, device=device, overwrite=True,
                     progress=lambda done, total: fed.append(time.monotonic()) if done else None)
    end = time.monotonic()
    timeline = {"setup_s": round(end - t0 - r.seconds, 2)}
    if len(fed) >= 8:
        a, b = len(fed) // 4, 3 * len(fed) // 4
        timeline.update(first_frame_s=round(fed[0] - (end - r.seconds), 2),
                        steady_fps=round((b - a) / max(fed[b] - fed[a], 1e-9), 2),
                        drain_s=round(end - fed[-1], 2))
    timeline.update(encoder_use(r.encode_spans, workers))
    return r.frames / r.seconds, r.frames, r.seconds, timeline


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="gendrpix-video bench --e2e", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--e2e", action="store_true", help="(the mode; accepted for `bench --e2e`)")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes and model: checks the harness")
    ap.add_argument("--inputs", default="540p,1080p", help="input sizes: 540p,720p,1080p or WxH list")
    ap.add_argument("--height", type=int, default=2160, help="output height")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--preset", default="delivery", help="preset name or file (codec, encoders, segments)")
    ap.add_argument("--codec")
    ap.add_argument("--pix-fmt")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--model", help="model name or weights file (default: shipped default)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--detail", type=float, default=None)
    ap.add_argument("--supersample", type=float, default=None,
                    help="restore to K x the output, then shrink: a costlier model step, to find where "
                         "the end-to-end rate starts to drop")
    ap.add_argument("--json", default="runs/bench_e2e.json", help="where to write the results")
    ap.add_argument("--keep", action="store_true", help="keep the clips and outputs")
    args = ap.parse_args(argv)

    import torch

    from ..loading import load_model
    from ..model import build_model
    from ..policy import pick_device
    from ..video.pipeline import auto_encoders
    from ..video.presets import UpscaleSettings
    from ..video.probe import probe
    from ..weights import save_weights
    device = pick_device(args.device or ("cpu" if args.smoke else None))
    tmp = Path(tempfile.mkdtemp(prefix="gendrpix-bench-"))
    if args.smoke:
        args.inputs, args.height, args.frames = "smoke", 72, min(args.frames, 16)
        if not args.model:
            args.model = str(tmp / "tiny.safetensors")
            save_weights(build_model("tiny"), args.model)
    # The network for any source, which the model-only rows time, whatever --source auto would
    # say of the synthetic clip.
    settings = UpscaleSettings.from_preset(args.preset).override(
        "command line", height=args.height, codec=args.codec, pix_fmt=args.pix_fmt, batch=args.batch,
        detail=args.detail, source="any", supersample=args.supersample)
    model = load_model(args.model, device=device)
    rows = []
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"{os.cpu_count()} CPU cores, preset {settings.name}: {settings.codec} {settings.pix_fmt}",
          file=sys.stderr)
    for name in args.inputs.split(","):
        w, h = SIZES.get(name) or tuple(int(v) for v in name.lower().split("x"))
        clip = synth_clip(tmp / f"in_{w}x{h}.mp4", w, h, args.frames)
        info = probe(clip)
        H, W = settings.output_size((info.height, info.width))
        workers, _ = auto_encoders(settings, W, H)
        print(f"{w}x{h} -> {W}x{H}: model-only ...", file=sys.stderr)
        m_fps = model_only_fps(model, info, (H, W), settings.batch, min(args.frames, 64), device,
                               settings.detail, settings.supersample)
        print(f"{w}x{h} -> {W}x{H}: encoder-only ...", file=sys.stderr)
        seg_dir = tmp / f"enc_{w}x{h}"
        seg_dir.mkdir()
        e_fps, e_use = encoder_only_fps(info, settings, (H, W), args.frames, seg_dir, device)
        print(f"{w}x{h} -> {W}x{H}: encoder-only: " + ", ".join(f"{k} {v}" for k, v in e_use.items()),
              file=sys.stderr)
        print(f"{w}x{h} -> {W}x{H}: end-to-end ...", file=sys.stderr)
        x_fps, n, secs, timeline = e2e_fps(clip, tmp / f"out_{w}x{h}.mkv", settings, model, device, workers)
        print(f"{w}x{h} -> {W}x{H}: end-to-end {secs:.1f} s: " + ", ".join(f"{k} {v}" for k, v in timeline.items()),
              file=sys.stderr)
        bound = min(m_fps, e_fps)
        rows.append({"input": f"{w}x{h}", "output": f"{W}x{H}", "frames": n, "codec": settings.codec,
                     "pix_fmt": settings.pix_fmt, "encoders": workers, "batch": settings.batch,
                     "supersample": settings.supersample,
                     "model_only_fps": round(m_fps, 2), "encoder_only_fps": round(e_fps, 2),
                     "e2e_fps": round(x_fps, 2), "ratio": round(x_fps / bound, 3), "e2e_timeline": timeline,
                     "encoder_only_use": e_use,
                     "target_met": x_fps >= 0.9 * bound})
    head = ["input", "output", "codec", "encoders", "model-only fps", "encoder-only fps", "end-to-end fps",
            "e2e/min", "target 0.9"]
    table = [head] + [[r["input"], r["output"], r["codec"], str(r["encoders"]), f"{r['model_only_fps']:.1f}",
                       f"{r['encoder_only_fps']:.1f}", f"{r['e2e_fps']:.1f}", f"{r['ratio']:.2f}",
                       "met" if r["target_met"] else "MISSED"] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(v.rjust(wd) for v, wd in zip(row, widths)))
    result = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "cpu_cores": os.cpu_count(), "preset": settings.name, "frames": args.frames, "rows": rows}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    if not args.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
