"""Shared test set-up: GPU tests carry the `gpu` marker and skip cleanly without CUDA."""

import pytest
import torch
import torch.nn.functional as F

from gendrpix_video.training.teacher import Teacher, register_teacher


class BicubicX4(torch.nn.Module):
    """A stand-in x4 teacher (bicubic), so training and eval tests need no model package."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False) * self.w


register_teacher("test-bicubic", lambda device="cpu", dtype=torch.float32, **_: Teacher(
    BicubicX4().to(device, dtype), 4, "test-bicubic"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
