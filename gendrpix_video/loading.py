"""`load_model` and `list_models`: from a name of a shipped model, or a path, to a ready network."""

from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .model import DEFAULT_DETAIL, SOURCES, GenDRPix, source_default_detail, source_refine_strength
from .policy import inference_dtype, pick_device
from .weights import WeightsError, load_weights, read_header

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_NAME = "default"


@dataclass(frozen=True)
class ModelInfo:
    """A shipped model, read from its weights file's header (no tensors loaded)."""
    name: str
    path: Path
    config: str
    default_detail: float
    size_bytes: int
    sources: tuple[str, ...] = ("any",)
    source_details: dict[str, float] = field(default_factory=dict)  # sources with a default of their own
    refiner: dict[str, float] = field(default_factory=dict)  # sources whose network runs the refiner, its strength


def shipped_models() -> dict[str, Path]:
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def list_models(pattern: str = "*") -> list[ModelInfo]:
    """The shipped models whose name matches `pattern` (fnmatch, as timm's `list_models`), by name."""
    out = []
    for name, path in shipped_models().items():
        if not fnmatch.fnmatch(name, pattern):
            continue
        meta = read_header(path).get("__metadata__", {})
        sources = {"sources": json.loads(meta.get("sources", "{}"))}
        own = {s: source_default_detail(sources, s, math.nan) for s in sources["sources"]}
        refiner = {}
        if json.loads(meta.get("config", "{}")).get("refiner"):
            base = float(json.loads(meta.get("refine_strength", "1")))
            refiner = {s: source_refine_strength(sources, s, base) for s in model_sources(meta)}
        out.append(ModelInfo(name, path, meta.get("config_name", "?"),
                             float(json.loads(meta.get("default_detail", str(DEFAULT_DETAIL)))),
                             path.stat().st_size, model_sources(meta),
                             {s: d for s, d in own.items() if not math.isnan(d)},
                             {s: v for s, v in refiner.items() if v > 0}))
    return out


def model_sources(meta: dict) -> tuple[str, ...]:
    """The sources a weights file's metadata says its model restores (see `GenDRPix.sources`)."""
    extra = set(json.loads(meta.get("sources", "{}")))
    if json.loads(meta.get("config", "{}")).get("source_contexts"):
        extra.add("clean")
    return tuple(s for s in SOURCES if s == "any" or s in extra)


def resolve(name_or_path: str | os.PathLike | None) -> Path:
    """The weights file for a shipped name or a path (None: the shipped default)."""
    name = DEFAULT_NAME if name_or_path is None else name_or_path
    shipped = shipped_models()
    if isinstance(name, str) and name in shipped:
        return shipped[name]
    if name == DEFAULT_NAME:
        raise WeightsError(f"the shipped default model is missing from {WEIGHTS_DIR}; reinstall gendrpix-video")
    path = Path(name)
    if not path.exists() and path.suffix != ".safetensors" and os.sep not in str(name):
        raise WeightsError(f"unknown model {str(name)!r}: not a shipped model "
                           f"({', '.join(shipped) or 'none shipped'}) and no such file")
    return path


def load_model(name_or_path: str | os.PathLike | None = None, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None, channels_last: bool | None = None) -> GenDRPix:
    """A model ready for `restore`: None or 'default' is the shipped default model.

    device and dtype default to the inference policy's (policy.py): CUDA with bf16 when present.
    """
    path = resolve(name_or_path)
    model = load_weights(path)
    model.metadata["source"] = str(path)  # what a resumed job checks it continues with
    return prepare_model(model, device, dtype, channels_last)


def prepare_model(model: GenDRPix, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  channels_last: bool | None = None) -> GenDRPix:
    """Ready a model built or loaded in memory for `restore`, with `load_model`'s defaults."""
    device = pick_device(device)
    dtype = dtype or inference_dtype(device)
    model = model.to(device=device, dtype=dtype)
    if channels_last if channels_last is not None else device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.eval().requires_grad_(False)
    model.conditioning()  # constants once, at load, not on the first frame
    return model
