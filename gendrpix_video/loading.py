"""`load_model`: from a name of a shipped model, or a path, to a ready network on a device."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .model import GenDRPix, build_model
from .weights import WeightsError, load_weights

log = logging.getLogger("gendrpix_video")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_NAME = "default"
# Until trained weights ship, the default is this config untrained (output equals bicubic).
UNTRAINED_DEFAULT_CONFIG = "small"


def shipped_models() -> dict[str, Path]:
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def resolve(name_or_path: str | os.PathLike | None) -> Path | None:
    """The weights file for a shipped name or a path; None for the untrained default."""
    name = DEFAULT_NAME if name_or_path is None else name_or_path
    shipped = shipped_models()
    if isinstance(name, str) and name in shipped:
        return shipped[name]
    if name == DEFAULT_NAME:
        return None
    path = Path(name)
    if not path.exists() and path.suffix != ".safetensors" and os.sep not in str(name):
        raise WeightsError(f"unknown model {str(name)!r}: not a shipped model "
                           f"({', '.join(shipped) or 'none shipped'}) and no such file")
    return path


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_model(name_or_path: str | os.PathLike | None = None, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None, channels_last: bool | None = None) -> GenDRPix:
    """A model ready for `restore`: None or 'default' is the embedded default model.

    device defaults to CUDA when present; dtype to bf16 on CUDA and fp32 on the CPU.
    """
    path = resolve(name_or_path)
    if path is None:
        log.warning("no trained default model ships yet: using the untrained %r config, "
                    "whose output equals the bicubic upscale", UNTRAINED_DEFAULT_CONFIG)
        model = build_model(UNTRAINED_DEFAULT_CONFIG)
    else:
        model = load_weights(path)
    return prepare_model(model, device, dtype, channels_last)


def prepare_model(model: GenDRPix, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  channels_last: bool | None = None) -> GenDRPix:
    """Ready a model built or loaded in memory for `restore`, with `load_model`'s defaults."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but this machine has no usable CUDA device")
    dtype = dtype or default_dtype(device)
    model = model.to(device=device, dtype=dtype)
    if channels_last if channels_last is not None else device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.eval().requires_grad_(False)
    model.conditioning()  # constants now, once, not on the first frame
    return model
