"""Grow a trained model into a larger config that computes the same function, to train on from there.

    python -m gendrpix_video.training.grow --init default --config wide-grid --out runs/grid0.safetensors

Supported: adding the input-grid planes (`lr_grid`: the new inputs of `conv_in` start at zero), the
scale embedding (`scale_embed`: its last layer starts at zero) and the clean-source contexts
(`source_contexts`: copies of c_pos and c_neg), so the grown model restores every frame exactly as
the original, for every source, until training gives them weight.
A run from scratch would cost the original's GPU-hours again.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..configs import get_config
from ..loading import load_model
from ..model import GenDRPix, zero_scale_embedding
from ..weights import save_weights


def grow(model: GenDRPix, config_name: str) -> GenDRPix:
    """`model` in config `config_name` (the same network plus input-grid planes and/or the scale
    embedding), same outputs."""
    new = get_config(config_name)
    old = model.config
    same = new.replace(name=old.name, lr_grid=old.lr_grid, in_channels=old.in_channels,
                       scale_embed=old.scale_embed, source_contexts=old.source_contexts,
                       description=old.description)
    if (same != old or new.lr_grid < old.lr_grid or new.scale_embed < old.scale_embed
            or new.source_contexts < old.source_contexts):
        raise ValueError(f"config {config_name} is not {old.name} with input-grid planes, a scale "
                         "embedding or clean-source contexts")
    grown = GenDRPix(new).to(model.device, torch.float32)
    state = {k: v.float() for k, v in model.state_dict().items()}
    w = state["unet.conv_in.weight"]  # out x (3 x 64) x 3 x 3, unshuffle order: channel-major
    extra = torch.zeros(w.shape[0], new.in_channels - w.shape[1], *w.shape[2:], device=w.device)
    state["unet.conv_in.weight"] = torch.cat([w, extra], 1)
    if new.source_contexts and not old.source_contexts:  # clean sources start from the same contexts
        for name in ("c_pos", "c_neg"):
            state[f"{name}_clean"] = state[name].clone()
    missing, _ = grown.load_state_dict(state, strict=False)
    assert all(k.startswith("unet.class_embedding.") for k in missing), missing
    if missing:
        zero_scale_embedding(grown)
    grown.scale_range = model.scale_range
    grown.default_detail = model.default_detail
    grown.metadata = {"provenance": {**model.metadata.get("provenance", {}),
                                     "grown": {"from": old.name, "to": new.name}},
                      "license": model.metadata.get("license", "unspecified")}
    return grown.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gendrpix-video grow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", required=True, help="model name or weights file to grow")
    p.add_argument("--config", required=True, help="the larger config (e.g. wide-grid, wide-scale, wide-source)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        model = load_model(args.init, device="cpu", dtype=torch.float32)
        grown = grow(model, args.config)
    except (KeyError, ValueError, OSError) as e:
        print(f"gendrpix-video grow: {e}", file=sys.stderr)
        return 2
    save_weights(grown, args.out, scale_range=grown.scale_range)
    print(f"{args.out}: {grown.config.name}, same outputs as {args.init}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
