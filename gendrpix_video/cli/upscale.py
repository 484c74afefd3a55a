"""`gendrpix-video upscale`: parse the arguments, build `UpscaleSettings`, call `upscale_file`
once per input (printing its pre-flight plan), print the summary. The job itself is
`gendrpix_video.video.upscale_file`."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import traceback
from functools import cache
from pathlib import Path

import av

from ..argparsing import OneLineParser
from ..damage import AUTO, SOURCE_CHOICES
from ..temporal import DEFAULT_STRENGTH
from ..video.argcheck import check_numbers
from ..video.errors import PROG, DamagedInput, OutputError, VideoError, error_line, translate
from ..video.engine import GRIDS
from ..video.pipeline import Result, check_source_in_file, upscale_file
from ..video.lock import JobBusy
from ..video.preflight import CPU_MINUTES, PlanRefused
from ..video.presets import DEINTERLACE, PresetError, UpscaleSettings

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".mxf", ".ts", ".m2ts", ".mts", ".mpg",
                  ".mpeg", ".wmv", ".flv", ".y4m", ".nut", ".dv", ".3gp", ".ogv", ".vob"}


EXAMPLES = f"""
examples:
  {PROG} upscale clip.mp4 -o clip_2160p.mkv        2160p (the default), the default preset
  {PROG} upscale clip.mp4 --height 1080 --detail 0  smaller and one UNet pass: quicker on a CPU
  {PROG} upscale folder/ -o out/ --preset delivery  every video in a folder
  {PROG} upscale master.mov --source clean          a clean master: sharpened, nothing removed
                                                   (the default, auto, guesses this per file)
  {PROG} upscale clip.mp4 -o out.mkv --resume       continue a run that was stopped

Before the first frame it prints a plan: the device (saying so when it is the CPU), the output
size, the model, source and detail, the memory it expects and, on a CPU, the time from a short
warm-up. A job over a limit (--max-memory, --max-minutes) is refused at once with an option
that fits. Ctrl-C leaves a hidden .NAME.gendrpix/ folder beside the output on purpose: --resume
continues from it (delete it to start over).
"""


def parser() -> argparse.ArgumentParser:
    ap = OneLineParser(
        prog=f"{PROG} upscale",
        usage=f"{PROG} upscale INPUT... [-o OUT] [options]",
        description="Restore and upscale videos with GenDR-Pix, keeping timestamps, audio, subtitles, "
                    "chapters, metadata and colour tags. Defaults aim at 2160p keeping the aspect ratio.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders of videos")
    ap.add_argument("-o", "--output", metavar="OUT",
                    help="output file (one input) or existing folder (default: INPUT.upscaled.EXT beside it)")
    ap.add_argument("--preset", metavar="NAME|FILE",
                    help="settings preset: codec, quality, bit depth, size (see `gendrpix-video presets`)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="S", help="output size as a factor of the input (0.25-16)")
    size.add_argument("--height", type=int, metavar="H",
                      help="output height in pixels (16-8640), width keeps the aspect ratio (default 2160)")
    size.add_argument("--size", metavar="WxH", help="exact output size, e.g. 1920x1080")
    ap.add_argument("--detail", type=float, metavar="W",
                    help="PadCFG guidance scale 0-4 (default: the model's own; 1 and 0 run one UNet pass, "
                         "other values two)")
    ap.add_argument("--source", choices=SOURCE_CHOICES, metavar="auto|any|clean",
                    help="what the input is: auto (the default: guessed per file from a few of its frames, "
                         "shown in the plan), any (it may be noisy or compressed and the model removes that "
                         "damage) or clean (a clean master, e.g. camera originals or lossless/ProRes "
                         "intermediates: it sharpens more and removes no noise or compression; needs a model "
                         "with a network for clean sources, as the shipped default has)")
    ap.add_argument("--grid", choices=GRIDS, metavar="follow|fixed",
                    help="follow (the default): the model's 8x8 patch grid moves with the picture, estimated "
                         "from frame to frame, so texture stays put in pans; fixed: the grid stays on the frame")
    ap.add_argument("--deinterlace", choices=DEINTERLACE, metavar="auto|on|off",
                    help="auto (the default): interlaced input (as the file says) goes through FFmpeg's bwdif "
                         "first, one frame per frame, timestamps kept; on: every file (fields the file does "
                         "not declare); off: frames as decoded")
    ap.add_argument("--temporal", type=float, metavar="S",
                    help=f"temporal filter strength 0-0.95 (default {DEFAULT_STRENGTH:g}): each restored frame is "
                         "blended with the previous one, moved with the picture, where the two agree, so the "
                         "texture the model draws does not shimmer; moving subjects and cuts pass unchanged; "
                         "0: every frame on its own")
    ap.add_argument("--supersample", type=float, metavar="K",
                    help="1-2 (default 1): the model restores to K times the output size (up to its largest "
                         "scale, x4) and the result is shrunk to the output: below x4 the network gives each "
                         "input pixel more care (1080p to 2160p: +0.9 to +1.4 dB at K 1.5), for K*K times the "
                         "model's work and memory; the archival preset uses 2"),
    ap.add_argument("--codec", metavar="C", help="libx264, libx265, libsvtav1, prores_ks, ffv1, *_nvenc")
    ap.add_argument("--crf", type=float, metavar="Q", help="constant quality 0-63 of x264/x265/SVT-AV1/NVENC")
    ap.add_argument("--pix-fmt", metavar="F", help="output pixel format, e.g. yuv420p10le (default: the preset's)")
    ap.add_argument("--batch", type=int, metavar="N", help="frames per model batch, 1-256 (default 4)")
    ap.add_argument("--device", metavar="D", help="cuda, cuda:1 or cpu (default: cuda when present)")
    ap.add_argument("--model", metavar="NAME|PATH", help="model name or weights file (default: shipped)")
    ap.add_argument("--start", type=float, metavar="T", help="start at T seconds")
    ap.add_argument("--duration", type=float, metavar="T", help="process T seconds (more than 0)")
    ap.add_argument("--max-memory", type=float, metavar="GIB",
                    help="refuse a job the plan expects to need more host or GPU memory than this, in GiB "
                         "(default: the machine's memory and the GPU's)")
    ap.add_argument("--max-minutes", type=float, metavar="M",
                    help=f"refuse a job the plan expects to take longer than this (default: {CPU_MINUTES:g} "
                         "on a CPU, no limit on a GPU; inf: no limit)")
    ap.add_argument("--strict", action="store_true",
                    help="stop at the first damaged packet (finished segments stay for --resume); by default "
                         "damage is decoded past and its time ranges listed in the summary")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted job from its last segment")
    ap.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ap.add_argument("--quiet", action="store_true", help="no plan and no progress bar")
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
        source=args.source, grid=args.grid, deinterlace=args.deinterlace, temporal=args.temporal, supersample=args.supersample, batch=args.batch, scale=args.scale, height=args.height, size=args.size)


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
    """A row per file saying what this run did; fps counts only the frames this run made."""
    head = ("file", "status", "frames", "time", "fps", "output")
    rows = []
    for r in results:
        fps = f"{r.fps:.2f}" if r.fps else "-"
        size = f"{r.size / 1e6:.1f} MB" if r.size else "-"
        status = "FAILED" if r.status == "failed" else r.status
        frames = f"{r.frames} ({r.resumed} resumed)" if r.resumed else str(r.frames)
        rows.append((r.source.name, status, frames, f"{r.seconds:.1f}s", fps, size))
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    for r in results:
        if r.error and r.status != "interrupted":
            lines.append(f"  {r.error}")
        if r.damage:
            spans = ", ".join(f"{a:.2f}-{b:.2f}s" if b > a else f"{a:.2f}s" for a, b in r.damage)
            lines.append(f"  {r.source.name}: damaged input at {spans}: decoded past (frames there are "
                         "missing or concealed); --strict stops at damage instead")
    return "\n".join(lines)


def status_of(error: VideoError | None) -> str:
    """The summary's word for a file that stopped: what happened, not just that it failed."""
    if isinstance(error, DamagedInput):
        return "damaged"      # --strict: finished segments kept for --resume
    if isinstance(error, PlanRefused):
        return "refused"      # over a limit; nothing was decoded or written
    if isinstance(error, JobBusy):
        return "busy"         # another run is writing this output
    return "failed"


def check_flags(args) -> None:
    """Every numeric flag against its range, zero included (one ArgError line naming each)."""
    check_numbers(size=args.size, scale=args.scale, height=args.height, detail=args.detail, temporal=args.temporal,
                  supersample=args.supersample, crf=args.crf,
                  batch=args.batch, start=args.start, duration=args.duration, max_memory=args.max_memory,
                  max_minutes=args.max_minutes)


def print_plan(plan) -> None:
    for line in plan.lines():
        print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)  # INPUTs may follow options
    av.logging.set_level(av.logging.VERBOSE if args.debug else None)  # FFmpeg's own chatter stays off
    if not args.debug:
        logging.getLogger("gendrpix_video").setLevel(logging.ERROR)
    try:
        check_flags(args)
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

    if s.source not in (AUTO, "any"):
        # A source the model lacks fails every input alike: one line before any input is read or any
        # GPU process or worker loads the model (the weights file's header says its sources).
        try:
            check_source_in_file(args.model, s.source)
        except VideoError as e:
            print(error_line(e), file=sys.stderr)
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
                                     progress=bar.update, on_plan=None if args.quiet else print_plan,
                                     max_memory=args.max_memory, max_minutes=args.max_minutes,
                                     strict=args.strict)
                results[-1] = r
            except KeyboardInterrupt:
                r.error, r.status = "interrupted", "interrupted"
                print(f"{PROG}: interrupted: {src.name}: no output written; its finished segments stay in a "
                      "hidden .NAME.gendrpix folder beside the output: rerun with --resume to continue",
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
                # An output problem is named by the output's path, which the message already holds.
                if known and not isinstance(known, OutputError) and not msg.startswith(str(src)) \
                        and str(src) not in msg:
                    msg = f"{src}: {msg}"
                print(error_line(msg), file=sys.stderr)
                r.error, r.status = msg, status_of(known)
                code = 1
    finally:
        if threading_main():
            signal.signal(signal.SIGTERM, old_term)
    if not args.quiet or len(results) > 1 or any(r.damage for r in results):
        print(summary(results))
    return code


def scale_out(args, s: UpscaleSettings, inputs: list[Path]) -> int:
    """The same job on Ray (cluster/driver.py): one bar for all files (frames, fps, ETA), the
    plan of each file, per-node throughput in the summary."""
    from ..cluster.driver import upscale_files
    address = None
    if args.cluster is not None:
        address = args.cluster or os.environ.get("RAY_ADDRESS", "")
        if not address:
            print(error_line("--cluster: no address given and RAY_ADDRESS is not set"), file=sys.stderr)
            return 2
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(*_):
        raise KeyboardInterrupt

    if threading_main():
        signal.signal(signal.SIGTERM, on_term)  # a render node's scheduler stops jobs with SIGTERM
    try:
        with Bar(f"{len(inputs)} file{'s' * (len(inputs) > 1)}", args.quiet) as bar:
            report = upscale_files(inputs, args.output, s, model=args.model, device=args.device, address=address,
                                   workers=args.gpus, resume=args.resume, overwrite=args.overwrite,
                                   start=args.start, duration=args.duration, progress=bar.update,
                                   on_error=lambda m: print(error_line(m), file=sys.stderr),
                                   on_plan=None if args.quiet else print_plan, max_memory=args.max_memory,
                                   max_minutes=args.max_minutes, strict=args.strict)
    except VideoError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before Ray was up: nothing started
        print(f"{PROG}: interrupted: no output written", file=sys.stderr)
        return 130
    finally:
        if threading_main():
            signal.signal(signal.SIGTERM, old_term)
    if report.interrupted:
        print(f"{PROG}: interrupted: no output written for unfinished files; their finished segments stay in "
              "hidden .NAME.gendrpix folders beside the outputs: rerun with --resume to continue", file=sys.stderr)
    if not args.quiet or len(report.results) > 1 or report.code or any(r.damage for r in report.results):
        print(summary(report.results))
        for node, st in sorted(report.nodes.items()):
            print(f"node {node}: {st.tasks} segment{'s' * (st.tasks != 1)}, {st.frames} frames in "
                  f"{st.seconds:.1f}s, {st.fps:.2f} fps")
    return report.code


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


class Bar:
    """A tqdm progress bar on stderr fed by `upscale_file`'s progress calls. The total is the
    container's estimate or unknown (None): the bar grows it when frames pass it and sets it to
    the true count at the end, and it draws at 80 columns when the terminal reports no size."""

    def __init__(self, name: str, quiet: bool, file=None):
        self.name, self.quiet, self.bar = name[:32], quiet, None
        self.file = file or sys.stderr

    def update(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm
            cols = shutil.get_terminal_size((0, 0)).columns
            self.bar = tqdm(total=total, initial=done, unit="frame", desc=self.name, file=self.file,
                            disable=self.quiet, ncols=cols if cols > 0 else 80, dynamic_ncols=cols > 0,
                            leave=True, mininterval=0.5)
        else:
            if self.bar.total is not None and done > self.bar.total:
                self.bar.total = done
            self.bar.update(done - self.bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            if exc[0] is None and self.bar.total != self.bar.n:
                self.bar.total = self.bar.n  # a container's estimate misses on VFR: end at the true count
                self.bar.refresh()
            self.bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
