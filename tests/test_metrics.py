"""Y-PSNR / SSIM against scikit-image's reference implementations, and the flicker index."""

import pytest
import torch

from gendrpix_video.training import metrics as M


def _pair(seed=0, n=2, h=48, w=40):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.interpolate(torch.rand(n, 3, h // 4, w // 4, generator=g),
                                        size=(h, w), mode="bicubic").clamp(0, 1)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


def _y_np(x):
    # MATLAB rgb2ycbcr luma on [0,1] RGB, written out independently
    r, g, b = x[0].double().numpy(), x[1].double().numpy(), x[2].double().numpy()
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def test_psnr_y_and_ssim_y_match_skimage():
    import skimage.metrics as skm
    a, b = _pair()
    ours_p = M.psnr_y(a, b, border=4)
    ours_s = M.ssim_y(a, b, border=4)
    for i in range(a.shape[0]):
        ya, yb = _y_np(a[i])[4:-4, 4:-4], _y_np(b[i])[4:-4, 4:-4]
        ref_p = skm.peak_signal_noise_ratio(ya, yb, data_range=255)
        ref_s = skm.structural_similarity(ya, yb, data_range=255, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False)
        assert abs(float(ours_p[i]) - ref_p) < 1e-6
        assert abs(float(ours_s[i]) - ref_s) < 1e-6


def test_identity_and_order():
    a, b = _pair(1)
    assert torch.allclose(M.ssim_y(a, a), torch.ones(2, dtype=torch.float64))
    assert torch.isinf(M.psnr_y(a, a)).all()
    worse = (a + 0.15 * torch.randn(a.shape, generator=torch.Generator().manual_seed(9)))
    worse = worse.clamp(0, 1)  # 3x the noise of b
    assert (M.psnr_y(worse, a) < M.psnr_y(b, a)).all()
    assert (M.ssim_y(worse, a) < M.ssim_y(b, a)).all()


def test_rgb_psnr():
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.1)
    assert abs(float(M.psnr(a, b)) - 20.0) < 1e-5


def test_flicker_index():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 16, 16, generator=g).expand(6, -1, -1, -1)
    steady = base + 0.01 * torch.randn(6, 3, 16, 16, generator=g)
    jumpy = base + 0.03 * torch.randn(6, 3, 16, 16, generator=g)
    assert M.flicker_index(steady, steady) == pytest.approx(1.0)
    assert M.flicker_index(jumpy, steady) > 2
    assert M.flicker_index(steady, jumpy) < 0.5
