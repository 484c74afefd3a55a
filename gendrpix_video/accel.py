"""Speed settings for inference on CUDA: attention backend, torch.compile, CUDA graphs.

Each is a named option so the benchmark can measure it and callers can choose; none changes results
beyond bf16 rounding.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ATTENTION = {
    "auto": None,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
COMPILE = ("none", "default", "max-autotune-no-cudagraphs", "reduce-overhead")


def attention(backend: str = "auto"):
    """Context manager that pins scaled-dot-product attention to one backend ('auto': torch picks)."""
    if backend not in ATTENTION:
        raise ValueError(f"unknown attention backend {backend!r}; choose from {', '.join(ATTENTION)}")
    b = ATTENTION[backend]
    return contextlib.nullcontext() if b is None else sdpa_kernel([b])


def compile_model(model, mode: str = "default"):
    """Compile the UNet in place (state-dict keys unchanged). 'reduce-overhead' adds CUDA graphs,
    which pay off when kernels are small (the shipped configs) and the frame size is fixed."""
    if mode not in COMPILE:
        raise ValueError(f"unknown compile mode {mode!r}; choose from {', '.join(COMPILE)}")
    if mode != "none":
        model.unet.compile(mode=mode, dynamic=False, fullgraph=False)
        model.invalidate()
    return model


def cuda_ready() -> None:
    """Process-wide CUDA settings for inference: cuDNN autotuning (frame sizes are fixed per clip)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
