"""Speed options must not change what the network computes."""

import pytest
import torch
import torch.nn.functional as F

from gendrpix_video import accel, build_model, restore


def _model():
    torch.manual_seed(0)
    m = build_model("tiny")
    torch.nn.init.normal_(m.unet.conv_out.weight, std=0.05)
    return m


def test_sdpa_backends_agree_on_cpu():
    m, x = _model(), torch.rand(1, 3, 24, 40)
    ref = restore(m, x, (48, 80))
    with accel.attention("math"):
        assert torch.allclose(restore(m, x, (48, 80)), ref, atol=1e-5)


def test_self_attention_swap_is_used_and_restored():
    m, x = _model(), torch.rand(1, 3, 24, 40)
    ref = restore(m, x, (48, 80))
    calls = []

    def spy(q, k, v):
        calls.append(q.shape)
        return F.scaled_dot_product_attention(q, k, v)

    with accel._swap_self_attention(spy):
        out = restore(m, x, (48, 80))
    assert calls and all(len(s) == 4 for s in calls)      # B x heads x tokens x dim
    assert torch.equal(out, ref)
    n = len(calls)
    restore(m, x, (48, 80))
    assert len(calls) == n                                   # swapped back


def test_unknown_backend_and_missing_fa4_are_clear_errors():
    with pytest.raises(ValueError, match="unknown attention backend"):
        accel.attention("fa9")
    try:
        import flash_attn.cute  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="flash-attn-4"):
            accel.attention("fa4")


def test_opaque_attention_is_exact_and_compiles_without_graph_breaks():
    """A kernel wrapped by `opaque_attention` runs as one custom op: same result, and torch.compile
    traces the whole network in one graph (fullgraph=True fails on any graph break)."""
    def bshd_sdpa(q, k, v):   # a stand-in kernel in FA4's B x tokens x heads x dim layout
        return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                              v.transpose(1, 2)).transpose(1, 2)

    op = accel.opaque_attention("test_sdpa", bshd_sdpa)
    assert accel.opaque_attention("test_sdpa", bshd_sdpa) is op
    q, k, v = (torch.randn(2, 3, 50, 16) for _ in range(3))
    assert torch.allclose(op(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-6)

    m = _model()
    z, cond = torch.randn(1, 192, 6, 10), m.conditioning()   # the UNet's input: an unshuffled frame
    ref = m.unet(z, cond, None)
    with accel._swap_self_attention(op):
        out = torch.compile(m.unet, backend="eager", fullgraph=True)(z, cond, None)
    assert torch.allclose(out, ref, atol=1e-5)
