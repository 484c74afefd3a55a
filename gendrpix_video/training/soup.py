"""Weight averaging ("model soup") of two checkpoints of one config.

    python -m gendrpix_video.training.soup A.safetensors B.safetensors --weight 0.7 --out soup.safetensors

Writes weight * A + (1 - weight) * B. Two fine-tunes from a common starting point (here the Stage II
model and a Stage I continuation trained from it) average into a model between them on the
fidelity/naturalness trade-off, often better than either end: measured with `gendrpix-video eval`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..model import build_model
from ..weights import WeightsError, load_weights, save_weights


def average(a, b, weight: float):
    """A new model with weight * a + (1 - weight) * b; the two must share a config."""
    if a.config != b.config:
        raise ValueError(f"cannot average configs {a.config.name!r} and {b.config.name!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    sa, sb = a.state_dict(), b.state_dict()
    m = build_model(a.config)
    m.load_state_dict({k: weight * sa[k].float() + (1 - weight) * sb[k].float() for k in sa})
    m.scale_range = a.scale_range
    m.default_detail = a.default_detail
    pa = a.metadata.get("provenance", {})
    pb = b.metadata.get("provenance", {})
    m.metadata = {"provenance": {"trained": bool(pa.get("trained") and pb.get("trained")),
                                 "soup": {"weight_a": weight, "a": pa, "b": pb}},
                  **({"license": a.metadata["license"]} if "license" in a.metadata else {})}
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gendrpix_video.training.soup", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--weight", type=float, default=0.5, help="share of A (0..1)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--license", help="licence text for the metadata (default: A's)")
    args = ap.parse_args(argv)
    try:
        a = load_weights(args.a, dtype=torch.float32)
        b = load_weights(args.b, dtype=torch.float32)
        m = average(a, b, args.weight)
    except (WeightsError, ValueError) as e:
        print(f"soup: error: {e}", file=sys.stderr)
        return 2
    save_weights(m, args.out, dtype=torch.float16, license=args.license)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
