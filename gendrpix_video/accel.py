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
    "fa4": None,  # FlashAttention-4 (CuTe DSL; Hopper and Blackwell), optional package flash-attn-4
}
COMPILE = ("none", "default", "max-autotune-no-cudagraphs", "reduce-overhead")


def attention(backend: str = "auto"):
    """Context manager that pins scaled-dot-product attention to one backend ('auto': torch picks)."""
    if backend not in ATTENTION:
        raise ValueError(f"unknown attention backend {backend!r}; choose from {', '.join(ATTENTION)}")
    if backend == "fa4":
        return _swap_self_attention(_fa4_attention())
    b = ATTENTION[backend]
    return contextlib.nullcontext() if b is None else sdpa_kernel([b])


def _fa4_bshd(q, k, v):
    from flash_attn.cute import flash_attn_func
    o = flash_attn_func(q, k, v)
    return o[0] if isinstance(o, tuple) else o


def _fa4_attention():
    try:
        import flash_attn.cute  # noqa: F401
    except ImportError as e:
        raise RuntimeError("attention backend 'fa4' needs the optional package flash-attn-4 "
                           "(pip install --pre flash-attn-4) and a Hopper or Blackwell GPU") from e
    op = opaque_attention("fa4_attention", _fa4_bshd)

    def fa4(q, k, v):
        if q.dtype not in (torch.float16, torch.bfloat16) or not q.is_cuda:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return op(q, k, v)
    return fa4


_OPAQUE: dict = {}


def opaque_attention(name: str, bshd_fn):
    """Wrap `bshd_fn(q, k, v)` (B x tokens x heads x dim, a kernel torch.compile cannot trace) as a
    torch custom op taking and returning heads-first tensors.

    As an opaque op it does not break the compiled graph, so inductor still fuses the norms and
    projections around it (a plain call cost 29 ms of compile's gain on sd21 at 4K). The
    heads-first tensors are transposed views of the B x tokens x heads x dim layout, so the
    transposes move no memory. Registered once per name: a name already registered must come with
    the same kernel.
    """
    if name in _OPAQUE:
        if _OPAQUE[name][1] is not bshd_fn:
            raise ValueError(f"opaque attention {name!r} is already registered with another kernel")
        return _OPAQUE[name][0]

    @torch.library.custom_op(f"gendrpix::{name}", mutates_args=())
    def op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return bshd_fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    @op.register_fake
    def _(q, k, v):
        b, h, n, _ = q.shape
        return q.new_empty(b, n, h, v.shape[-1]).transpose(1, 2)

    _OPAQUE[name] = (op, bshd_fn)
    return op


@contextlib.contextmanager
def _swap_self_attention(fn):
    from . import unet
    old = unet.set_self_attention(fn)
    try:
        yield
    finally:
        unet.set_self_attention(old)


def compile_model(model, mode: str = "default"):
    """Compile the UNet in place (state-dict keys unchanged). 'reduce-overhead' adds CUDA graphs,
    which pay off when kernels are small (the shipped configs) and the frame size is fixed."""
    if mode not in COMPILE:
        raise ValueError(f"unknown compile mode {mode!r}; choose from {', '.join(COMPILE)}")
    if mode != "none":
        model.unet.compile(mode=mode, dynamic=False, fullgraph=False)
        model.compile_mode = mode  # another source's network, built later, is compiled alike
        model.invalidate()
    return model
