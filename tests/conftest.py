"""Shared test set-up: fixtures every module can use (a tiny saved model, synthetic clips, a
stand-in teacher); GPU tests carry the `gpu` marker and skip cleanly without CUDA."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gendrpix_video.training.teacher import Teacher, register_teacher
from video_fixtures import make_clip


class BicubicX4(torch.nn.Module):
    """A stand-in x4 teacher (bicubic), so training and eval tests need no model package."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False) * self.w


register_teacher("test-bicubic", lambda device="cpu", dtype=torch.float32, **_: Teacher(
    BicubicX4().to(device, dtype), 4, "test-bicubic"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny saved model: what --model points the tests at."""
    from gendrpix_video import build_model, save_weights
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_weights(build_model("tiny"), path)
    return path


@pytest.fixture(scope="session")
def tiny_source_model(tmp_path_factory) -> Path:
    """A tiny saved model with clean-source contexts: its output layer is not zero and its clean
    contexts differ from the any-source ones, so `source="clean"` changes pixels."""
    from gendrpix_video import build_model, save_weights
    gen = torch.Generator().manual_seed(0)
    m = build_model("tiny-source")
    with torch.no_grad():
        m.unet.conv_out.weight.copy_(torch.randn(m.unet.conv_out.weight.shape, generator=gen) * 0.05)
        for c in (m.c_pos_clean, m.c_neg_clean):
            c.add_(torch.randn(c.shape, generator=gen))
    path = tmp_path_factory.mktemp("model") / "tiny-source.safetensors"
    save_weights(m, path)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Clips made once per session, by name (a cache: tests must not modify them)."""
    root = tmp_path_factory.mktemp("clips")
    cache: dict[str, Path] = {}

    def get(name: str, **kw) -> Path:
        if name not in cache:
            cache[name] = make_clip(root / name, **kw)
        return cache[name]
    return get


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
