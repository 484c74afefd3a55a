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
import sys

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
        print(f"  {m.name:10} {m.config:6} {m.size_bytes / 2**20:6.1f} MiB  "
              f"default detail {m.default_detail:<5g}  {m.path}")
    print("configs:")
    for name, cfg in CONFIGS.items():
        n = count_parameters(build_model(name, device="meta"))
        print(f"  {name:6} {n / 1e6:8.2f}M  {cfg.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
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
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
