"""The scale embedding (`scale_embed` configs): the upscale factor conditions every ResNet block."""

import diffusers
import torch

from gendrpix_video.configs import get_config, scale_position
from gendrpix_video.loading import load_model
from gendrpix_video.model import build_model
from gendrpix_video.padcfg import restore, upscale_factor
from gendrpix_video.training import grow as grow_mod
from gendrpix_video.training import train as train_mod
from gendrpix_video.weights import save_weights

from test_grid import _trained_tiny, assert_same_restores
from test_training import make_photo_set


def test_scale_embedding_has_diffusers_class_embedding_layout_and_function():
    torch.manual_seed(3)
    cfg = get_config("tiny-scale")
    ref = diffusers.UNet2DConditionModel(**cfg.diffusers_config()).eval()
    m = build_model("tiny-scale")
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in m.unet.state_dict().items()}
    m.unet.load_state_dict(ref.state_dict())
    z = torch.randn(2, 192, 9, 13)
    ctx = torch.randn(2, cfg.context_tokens, cfg.cross_attention_dim)
    with torch.no_grad():
        r = ref(z, cfg.timestep, encoder_hidden_states=ctx, class_labels=torch.tensor([scale_position(3.0)] * 2)).sample
        o = m.unet(z, m.unet.conditioning(ctx, 3.0), torch.tensor([0, 1]))
    torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-4)


def test_upscale_factor_is_the_geometric_mean_of_the_axes():
    assert upscale_factor((1080, 1920), (2160, 3840)) == 2.0
    assert abs(upscale_factor((480, 720), (2160, 3840)) - (4.5 * 3840 / 720) ** 0.5) < 1e-12


def test_grown_scale_model_is_the_original_until_trained_then_depends_on_the_scale(tmp_path):
    m = _trained_tiny()
    src = save_weights(m, tmp_path / "m.safetensors", default_detail=0.3)
    assert grow_mod.main(["--init", str(src), "--config", "tiny-scale", "--out", str(tmp_path / "s.safetensors")]) == 0
    a = load_model(src, device="cpu", dtype=torch.float32)
    b = load_model(tmp_path / "s.safetensors", device="cpu", dtype=torch.float32)
    assert b.config.scale_embed and b.default_detail == 0.3
    x = torch.rand(2, 3, 13, 17)
    assert_same_restores(a, b, x, [((26, 34), None), ((52, 68), 1.0), ((30, 39), 0.0)])
    with torch.no_grad():
        b.unet.class_embedding.linear_2.weight.normal_(0, 0.5)
    b.invalidate()
    # x2 and x4 now differ from the original, each by its own scale term; results stay cached per scale
    d2 = (restore(a, x, (26, 34)) - restore(b, x, (26, 34))).abs().max()
    d4 = (restore(a, x, (52, 68)) - restore(b, x, (52, 68))).abs().max()
    assert d2 > 1e-3 and d4 > 1e-3
    assert torch.equal(restore(b, x, (26, 34)), restore(b, x, (26, 34)))
    assert len(b._cache[1]) >= 2


def test_grow_into_scale_and_grid_together_and_refuse_shrinking(tmp_path, capsys):
    src = save_weights(_trained_tiny(), tmp_path / "m.safetensors")
    assert grow_mod.main(["--init", str(src), "--config", "tiny-scale", "--out", str(tmp_path / "s.safetensors")]) == 0
    # a scale model cannot become a plain one (that would drop what it learned)
    assert grow_mod.main(["--init", str(tmp_path / "s.safetensors"), "--config", "tiny",
                          "--out", str(tmp_path / "t.safetensors")]) == 2
    assert "tiny is not tiny-scale with" in capsys.readouterr().err


def test_a_scale_model_trains_on_mixed_scales(tmp_path):
    photos = make_photo_set(tmp_path / "photos")
    src = save_weights(_trained_tiny(), tmp_path / "m.safetensors")
    grow_mod.main(["--init", str(src), "--config", "tiny-scale", "--out", str(tmp_path / "s.safetensors")])
    out = tmp_path / "run"
    assert train_mod.main(["--init", str(tmp_path / "s.safetensors"), "--data", str(photos), "--teacher",
                           "test-bicubic", "--batch", "2", "--crop", "64", "--bank", "2", "--clean-fraction", "0.5",
                           "--refresh", "1", "--device", "cpu", "--eval-every", "1000", "--scale", "2,4",
                           "--lr", "1e-2", "--out", str(out), "--max-steps", "3"]) == 0
    m = load_model(out / "model.safetensors", device="cpu")
    assert m.config.scale_embed
    assert m.unet.class_embedding.linear_2.weight.abs().max() > 0  # the scale term learned something

