"""`gendrpix-video`: one entry point, one module per subcommand.

    upscale   decode -> restore -> encode, files or folders (cli/upscale.py -> video.upscale_file)
    presets   list the encoding presets (cli/presets.py)
    bench     model-only benchmark; --e2e for end to end (measure/bench.py, measure/bench_e2e.py)
    eval      quality on held-out photos (training/evaluate.py)
    eval-real quality on the real-input chains: codecs, deinterlacing, motion (training/realeval.py)
    train     train a model (training/train.py)
    info      the models that ship, the configs that can be built
"""

from __future__ import annotations

import importlib
import os
import sys

USAGE = """usage: gendrpix-video COMMAND [options]     (gendrpix-video COMMAND --help: its options)

commands:
  upscale    restore and upscale video files or folders (the main job)
  presets    list the encoding presets
  info       the shipped models and the network configs
  bench      model speed on a CUDA GPU; --e2e: decode -> model -> encode end to end
  eval       quality on held-out photos (needs the photo set: docs/evaluation.md)
  eval-real  quality on the real-input chains (needs data/realinput.npz: docs/evaluation.md)
  train      train a model

example:
  gendrpix-video upscale my_clip.mp4 -o my_clip_2160p.mkv
  gendrpix-video upscale my_clip.mp4 --height 1080 --detail 0     (quicker on a CPU)

Errors are one line; GENDRPIX_DEBUG=1 shows the traceback of an unexpected one (upscale: --debug)."""

COMMANDS = {
    "upscale": "gendrpix_video.cli.upscale",
    "presets": "gendrpix_video.cli.presets",
    "bench": "gendrpix_video.measure.bench",
    "eval": "gendrpix_video.training.evaluate",
    "eval-real": "gendrpix_video.training.realeval",
    "train": "gendrpix_video.training.train",
    "info": "gendrpix_video.cli",
}


def info(argv: list[str]) -> int:
    from ..configs import CONFIGS
    from ..loading import list_models
    from ..model import build_model, count_parameters

    print("shipped models:")
    for m in list_models():
        own = "".join(f" ({s} {d:g})" for s, d in m.source_details.items())
        refined = f"  refiner {','.join(m.refiner)}" if m.refiner else ""
        print(f"  {m.name:10} {m.config:6} {m.size_bytes / 2**20:6.1f} MiB  "
              f"default detail {m.default_detail:g}{own}  sources {','.join(m.sources)}{refined}  {m.path}")
    from ..damage import DETECTOR, load_detector

    print(f"--source auto: damage detector {DETECTOR} (threshold {load_detector()[1]:g}): "
          "a file under it gets the model's clean network, if it has one")
    print("configs:")
    for name, cfg in CONFIGS.items():
        n = count_parameters(build_model(name, device="meta"))
        print(f"  {name:6} {n / 1e6:8.2f}M  {cfg.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader of stdout went away (`gendrpix-video info | head`): stop without a traceback,
        # and point stdout at devnull so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from .. import __version__
        print(f"gendrpix-video {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"gendrpix-video: error: unknown command {cmd!r} (choose from {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 2
    if cmd == "info":
        return info(rest)
    module = importlib.import_module(COMMANDS[cmd])
    if cmd == "upscale":  # it prints its own one-line errors (and tracebacks with --debug)
        return int(module.main(rest) or 0)
    try:
        return int(module.main(rest) or 0)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # the other commands: one line, the traceback only when asked for
        if os.environ.get("GENDRPIX_DEBUG"):
            raise
        print(f"gendrpix-video: error: {cmd}: {type(e).__name__}: {' '.join(str(e).split())} "
              "(GENDRPIX_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
