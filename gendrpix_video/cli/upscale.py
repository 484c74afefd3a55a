"""`gendrpix-video upscale`: parse the arguments, build `UpscaleSettings`, call `upscale_file`
once per input, print the summary. The job itself is `gendrpix_video.video.upscale_file`."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from functools import cache
from pathlib import Path

import av

from ..video.errors import PROG, VideoError, error_line, translate
from ..video.pipeline import Result, upscale_file
from ..video.presets import PresetError, UpscaleSettings

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".mxf", ".ts", ".m2ts", ".mts", ".mpg",
                  ".mpeg", ".wmv", ".flv", ".y4m", ".nut", ".dv", ".3gp", ".ogv", ".vob"}


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
    farm = ap.add_mutually_exclusive_group()
    farm.add_argument("--gpus", metavar="N|all", type=gpus_arg,
                      help="one job over N local GPUs (CPU workers with --device cpu), on Ray")
    farm.add_argument("--cluster", metavar="ADDRESS", nargs="?", const="",
                      help="one job over a Ray cluster: the head's HOST:PORT (default: $RAY_ADDRESS); "
                           "see docs/cluster.md")
    return ap


def gpus_arg(v: str) -> int | str:
    if v == "all" or (v.isdigit() and int(v) > 0):
        return v if v == "all" else int(v)
    raise argparse.ArgumentTypeError(f"must be a positive number or all, got {v!r}")


def settings_from(args) -> UpscaleSettings:
    """The preset, then the flags over it (validated as the preset's values are)."""
    return UpscaleSettings.from_preset(args.preset).override(
        "command line", codec=args.codec, crf=args.crf, pix_fmt=args.pix_fmt, detail=args.detail,
        batch=args.batch, scale=args.scale, height=args.height, size=args.size)


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
    except (PresetError, VideoError) as e:
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

    if args.gpus or args.cluster is not None:
        return scale_out(args, s, inputs)

    @cache
    def get_model():
        from ..loading import load_model
        from ..policy import DeviceError, pick_device
        from ..weights import WeightsError
        try:
            return load_model(args.model, device=pick_device(args.device))
        except DeviceError as e:
            raise VideoError(f"--device: {e}") from None
        except WeightsError as e:
            raise VideoError(f"--model: {e}") from None

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
                with Bar(src.name, args.quiet) as bar:
                    r = upscale_file(src, args.output, s, model=get_model, device=args.device, resume=args.resume,
                                     overwrite=args.overwrite, start=args.start, duration=args.duration,
                                     progress=bar.update)
                results[-1] = r
            except KeyboardInterrupt:
                r.error, r.status = "interrupted", "interrupted"
                print(f"{PROG}: interrupted: {src.name}: no output written; rerun with --resume to continue",
                      file=sys.stderr)
                code = 130
                break
            except BaseException as e:
                known = translate(e, batch=s.batch, where=str(src))
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


def scale_out(args, s: UpscaleSettings, inputs: list[Path]) -> int:
    """The same job on Ray (cluster/driver.py): one bar for all files, per-node throughput."""
    from ..cluster.driver import upscale_files
    address = None
    if args.cluster is not None:
        address = args.cluster or os.environ.get("RAY_ADDRESS", "")
        if not address:
            print(error_line("--cluster: no address given and RAY_ADDRESS is not set"), file=sys.stderr)
            return 2
    with Bar(f"{len(inputs)} file{'s' * (len(inputs) > 1)}", args.quiet) as bar:
        try:
            report = upscale_files(inputs, args.output, s, model=args.model, device=args.device, address=address,
                                   workers=args.gpus, resume=args.resume, overwrite=args.overwrite,
                                   start=args.start, duration=args.duration, progress=bar.update,
                                   on_error=lambda m: print(error_line(m), file=sys.stderr))
        except VideoError as e:
            print(error_line(e), file=sys.stderr)
            return 2
    if report.interrupted:
        print(f"{PROG}: interrupted: no output written for unfinished files; rerun with --resume to continue",
              file=sys.stderr)
    if not args.quiet or len(report.results) > 1 or report.code:
        print(summary(report.results))
        for node, st in sorted(report.nodes.items()):
            print(f"node {node}: {st.tasks} segments, {st.frames} frames in {st.seconds:.1f}s of work, "
                  f"{st.fps:.2f} fps")
    return report.code


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


class Bar:
    """A tqdm progress bar on stderr fed by `upscale_file`'s progress calls."""

    def __init__(self, name: str, quiet: bool):
        self.name, self.quiet, self.bar = name[:32], quiet, None

    def update(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=done, unit="frame", desc=self.name, file=sys.stderr,
                            disable=self.quiet, dynamic_ncols=True, leave=True)
        else:
            self.bar.update(done - self.bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
