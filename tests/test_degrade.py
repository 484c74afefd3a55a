"""Degradation pipeline: shapes, range, seeding, and the torch JPEG against PIL's libjpeg."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gendrpix_video.training import degrade as dg


def _images(n=4, size=64, seed=0):
    # smooth shapes plus texture, a stand-in for photo crops
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    x = 0.85 * x + 0.15 * torch.rand(n, 3, size, size, generator=g)
    return (x.clamp(0, 1) * 255).round() / 255


def test_shapes_range_and_scale():
    hr = _images(4, 64)
    for seed in range(4):
        d = dg.degrade(hr, torch.Generator().manual_seed(seed))
        assert 2 <= d.scale <= 4
        assert d.lr.shape == (4, 3, round(64 / d.scale), round(64 / d.scale))
        assert d.lr.min() >= 0 and d.lr.max() <= 1
        assert torch.equal(d.lr, torch.round(d.lr * 255) / 255)  # 8-bit levels
        assert d.hr is hr
    d = dg.degrade(_images(2, 96)[:, :, :, :80], torch.Generator().manual_seed(0), scale=4)
    assert d.lr.shape == (2, 3, 24, 20)


def test_seeded():
    hr = _images(3, 64)
    a = dg.degrade(hr, torch.Generator().manual_seed(7))
    b = dg.degrade(hr, torch.Generator().manual_seed(7))
    c = dg.degrade(hr, torch.Generator().manual_seed(8), scale=a.scale)
    assert a.scale == b.scale and torch.equal(a.lr, b.lr)
    assert a.lr.shape == c.lr.shape and not torch.equal(a.lr, c.lr)


def test_kernels():
    g = torch.Generator().manual_seed(0)
    k = dg.random_kernels(g, 64, sinc_prob=0.3)
    assert k.shape == (64, dg.MAX_KERNEL, dg.MAX_KERNEL)
    assert torch.allclose(k.sum((-1, -2)), torch.ones(64), atol=1e-5)
    assert torch.allclose(k, k.flip(-1, -2), atol=1e-6)  # point-symmetric: conv == correlation
    # a blur keeps a constant image constant
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(dg.filter2d(flat, k[:2]), flat, atol=1e-5)


def test_noise_seeded_and_unbiased():
    x = torch.full((8, 3, 32, 32), 0.5)
    a = dg.add_noise(x, torch.Generator().manual_seed(1))
    b = dg.add_noise(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert abs(float((a - x).mean())) < 0.01 and float((a - x).std()) > 0.001


def _pil_jpeg(x, q):
    outs = []
    for img in x:
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=q)  # PIL default: 4:2:0
        buf.seek(0)
        dec = np.asarray(Image.open(buf).convert("RGB"))
        outs.append(torch.from_numpy(dec.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(outs)


def _psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("q", [30, 60, 90])
def test_jpeg_close_to_pil(q):
    x = _images(3, 72)[:, :, :, :56]  # not a multiple of 16: exercises MCU padding
    ours = dg.jpeg(x, q)
    ref = _pil_jpeg(x, q)
    assert ours.shape == x.shape
    p = _psnr(ours, ref)
    assert p > 35, p  # measured 39-41 dB here, 48-51 dB on photos (libjpeg: integer DCT, rounding)
    # and the artefacts are of the same size: both lose about as much against the original
    assert abs(_psnr(ours, x) - _psnr(ref, x)) < 1.0


def test_jpeg_per_sample_quality():
    x = _images(2, 32)
    both = dg.jpeg(x, torch.tensor([20.0, 95.0]))
    assert torch.equal(both[0], dg.jpeg(x[:1], 20)[0])
    assert _psnr(both[1], x[1]) > _psnr(both[0], x[0])


def test_eval_degradations():
    hr = _images(2, 64)
    a = dg.realistic_eval(hr, seed=3)
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, dg.realistic_eval(hr, seed=3))
    assert not torch.equal(a, dg.realistic_eval(hr, seed=4))
    b = dg.bicubic_down(hr, 4)
    assert b.shape == (2, 3, 16, 16) and 0 <= b.min() and b.max() <= 1


def test_first_order_is_seeded_sized_and_milder():
    hr = _images(4, 64)
    a = dg.degrade_first_order(hr, torch.Generator().manual_seed(3))
    b = dg.degrade_first_order(hr, torch.Generator().manual_seed(3))
    assert torch.equal(a.lr, b.lr) and a.scale == b.scale
    assert a.lr.shape == (4, 3, round(64 / a.scale), round(64 / a.scale))
    assert torch.equal(a.lr, torch.round(a.lr * 255) / 255)

    def err(d):  # distance from a plain bicubic downscale at the same scale
        ref = torch.nn.functional.interpolate(hr, size=d.lr.shape[-2:], mode="bicubic", antialias=True)
        return float((d.lr - ref).abs().mean())
    one = [err(dg.degrade_first_order(hr, torch.Generator().manual_seed(s))) for s in range(12)]
    two = [err(dg.degrade(hr, torch.Generator().manual_seed(s))) for s in range(12)]
    assert sum(one) < sum(two)


def test_options_override_sets_ranges_and_refuses_what_does_not_fit():
    o = dg.DegradeOptions().override("noise_range=3,30").override("deblock_prob=0").override("kernel_size=9,15")
    assert o.noise_range == (3.0, 30.0) and o.deblock_prob == 0.0 and o.kernel_size == (9, 15)
    assert dg.DegradeOptions().noise_range == (1.0, 30.0)  # a copy, the defaults untouched
    for bad, why in [("noise=3,30", "unknown field"), ("scale=2,4", "unknown field"),
                     ("noise_range=3", "LO,HI"), ("noise_range=30,3", "LO,HI"),
                     ("deblock_prob=a", "expected numbers"), ("resize_prob=0.5,0.5", "3 numbers")]:
        with pytest.raises(ValueError, match=why):
            dg.DegradeOptions().override(bad)
