"""Training checkpoints in safetensors (never pickle): model, optimizer moments, counters.

Optimizer state tensors are stored under `opt/<param index>/<name>`; the scalar parts (param
groups, step, GPU time, history) go into the metadata as JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _flatten(prefix, module, opt, tensors, meta):
    for k, v in module.state_dict().items():
        tensors[f"{prefix}/model/{k}"] = v.detach().cpu().contiguous()
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}/opt/{idx}/{name}"] = v.detach().cpu().contiguous().reshape(v.shape)
    meta[f"{prefix}/param_groups"] = json.dumps(sd["param_groups"])


def _unflatten(prefix, module, opt, tensors, meta):
    module.load_state_dict({k[len(prefix) + 7:]: v for k, v in tensors.items() if k.startswith(f"{prefix}/model/")},
                           strict=False)
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith(f"{prefix}/opt/"):
            _, _, idx, name = k.split("/", 3)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta[f"{prefix}/param_groups"])})


def save_checkpoint(path, model, opt, state: dict, disc=None, d_opt=None, ema=None) -> None:
    tensors: dict = {}
    meta = {"state": json.dumps(state)}
    _flatten("g", model, opt, tensors, meta)
    if ema is not None:
        for k, v in ema.state_dict().items():
            tensors[f"ema/{k}"] = v.detach().cpu().contiguous()
    if disc is not None:
        # The discriminator's frozen trunk is G1, rebuilt from --init: only its head is saved.
        head = torch.nn.ModuleDict({"deep": disc.head_deep, "fine": disc.head_fine})
        _flatten("d", head, d_opt, tensors, meta)
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(path, model, opt, disc=None, d_opt=None, ema=None) -> dict:
    tensors = load_file(str(path), device=str(next(model.parameters()).device))
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    _unflatten("g", model, opt, tensors, meta)
    if disc is not None and "d/param_groups" in meta:
        head = torch.nn.ModuleDict({"deep": disc.head_deep, "fine": disc.head_fine})
        _unflatten("d", head, d_opt, tensors, meta)
    if ema is not None:
        sd = {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")}
        # A checkpoint from before the average existed: start it from the current weights.
        ema.load_state_dict(sd if sd else model.state_dict())
    model.invalidate()
    return json.loads(meta["state"])
