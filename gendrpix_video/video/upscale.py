"""`gendrpix-video upscale`: argument parsing, one job per input, progress and the summary."""
from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .. import presets as presets_mod
from .colour import Colour, layout, resolve_matrix
from .errors import PROG, VideoError, error_line, translate, warn

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".mxf", ".ts", ".m2ts", ".mts", ".mpg",
                  ".mpeg", ".wmv", ".flv", ".y4m", ".nut", ".dv", ".3gp", ".ogv", ".vob"}
CONTAINERS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".m4v": "mp4"}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=f"{PROG} upscale",
        description="Restore and upscale videos with GenDR-Pix, keeping timestamps, audio, subtitles, "
                    "chapters, metadata and colour tags. Defaults aim at 2160p keeping the aspect ratio.")
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders of videos")
    ap.add_argument("-o", "--output", metavar="OUT", help="output file (one input) or existing folder")
    ap.add_argument("--preset", metavar="NAME|FILE", help="settings preset (see `gendrpix-video presets`)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="S", help="scale factor")
    size.add_argument("--height", type=int, metavar="H", help="output height, width keeps the aspect ratio")
    size.add_argument("--size", metavar="WxH", help="exact output size")
    ap.add_argument("--detail", type=float, metavar="W",
                    help="PadCFG guidance scale (default: the model's own; 1 and 0 run one pass)")
    ap.add_argument("--codec", metavar="C", help="libx264, libx265, libsvtav1, prores_ks, ffv1, *_nvenc")
    ap.add_argument("--crf", type=float, metavar="Q", help="constant quality of x264/x265/SVT-AV1/NVENC")
    ap.add_argument("--pix-fmt", metavar="F", help="output pixel format, e.g. yuv420p10le")
    ap.add_argument("--batch", type=int, metavar="N", help="frames per model batch")
    ap.add_argument("--device", metavar="D", help="cuda, cuda:1 or cpu (default: cuda when present)")
    ap.add_argument("--model", metavar="NAME|PATH", help="model name or weights file (default: shipped)")
    ap.add_argument("--start", type=float, metavar="T", help="start at T seconds")
    ap.add_argument("--duration", type=float, metavar="T", help="process T seconds")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted job")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--debug", action="store_true", help="tracebacks and FFmpeg logs")
    return ap


@dataclass
class Result:
    source: Path
    target: Path | None = None
    frames: int = 0
    seconds: float = 0.0
    size: int = 0
    error: str | None = None
    status: str = "ok"


# -- settings ----------------------------------------------------------------------------------
def settings_from(args) -> dict:
    s = presets_mod.load(args.preset)
    flags = {"codec": args.codec, "crf": args.crf, "pix_fmt": args.pix_fmt, "detail": args.detail,
             "batch": args.batch}
    if args.scale or args.height or args.size:
        s.update(scale=None, height=None, size=None)
        flags.update(scale=args.scale, height=args.height, size=args.size)
    if args.codec and args.codec != s["codec"]:
        # The preset's encoder speed, quality and options belong to its own codec.
        s.update(speed=None, crf=None, options={})
    s.update(presets_mod.validate({k: v for k, v in flags.items() if v is not None}, "command line"))
    if args.codec and not args.pix_fmt:
        # A codec chosen on the command line keeps the preset's bit depth when it can.
        from .encode import supported_pix_fmts
        if s["pix_fmt"] not in supported_pix_fmts(s["codec"]):
            bits10 = layout(s["pix_fmt"]) and layout(s["pix_fmt"]).bits > 8
            for f in (["yuv420p10le", "yuv422p10le"] if bits10 else ["yuv420p", "yuv422p10le"]):
                if f in supported_pix_fmts(s["codec"]):
                    s["pix_fmt"] = f
                    break
    return s


def output_size(w: int, h: int, s: dict, lay) -> tuple[int, int]:
    if s.get("size"):
        W, H = (int(x) for x in s["size"].split("x"))
    elif s.get("scale"):
        W, H = round(w * s["scale"]), round(h * s["scale"])
    else:
        H = int(s.get("height") or 2160)
        W = round(w * H / h)
    # Subsampled chroma needs even sizes.
    mx, my = 1 << lay.log2_cw, 1 << lay.log2_ch
    return max(mx, round(W / mx) * mx), max(my, round(H / my) * my)


def auto_encoders(s: dict, W: int, H: int) -> tuple[int, int]:
    """(encoders in parallel, threads each): one encoder rarely keeps up at 4K (see docs)."""
    cores = os.cpu_count() or 1
    if s["encoders"] != "auto":
        n = int(s["encoders"])
    elif s["codec"].endswith("_nvenc"):
        n = 2
    elif W * H >= 1920 * 1080:
        n = max(1, min(8, cores // 4))
    else:
        n = max(1, min(4, cores // 2))
    return n, max(1, cores // n)


def accepts(fmt: str, video_codec: str, others: list[str]) -> bool:
    """Can container `fmt` hold these codecs? (Asks FFmpeg, writes nothing.)"""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as c:
            c.add_mux_stream(video_codec)
            for name in others:
                c.add_mux_stream(name)
        return True
    except Exception:
        return False


# -- inputs and outputs ------------------------------------------------------------------------
def expand_inputs(items: list[str]) -> list[Path]:
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES
                          and not f.name.startswith("."))
        else:
            out.append(p)
    return out


def plan_target(src: Path, out: str | None, folder_mode: bool, s: dict, info) -> Path:
    if out and not folder_mode:
        target = Path(out)
        if target.suffix.lower() not in CONTAINERS:
            raise VideoError(f"{target}: unknown output container {target.suffix or '(none)'}",
                             hint="use .mkv, .mp4 or .mov")
        return target
    codec_name = av.codec.Codec(s["codec"], "w").name if s["codec"] else "hevc"
    want = ("." + s["container"]) if s.get("container") else (
        src.suffix.lower() if src.suffix.lower() in CONTAINERS else ".mkv")
    if not accepts(CONTAINERS[want], codec_name, info.copy_codecs):
        want = ".mkv"
    folder = Path(out) if out else src.parent
    name = f"{src.stem}{want}" if out else f"{src.stem}.upscaled{want}"
    return folder / name


def check_target(src: Path, target: Path, args) -> None:
    parent = target.parent
    if not parent.exists():
        raise VideoError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise VideoError(f"output folder {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise VideoError(f"output folder {parent} is not writable")
    try:
        same = target.exists() and os.path.samefile(src, target)
    except OSError:
        same = False
    if same or target.resolve() == src.resolve():
        raise VideoError(f"{target}: output would overwrite the input; choose another output")
    if target.exists() and not (args.overwrite or args.resume):
        raise VideoError(f"{target}: exists", hint="use --overwrite to replace it")


# -- one file --------------------------------------------------------------------------------
def run_one(src: Path, target_arg: str | None, folder_mode: bool, s: dict, args, get_model, result: Result) -> None:
    import torch

    from .decode import Decoder
    from .encode import EncodeSettings, EncoderPool, check_encoder
    from .engine import Engine, EngineConfig
    from .job import Job
    from .mux import join
    from .probe import probe

    info = probe(src)
    target = plan_target(src, target_arg, folder_mode, s, info)
    result.target = target
    check_target(src, target, args)
    if args.resume and target.exists() and not (target.parent / f".{target.name}.gendrpix").exists():
        result.status, result.size = "done", target.stat().st_size
        return
    if info.interlaced:
        warn(f"{src.name}: interlaced video ({info.interlaced}): processed as progressive frames; "
             "deinterlace first for best results")
    if info.alpha:
        warn(f"{src.name}: {info.pix_fmt} has an alpha channel: it is dropped, the output is opaque")
    for d in info.dropped_streams:
        warn(f"{src.name}: stream {d} is not copied")

    out_lay = layout(s["pix_fmt"])
    check_encoder(s["codec"], s["pix_fmt"])
    W, H = output_size(info.width, info.height, s, out_lay)
    in_matrix = resolve_matrix(info.colour.matrix, info.height)
    in_full = info.colour.range == 2 or (info.layout.family == "rgb" and info.colour.range != 1)
    # Untagged input: write the matrix we decoded with, so players do not guess another at 2160p.
    out_colour = Colour(info.colour.primaries, info.colour.trc,
                        in_matrix if info.layout.family == "yuv" else 1,
                        2 if (in_full and info.layout.family == "yuv") else 1)
    workers, threads = auto_encoders(s, W, H)
    enc = EncodeSettings(codec=s["codec"], pix_fmt=s["pix_fmt"], width=W, height=H, time_base=info.time_base,
                         rate=info.rate, colour=out_colour, crf=s["crf"], speed=s["speed"],
                         options=s["options"], threads=threads, sample_aspect_ratio=info.sample_aspect_ratio)
    seg_frames = int(s["segment_frames"])
    batch = min(int(s["batch"]), seg_frames)
    model, device = get_model()
    detail = model.default_detail if s["detail"] is None else float(s["detail"])  # None: the model's own
    st = src.stat()
    params = {"input": str(src.resolve()), "input_size": st.st_size, "input_mtime": st.st_mtime_ns,
              "codec": s["codec"], "crf": s["crf"], "speed": s["speed"], "pix_fmt": s["pix_fmt"],
              "options": s["options"], "size": f"{W}x{H}", "detail": detail, "seed": s["seed"],
              "segment_frames": seg_frames, "batch": batch, "model": model_id(args.model, model),
              "device": str(device), "start": args.start, "duration": args.duration, "colour": str(out_colour)}
    job = Job(target, params)
    job.start(args.resume)
    skip = job.resumed_frames()
    frame_bytes = out_lay.frame_bytes(W, H)
    budget = max(workers * seg_frames, 2 * batch)
    budget = max(2 * batch, min(budget, int(8e9 // frame_bytes)))  # at most ~8 GB of waiting frames
    pool = EncoderPool(enc, workers, budget, on_done=job.segment_done)
    decoder = Decoder(info, start=args.start, duration=args.duration, depth=max(8, 2 * batch))
    cfg = EngineConfig(in_layout=info.layout, in_size=(info.height, info.width), in_matrix=in_matrix,
                       in_full=in_full, out_layout=out_lay, out_size=(H, W), out_matrix=out_colour.matrix,
                       out_full=out_colour.full_range, detail=detail, seed=s["seed"], batch=batch)
    engine = Engine(model, cfg, device)
    total = info.frames
    if args.duration:
        total = int(args.duration * float(info.rate))
    from tqdm import tqdm
    bar = tqdm(total=total or None, initial=skip, unit="frame", desc=src.name[:32], file=sys.stderr,
               disable=args.quiet, dynamic_ncols=True, leave=True)
    state = {"feed": None, "frames": skip}
    t0 = time.monotonic()

    def batches():
        group = []
        for f in decoder:
            if f.index < skip:
                continue  # in a segment an interrupted run already finished
            group.append(f)
            if len(group) == batch or (f.index + 1) % seg_frames == 0:
                yield group
                group = []
        if group:
            yield group

    def emit(f, planes):
        if f.index % seg_frames == 0 or state["feed"] is None:
            if state["feed"] is not None:
                state["feed"].close()
            state["feed"] = pool.begin(job.segment(f.index // seg_frames, f.index))
        vf = av.VideoFrame(W, H, s["pix_fmt"])
        for plane, src_arr in zip(vf.planes, planes):
            dst = np.frombuffer(plane, dtype=out_lay.dtype).reshape(plane.height, -1)[:, : plane.width]
            dst[...] = src_arr.view(out_lay.dtype)
        if enc.encoder_pix_fmt() != s["pix_fmt"]:
            vf = vf.reformat(format=enc.encoder_pix_fmt())
        vf.pts, vf.time_base = f.pts, info.time_base
        vf.color_range, vf.colorspace = out_colour.range, out_colour.matrix
        vf.color_primaries, vf.color_trc = out_colour.primaries, out_colour.trc
        state["feed"].put(vf)
        state["frames"] += 1
        bar.update(1)

    ok = False
    try:
        with torch.inference_mode():
            engine.run(batches(), emit)
        if state["feed"] is not None:
            state["feed"].close()
        pool.finish()
        shift = decoder.first_pts if args.start else 0
        window = (None, None)
        if args.start or args.duration:
            first = Fraction(decoder.first_pts or 0) * info.time_base
            window = (first, decoder.end_time)
        join(job.partial, CONTAINERS[target.suffix.lower()], info, job.segments(), shift=shift or 0,
             window=window)
        job.commit()
        ok = True
    except KeyboardInterrupt:
        pool.abort()
        raise
    except BaseException:
        pool.abort()
        job.discard()
        raise
    finally:
        decoder.close()
        bar.close()
        result.frames = state["frames"]
        result.seconds = time.monotonic() - t0
        if ok:
            result.size = target.stat().st_size


def model_id(arg, model) -> str:
    if arg and Path(arg).is_file():
        st = Path(arg).stat()
        return f"{Path(arg).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"{arg or 'default'}:{getattr(getattr(model, 'config', None), 'name', '?')}"


# -- the command -----------------------------------------------------------------------------
def summary(results: list[Result]) -> str:
    head = ("file", "status", "frames", "time", "fps", "output")
    rows = []
    for r in results:
        fps = f"{r.frames / r.seconds:.2f}" if r.seconds > 0 and r.frames else "-"
        size = f"{r.size / 1e6:.1f} MB" if r.size else "-"
        status = r.status if not r.error else "FAILED"
        rows.append((r.source.name, status, str(r.frames), f"{r.seconds:.1f}s", fps, size))
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    for r in results:
        if r.error:
            lines.append(f"  {r.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)  # INPUTs may follow options
    av.logging.set_level(av.logging.VERBOSE if args.debug else None)  # FFmpeg's own chatter stays off
    if not args.debug:
        logging.getLogger("gendrpix_video").setLevel(logging.ERROR)
    try:
        s = settings_from(args)
    except (presets_mod.PresetError, VideoError) as e:
        print(error_line(e), file=sys.stderr)
        return 2
    inputs = expand_inputs(args.inputs)
    if not inputs:
        print(error_line("no video files found in " + ", ".join(args.inputs)), file=sys.stderr)
        return 2
    folder_mode = False
    if args.output:
        out = Path(args.output)
        folder_mode = out.is_dir() or args.output.endswith(os.sep) or len(inputs) > 1 or \
            any(Path(i).is_dir() for i in args.inputs)
        if folder_mode and not out.is_dir():
            what = "is not a folder" if out.exists() else "does not exist"
            print(error_line(f"output folder {out} {what}"), file=sys.stderr)
            return 2

    model_cache: dict = {}

    def get_model():
        if "model" not in model_cache:
            import torch

            from gendrpix_video import load_model
            dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            if dev.type == "cuda" and not torch.cuda.is_available():
                raise VideoError("--device cuda: this machine has no usable CUDA GPU")
            try:
                model_cache["model"] = (load_model(args.model, device=dev), dev)
            except ValueError as e:  # WeightsError is a ValueError with a one-line message
                raise VideoError(f"--model: {e}")
        return model_cache["model"]

    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(*_):
        raise KeyboardInterrupt

    if threading_main():
        signal.signal(signal.SIGTERM, on_term)  # a render node's scheduler stops jobs with SIGTERM
    results: list[Result] = []
    code = 0
    try:
        for src in inputs:
            r = Result(src)
            results.append(r)
            try:
                run_one(src, args.output, folder_mode, s, args, get_model, r)
            except KeyboardInterrupt:
                r.error, r.status = "interrupted", "interrupted"
                print(f"{PROG}: interrupted: {src.name}: no output written; rerun with --resume to continue",
                      file=sys.stderr)
                code = 130
                break
            except BaseException as e:
                known = translate(e, batch=s["batch"], where=str(r.target or src))
                if args.debug:
                    traceback.print_exc()
                msg = str(known) if known else f"{src}: unexpected error: {type(e).__name__}: {e}"
                if not known and not args.debug:
                    msg += " (rerun with --debug for details)"
                if known and not msg.startswith(str(src)) and str(src) not in msg:
                    msg = f"{src}: {msg}"
                print(error_line(msg), file=sys.stderr)
                r.error, r.status = msg, "failed"
                code = 1
    finally:
        if threading_main():
            signal.signal(signal.SIGTERM, old_term)
    if not args.quiet or len(results) > 1:
        print(summary(results))
    return code


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    raise SystemExit(main())
