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
