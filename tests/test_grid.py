"""The input-grid planes (`lr_grid` configs) and growing a trained model into them."""

import math

import pytest
import torch

from gendrpix_video.loading import load_model
from gendrpix_video.model import build_model
from gendrpix_video.padcfg import input_grid, restore
from gendrpix_video.training import grow as grow_mod
from gendrpix_video.training import train as train_mod
from gendrpix_video.weights import save_weights

from test_training import make_photo_set


def test_input_grid_gives_each_pixel_its_phase_on_the_input_grid():
    g = input_grid((3, 5), (6, 20))
    assert g.shape == (1, 4, 6, 20)
    # x2 vertically: output rows 0 and 1 sit a quarter pixel before and after input pixel 0's centre.
    u = torch.atan2(g[0, 0, :, 0], g[0, 1, :, 0]) / (2 * math.pi)
    assert torch.allclose(u[:2], torch.tensor([-0.25, 0.25]), atol=1e-6)
    # one period an input pixel: x4 horizontally repeats every 4 output pixels, rows repeat every 2
    assert torch.allclose(g[0, 2:, :, :4], g[0, 2:, :, 4:8], atol=1e-5)
    assert torch.allclose(g[0, :2, :2], g[0, :2, 2:4], atol=1e-5)
    # each plane is constant along the other axis
    assert torch.equal(g[0, 0, :, 0], g[0, 0, :, 7]) and torch.equal(g[0, 2, 0], g[0, 2, 5])


def _trained_tiny():
    torch.manual_seed(0)
    m = build_model("tiny")
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def assert_same_restores(a, b, x, cases):
    """Models `a` and `b` restore `x` alike at each (size, detail) of `cases`."""
    for size, detail in cases:
        assert torch.allclose(restore(a, x, size, detail), restore(b, x, size, detail), atol=1e-5)


def test_grown_model_restores_exactly_as_the_original_at_any_scale_and_detail(tmp_path):
    m = _trained_tiny()
    src = save_weights(m, tmp_path / "m.safetensors", default_detail=0.4)
    assert grow_mod.main(["--init", str(src), "--config", "tiny-grid", "--out", str(tmp_path / "g.safetensors")]) == 0
    a = load_model(src, device="cpu", dtype=torch.float32)
    b = load_model(tmp_path / "g.safetensors", device="cpu", dtype=torch.float32)
    assert b.config.name == "tiny-grid" and b.default_detail == 0.4
    assert b.metadata["provenance"]["grown"] == {"from": "tiny", "to": "tiny-grid"}
    x = torch.rand(2, 3, 13, 17)
    assert_same_restores(a, b, x, [((26, 34), None), ((41, 50), 0.0), ((52, 68), 1.0), ((30, 39), 0.7)])
    # once the planes have weight, the output depends on where pixels lie on the input grid
    with torch.no_grad():
        b.unet.conv_in.weight[:, 3 * 64:] = 0.05 * torch.randn_like(b.unet.conv_in.weight[:, 3 * 64:])
    b.invalidate()
    assert (restore(a, x, (41, 50), 0.5) - restore(b, x, (41, 50), 0.5)).abs().max() > 1e-3


def test_grow_refuses_a_config_that_is_not_the_same_network_with_planes(tmp_path, capsys):
    src = save_weights(_trained_tiny(), tmp_path / "m.safetensors")
    assert grow_mod.main(["--init", str(src), "--config", "wide-grid", "--out", str(tmp_path / "g.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "wide-grid is not tiny with input-grid planes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.safetensors").exists()


def test_a_grid_model_trains_on_a_fixed_scale_and_records_it(tmp_path):
    photos = make_photo_set(tmp_path / "photos")
    out = tmp_path / "run"
    assert train_mod.main(["--config", "tiny-grid", "--data", str(photos), "--teacher", "test-bicubic",
                           "--batch", "2", "--crop", "64", "--bank", "2", "--clean-fraction", "0.5",
                           "--refresh", "1", "--device", "cpu", "--eval-every", "1000", "--scale", "3",
                           "--out", str(out), "--max-steps", "2"]) == 0
    m = load_model(out / "model.safetensors", device="cpu")
    assert m.config.lr_grid == 4 and m.scale_range == (3.0, 3.0)
    assert m.metadata["provenance"]["scale"] == [3.0, 3.0]


@pytest.mark.parametrize("bad", ["0.5", "4,2", "x", "2,3,4"])
def test_bad_training_scales_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as e:
        train_mod.build_parser().parse_args(["--out", "x", "--scale", bad])
    assert e.value.code == 2 and "--scale" in capsys.readouterr().err
