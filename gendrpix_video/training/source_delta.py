"""Give a model a second network for clean sources, as a weight delta in its own file.

    python -m gendrpix_video.training.source_delta --base default --from WS5FL.safetensors \\
        --to FLC4.safetensors --out runs/default_src.safetensors
    python -m gendrpix_video.training.source_delta --base default --from default --continues \\
        --stage RUN1.safetensors --to RUN2.safetensors --out runs/default_src.safetensors
    python -m gendrpix_video.training.source_delta --base NEW.safetensors --rebase default \\
        --out runs/new_src.safetensors

The second form: runs that continued the base's own clean network (saved by `for_source`), so the
difference is taken from the base's network for any source and the source's stages go on. The
third: a new network for any source (NEW) keeps the clean network of another file (`--rebase`),
now stored as a delta over NEW, with that network's stages.

The clean network is `base + (to - from)`: `to` is `from` trained further on clean batches alone,
so the difference holds what clean input gained (sharpening) and what it cost (no denoising). In a
mixed run one set of weights serves both and clean input gains little; told apart (`restore(...,
source="clean")`), each source gets its own. The delta is stored 4-bit per output channel
(`weights.pack_delta`): measured on the real-input set's clean x4 input it costs 0.01 dB against the
full delta, at a quarter of the network's size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..loading import load_model
from ..weights import WeightsError, save_weights


def add_source(base, src_from, src_to, source: str = "clean", note: str = "", stages=(), continues=False):
    """`base` with `source`'s network set to base + (to - from) (all three of one config).

    The source's metadata lists the training stages of its network: with `continues` (the run
    started from `base`'s own network for `source`) the base's stages first, then the provenance
    of each of `stages` (models between that start and `to`), then `to`'s own."""
    if not (base.config == src_from.config == src_to.config):
        raise ValueError(f"configs differ: base {base.config.name}, from {src_from.config.name}, "
                         f"to {src_to.config.name}")
    a, b = src_from.state_dict(), src_to.state_dict()
    delta = {k: (b[k].float() - a[k].float()).cpu() for k in a if not torch.equal(a[k], b[k])}
    old = base.metadata.get("sources", {}).get(source, {})
    if continues and not old.get("stages"):
        raise ValueError(f"the base has no stages for source {source!r} to continue")
    lineage = (list(old.get("stages", [])) if continues else []) + [
        {"model": _run_name(m), **m.metadata.get("provenance", {})} for m in (*stages, src_to)]
    base.source_deltas = {**base.source_deltas, source: delta}
    base.metadata = {**base.metadata, "sources": {**base.metadata.get("sources", {}), source: {
        "delta": "over this file's network, 4-bit per output channel (weights.pack_delta)",
        "made_by": "python -m gendrpix_video.training.source_delta",
        "from": str(src_from.metadata.get("path")), "to": str(src_to.metadata.get("path")), "note": note,
        "gpu_minutes": round(sum(st.get("gpu_minutes", 0) for st in lineage), 1), "stages": lineage}}}
    base.invalidate()
    return base


def rebase_source(base, old, source: str = "clean", note: str = ""):
    """`base` with `old`'s network for `source` (its weights as `old.for_source` builds them, its
    stages and the detail it runs at by default) stored as a delta over `base`'s own network."""
    if source not in getattr(old, "source_deltas", {}):
        raise ValueError(f"{old.metadata.get('path')} has no network for source {source!r}")
    twin, _ = old.for_source(source)
    meta = old.metadata["sources"][source]
    base = add_source(base, base, twin, source=source, note=note or meta.get("note", ""))
    entry = base.metadata["sources"][source]
    # The network keeps the detail it ran at there (the old file's default, unless it had its own).
    entry.update(stages=meta.get("stages", []), gpu_minutes=meta.get("gpu_minutes"),
                 rebased_from=str(old.metadata.get("path")), default_detail=twin.default_detail)
    return base


def _run_name(model) -> str:
    """A training run's name: the folder of its weights (train.py writes OUT/model.safetensors)."""
    return Path(str(model.metadata.get("path", "?"))).parent.name or "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gendrpix_video.training.source_delta", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="model name or weights file that gets the source")
    p.add_argument("--from", dest="src_from", help="weights the clean run started from")
    p.add_argument("--to", dest="src_to", help="weights of the clean run")
    p.add_argument("--rebase", metavar="MODEL",
                   help="instead of --from/--to: MODEL's network for the source, as a delta over --base")
    p.add_argument("--source", default="clean", choices=["clean"])
    p.add_argument("--note", default="", help="a line for the source's metadata")
    p.add_argument("--continues", action="store_true",
                   help="the clean run started from --base's own network for the source: keep its stages")
    p.add_argument("--stage", action="append", default=[], metavar="WEIGHTS",
                   help="a model between the run's start and --to (its provenance is listed; repeatable)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if bool(a.rebase) == bool(a.src_from and a.src_to):
        p.error("give either --from and --to, or --rebase")
    try:
        if a.rebase:
            base, old = (load_model(x, device="cpu", dtype=torch.float32) for x in (a.base, a.rebase))
            base = rebase_source(base, old, source=a.source, note=a.note)
        else:
            models = [load_model(x, device="cpu", dtype=torch.float32) for x in (a.base, a.src_from, a.src_to)]
            stages = [load_model(x, device="meta") for x in a.stage]
            base = add_source(*models, source=a.source, note=a.note, stages=stages, continues=a.continues)
    except (WeightsError, KeyError, ValueError, OSError) as e:
        print(f"source_delta: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    save_weights(base, a.out, dtype=torch.float16)
    print(f"{a.out}: {base.config.name} with source {a.source} ({len(base.source_deltas[a.source])} tensors "
          "differ)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
