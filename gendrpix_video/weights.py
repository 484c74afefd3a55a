"""The weights file: one safetensors file with the tensors and, in its metadata, all that is needed
to rebuild and trust the model (config, scale range, provenance, licence).

Tensor names: the UNet's under diffusers' `UNet2DConditionModel` key names (no prefix, so a diffusers
checkpoint of a matching config loads key for key), plus `c_pos` and `c_neg` (and `c_pos_clean`,
`c_neg_clean` for configs with clean-source contexts).
Only safetensors is read: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

from .configs import CONFIGS, UNetConfig
from .model import GenDRPix, build_model

FORMAT = "gendrpix-video"
FORMAT_VERSION = "1"
CONTEXT_KEYS = ("c_pos", "c_neg", "c_pos_clean", "c_neg_clean")
_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and the problem."""


def model_tensors(model: GenDRPix) -> dict[str, torch.Tensor]:
    sd = {k: v for k, v in model.unet.state_dict().items()}
    for name in model.context_names():
        sd[name] = getattr(model, name).detach()
    return sd


def save_weights(model: GenDRPix, path: str | os.PathLike, *, provenance: dict | None = None,
                 license: str | None = None, scale_range: tuple[float, float] | None = None,
                 dtype: torch.dtype | None = None, default_detail: float | None = None) -> Path:
    """Write `model` to `path` (atomically). `dtype` converts floating tensors (e.g. fp16 to ship);
    `default_detail` (else the model's own) is the detail `restore` uses when none is given."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for k, v in model_tensors(model).items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    prov = dict(model.metadata.get("provenance", {}))
    prov.update(provenance or {})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_name": model.config.name,
        "config": model.config.to_json(),
        "scale_range": json.dumps(list(scale_range or model.scale_range)),
        "default_detail": json.dumps(float(default_detail if default_detail is not None else model.default_detail)),
        "provenance": json.dumps(prov, sort_keys=True),
        "license": license or model.metadata.get("license", "unspecified"),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_header(path: Path) -> dict:
    """Parse and check the safetensors header ourselves, for messages that name the problem."""
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a weights file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000 or n + 8 > size:
            # A real header fits in the file; anything else is another format or a cut-off header.
            raise WeightsError(f"{path}: not a safetensors file (bad header length), or truncated")
        raw = f.read(n)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise WeightsError(f"{path}: not a safetensors file (header is not JSON)") from None
    end = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        try:
            end = max(end, int(v["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise WeightsError(f"{path}: corrupt safetensors header at tensor {k!r}") from None
    if 8 + n + end > size:
        raise WeightsError(f"{path}: truncated: the header promises {8 + n + end} bytes, the file has {size}")
    return header


def _config_from_metadata(path: Path, meta: dict) -> UNetConfig:
    name = meta.get("config_name")
    if meta.get("format") != FORMAT or not name:
        raise WeightsError(f"{path}: no gendrpix-video metadata (config); for a bare diffusers UNet "
                           "checkpoint use gendrpix_video.weights.load_diffusers_unet(model, path)")
    if name not in CONFIGS:
        raise WeightsError(f"{path}: unknown config {name!r} (known: {', '.join(sorted(CONFIGS))})")
    try:
        cfg = UNetConfig.from_json(meta["config"]) if "config" in meta else CONFIGS[name]
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: bad config in metadata: {e}") from None
    if cfg.name != name:
        raise WeightsError(f"{path}: config name {name!r} does not match its config ({cfg.name!r})")
    return cfg


def check_tensors(path: Path, header: dict, expected: dict[str, torch.Size], cfg_name: str) -> None:
    names = set(header) - {"__metadata__"}
    missing = sorted(set(expected) - names)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise WeightsError(f"{path}: missing {len(missing)} tensors for config {cfg_name!r}: "
                           f"{', '.join(missing[:3])}{more}")
    extra = sorted(names - set(expected))
    if extra:
        raise WeightsError(f"{path}: unexpected tensors for config {cfg_name!r}: {', '.join(extra[:3])}")
    for k, shape in expected.items():
        got = tuple(header[k]["shape"])
        if got != tuple(shape):
            raise WeightsError(f"{path}: tensor {k} has shape {got}, config {cfg_name!r} expects {tuple(shape)}")


def load_weights(path: str | os.PathLike, device="cpu", dtype: torch.dtype | None = None) -> GenDRPix:
    """Build the model a weights file describes and load it; every failure is a WeightsError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    header = read_header(path)
    meta = header.get("__metadata__") or {}
    cfg = _config_from_metadata(path, meta)
    model = build_model(cfg, device="meta")
    expected = {k: v.shape for k, v in model_tensors(model).items()}
    check_tensors(path, header, expected, cfg.name)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: unreadable safetensors file: {e}") from None
    model = build_model(cfg, device="cpu")
    contexts = model.context_names()
    model.unet.load_state_dict({k: v for k, v in tensors.items() if k not in contexts}, strict=True)
    with torch.no_grad():
        for name in contexts:
            getattr(model, name).copy_(tensors[name])
    if dtype is None:
        dtype = tensors["c_pos"].dtype
    try:
        sr = tuple(float(v) for v in json.loads(meta.get("scale_range", "[1, 4]")))
        prov = json.loads(meta.get("provenance", "{}"))
        detail = float(json.loads(meta.get("default_detail", "1")))
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: bad metadata: {e}") from None
    if not (math.isfinite(detail) and 0 <= detail <= 4):
        raise WeightsError(f"{path}: bad metadata: default_detail must be in [0, 4], got {detail}")
    model.scale_range = sr
    model.default_detail = detail
    model.metadata = {"provenance": prov, "license": meta.get("license", "unspecified"), "path": str(path),
                      "format_version": meta.get("format_version")}
    return model.to(device=device, dtype=dtype).eval()


def load_diffusers_unet(model: GenDRPix, path: str | os.PathLike) -> GenDRPix:
    """Load a diffusers-layout UNet safetensors file (keys without prefix) into `model.unet`."""
    from safetensors.torch import load_file

    path = Path(path)
    header = read_header(path)
    expected = dict(model.unet.state_dict().items())
    check_tensors(path, {k: v for k, v in header.items() if k not in CONTEXT_KEYS},
                  {k: v.shape for k, v in expected.items()}, model.config.name)
    model.unet.load_state_dict(load_file(str(path), device=str(model.device)), strict=False)
    return model
