"""The weights file: one safetensors file with the tensors and, in its metadata, all that is needed
to rebuild and trust the model (config, scale range, provenance, licence).

Tensor names: the UNet's under diffusers' `UNet2DConditionModel` key names (no prefix, so a diffusers
checkpoint of a matching config loads key for key), plus `c_pos` and `c_neg` (and `c_pos_clean`,
`c_neg_clean` for configs with clean-source contexts).
Another source's network (`GenDRPix.source_deltas`, e.g. "clean") travels as a weight delta over
these tensors, 4-bit per output channel for tensors of two or more dimensions (`source.NAME.KEY.q4`,
two values a byte, and `source.NAME.KEY.scale`), fp16 otherwise (`source.NAME.KEY`); metadata
`sources` lists them with their provenance. A delta is a fraction of the network's size where a
second network would double the package.
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
    """The stored tensors: the UNet's (without prefix), the contexts and the refiner's (`refine.`)."""
    sd = {k: v for k, v in model.unet.state_dict().items()}
    for name in model.context_names():
        sd[name] = getattr(model, name).detach()
    if model.refine is not None:
        sd.update({f"{REFINE_PREFIX}{k}": v for k, v in model.refine.state_dict().items()})
    return sd


def state_name(model: GenDRPix, key: str) -> str:
    """A stored tensor's name in the model's state dict."""
    return key if key in model.context_names() or key.startswith(REFINE_PREFIX) else f"unet.{key}"


DELTA_PREFIX = "source."
REFINE_PREFIX = "refine."
_Q4 = 7  # 4-bit symmetric levels: -7..7, stored +8 in a nibble


def pack_delta(delta: torch.Tensor, exact: bool = False) -> dict[str, torch.Tensor]:
    """One tensor's delta as stored: 4-bit with a scale per output channel (2+ dimensions), else
    fp16; `exact` (a source's own refiner: small, and unlike a fine-tune not close to the base's) fp16."""
    d = delta.detach().float().cpu()
    if d.ndim < 2 or exact:
        return {"": d.half()}
    m = d.reshape(d.shape[0], -1)
    scale = (m.abs().amax(1, keepdim=True) / _Q4).clamp_min(1e-12)
    q = (torch.round(m / scale).clamp(-_Q4, _Q4) + 8).to(torch.uint8)
    if q.shape[1] % 2:
        q = torch.cat([q, torch.full((q.shape[0], 1), 8, dtype=torch.uint8)], 1)
    return {".q4": q[:, 0::2] | (q[:, 1::2] << 4), ".scale": scale[:, 0].half()}


def unpack_delta(parts: dict[str, torch.Tensor], shape: torch.Size) -> torch.Tensor:
    if "" in parts:
        return parts[""].float().reshape(shape)
    q, scale = parts[".q4"], parts[".scale"].float()
    vals = torch.stack([q & 15, q >> 4], -1).reshape(q.shape[0], -1).float() - 8
    n = math.prod(shape[1:])
    return (vals[:, :n] * scale[:, None]).reshape(shape)


def packed_shapes(shape: torch.Size, exact: bool = False) -> dict[str, tuple]:
    """The stored tensors of one delta (suffix -> shape), as `pack_delta` writes them."""
    if len(shape) < 2 or exact:
        return {"": tuple(shape)}
    n = math.prod(shape[1:])
    return {".q4": (shape[0], (n + 1) // 2), ".scale": (shape[0],)}


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
    sources = {}
    for src, delta in model.source_deltas.items():
        for k, d in delta.items():
            k = k.removeprefix("unet.")  # file names: the UNet's without prefix, as above
            for suffix, t in pack_delta(d, exact=k.startswith(REFINE_PREFIX)).items():
                tensors[f"{DELTA_PREFIX}{src}.{k}{suffix}"] = t.contiguous()
        sources[src] = model.metadata.get("sources", {}).get(src, {})
    prov = dict(model.metadata.get("provenance", {}))
    prov.update(provenance or {})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_name": model.config.name,
        "config": model.config.to_json(),
        "scale_range": json.dumps(list(scale_range or model.scale_range)),
        "default_detail": json.dumps(float(default_detail if default_detail is not None else model.default_detail)),
        "refine_strength": json.dumps(float(model.refine_strength)),
        "provenance": json.dumps(prov, sort_keys=True),
        "license": license or model.metadata.get("license", "unspecified"),
    }
    if sources:
        meta["sources"] = json.dumps(sources, sort_keys=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    # safetensors creates the file owner-only; a weights file is shared like any other output
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
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
    base = {k: v.shape for k, v in model_tensors(model).items()}
    try:
        sources = json.loads(meta.get("sources", "{}"))
        if not isinstance(sources, dict) or not all(isinstance(v, dict) for v in sources.values()):
            raise ValueError("sources must map a source to its description")
        for src, v in sources.items():
            d = v.get("default_detail")
            if d is not None and not (isinstance(d, (int, float)) and not isinstance(d, bool) and 0 <= d <= 4):
                raise ValueError(f"source {src}'s default_detail must be in [0, 4], got {d!r}")
            r = v.get("refine_strength")
            if r is not None and not (isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r <= 2):
                raise ValueError(f"source {src}'s refine_strength must be in [0, 2], got {r!r}")
    except ValueError as e:
        raise WeightsError(f"{path}: bad metadata: {e}") from None
    # A source's delta covers some of the network's tensors, each stored as `packed_shapes` says.
    delta_keys: dict[str, dict[str, dict[str, str]]] = {s: {} for s in sources}
    expected = dict(base)
    stored = {f"{DELTA_PREFIX}{src}.{k}{suffix}": (src, k, suffix, pshape)
              for src in sources for k, shape in base.items()
              for suffix, pshape in packed_shapes(shape, k.startswith(REFINE_PREFIX)).items()}
    for name in header:
        if name in stored:
            src, k, suffix, pshape = stored[name]
            expected[name] = torch.Size(pshape)
            delta_keys[src].setdefault(k, {})[suffix] = name
    for src, keys in delta_keys.items():
        if not keys:
            raise WeightsError(f"{path}: metadata lists source {src!r} but the file holds no delta for it")
        for k, parts in keys.items():
            if set(parts) != set(packed_shapes(base[k], k.startswith(REFINE_PREFIX))):
                raise WeightsError(f"{path}: incomplete {src!r} delta for tensor {k}")
    check_tensors(path, header, expected, cfg.name)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: unreadable safetensors file: {e}") from None
    model = build_model(cfg, device="cpu")
    contexts = model.context_names()
    model.unet.load_state_dict({k: v for k, v in tensors.items()
                                if k in base and k not in contexts and not k.startswith(REFINE_PREFIX)}, strict=True)
    if model.refine is not None:
        model.refine.load_state_dict({k.removeprefix(REFINE_PREFIX): v for k, v in tensors.items()
                                      if k.startswith(REFINE_PREFIX)}, strict=True)
    with torch.no_grad():
        for name in contexts:
            getattr(model, name).copy_(tensors[name])
    if dtype is None:
        dtype = tensors["c_pos"].dtype
    try:
        sr = tuple(float(v) for v in json.loads(meta.get("scale_range", "[1, 4]")))
        prov = json.loads(meta.get("provenance", "{}"))
        detail = float(json.loads(meta.get("default_detail", "1")))
        strength = float(json.loads(meta.get("refine_strength", "1")))
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: bad metadata: {e}") from None
    if not (math.isfinite(detail) and 0 <= detail <= 4):
        raise WeightsError(f"{path}: bad metadata: default_detail must be in [0, 4], got {detail}")
    if not (math.isfinite(strength) and 0 <= strength <= 2):
        raise WeightsError(f"{path}: bad metadata: refine_strength must be in [0, 2], got {strength}")
    model.scale_range = sr
    model.default_detail = detail
    model.refine_strength = strength
    model.metadata = {"provenance": prov, "license": meta.get("license", "unspecified"), "path": str(path),
                      "format_version": meta.get("format_version")}
    if sources:
        model.metadata["sources"] = sources
        # the state dict's names, as the twin network loads them
        name_of = {k: state_name(model, k) for k in base}
        model.source_deltas = {
            src: {name_of[k]: unpack_delta({sfx: tensors[n] for sfx, n in parts.items()}, base[k])
                  for k, parts in keys.items()}
            for src, keys in delta_keys.items()}
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
