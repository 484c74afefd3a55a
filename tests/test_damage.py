"""--source auto: the shipped damage detector and the tool that makes it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gendrpix_video.damage import DETECTOR, SourceGuess, damage_probability, guess_source, load_detector, luma
from gendrpix_video.training import damage_fit
from gendrpix_video.training.degrade import jpeg
from gendrpix_video.training.realinput import encode_decode, to_float, to_u8

skimage_data = pytest.importorskip("skimage.data")


def _photo_lr(seed: int = 0) -> np.ndarray:
    """A real photo (scikit-image's), x4 bicubic-downscaled: a clean source, h x w x 3 uint8."""
    hr = to_float(np.stack([skimage_data.chelsea()[:296, :448]]))
    return to_u8(damage_fit.downscale(hr, "bicubic"))[0]


def _damaged(lr: np.ndarray, seed: int = 0) -> np.ndarray:
    """The same frame with sensor noise and JPEG 50, as low-quality footage has it."""
    g = torch.Generator().manual_seed(seed)
    x = to_float(lr[None])
    x = (x + torch.randn(x.shape, generator=g) * 5 / 255).clamp(0, 1)
    return to_u8(jpeg(x, 50))[0]


def test_the_shipped_detector_loads_from_safetensors_with_its_threshold():
    net, threshold = load_detector()
    assert DETECTOR.suffix == ".safetensors" and 0 < threshold < 1
    assert sum(p.numel() for p in net.parameters()) < 100_000  # small: it runs on the CPU before a job


def test_a_clean_photo_is_clean_and_the_same_photo_damaged_is_not():
    clean = _photo_lr()
    g_clean = guess_source([clean])
    g_noisy = guess_source([_damaged(clean)])
    assert g_clean == SourceGuess("clean", g_clean.damage, 1) and g_clean.damage < load_detector()[1]
    assert g_noisy.source == "any" and g_noisy.damage > g_clean.damage
    # an H.264 encode at low quality is damage too
    clip = encode_decode(np.stack([clean] * 3), "libx264", 38)
    assert guess_source(list(clip)).source == "any"
    assert "auto: damage" in g_clean.describe()


def test_frames_in_either_form_give_the_same_score():
    lr = _photo_lr()
    as_float = torch.from_numpy(lr).permute(2, 0, 1).float() / 255
    assert torch.equal(luma(lr), luma(as_float))
    assert damage_probability([lr])[0] == pytest.approx(damage_probability([as_float])[0], abs=1e-6)


def test_without_a_clean_network_or_frames_the_guess_is_any():
    lr = _photo_lr()
    assert guess_source([lr], ("any",)).source == "any"          # nothing else to pick
    assert guess_source([], ("any", "clean")) == SourceGuess("any", 1.0, 0)
    assert guess_source([lr[:8, :8]], ("any", "clean")).frames == 0  # too small to judge


def test_damage_fit_makes_a_detector_and_scores_it_on_an_oracle_set(tmp_path, capsys):
    """The tool end to end at toy size: patches from photos, a short training, a threshold fitted
    on an oracle set (both networks of a model run on each crop), and the table."""
    from PIL import Image

    from gendrpix_video import build_model

    root = tmp_path / "photos"
    recs = []
    photo = skimage_data.chelsea()
    for i, split in enumerate(("train", "val")):
        (root / split).mkdir(parents=True)
        Image.fromarray(photo[: 300 - 40 * i, : 400 - 40 * i]).save(root / split / f"p{i}.png")
        recs.append({"file": f"{split}/p{i}.png", "split": split})
    (root / "manifest.json").write_text(json.dumps(recs))
    z = damage_fit.make_patches(root, 24, patch=72, seed=0)
    assert z["y"].shape == (24, 72, 72) and z["label"].tolist() == [0, 1] * 12
    net, report = damage_fit.train_detector(z["y"], z["label"], steps=4, batch=4, crop=48)
    assert report["patches"] == 24 and 0 <= report["held_out_accuracy"] <= 1
    det = tmp_path / "det.safetensors"
    damage_fit.save_detector(net, det, 0.5, report)
    model = build_model("tiny-source")
    oracle = damage_fit.make_oracle(root, "val", 3, crop=64, seed=0, model=model)
    np.savez(tmp_path / "o.npz", **oracle)
    rows = json.loads(str(oracle["rows"]))
    assert len(rows) == 3 and all({"psnr_any", "psnr_clean", "fam"} <= set(r) for r in rows)
    assert damage_fit.main(["score", "--oracle", str(tmp_path / "o.npz"), "--detector", str(det),
                            "--fit-threshold"]) == 0
    out = capsys.readouterr().out
    assert "| all | 3 |" in out
    fitted = load_detector(str(det))[1]  # written into the file, and the table used it
    assert f"threshold {fitted:g}\n" in out and 0.05 <= fitted <= 0.95


def test_a_large_frame_is_scored_on_tiles_spread_over_it():
    from gendrpix_video.damage import TILE, tiles

    y = torch.arange(1080 * 1920, dtype=torch.float32).view(1, 1, 1080, 1920)
    t = tiles(y)
    assert t.shape == (6, 1, TILE, TILE)
    assert t[0, 0, 0, 0] == 0 and t[-1, 0, -1, -1] == y[0, 0, -1, -1]   # corner to corner
    small = y[..., :100, :200]
    assert torch.equal(tiles(small), small)                             # smaller than a tile: whole
    assert tiles(y[..., :100, :]).shape == (3, 1, 100, TILE)           # one row of windows


def test_bars_and_black_frames_say_nothing_of_damage():
    """Letterbox and pillarbox bars are trimmed before the windows are cut, so a framed picture
    scores as the picture; a black frame (a fade) is not scored at all."""
    from gendrpix_video.damage import trim_bars

    pic = _photo_lr()
    h, w = pic.shape[:2]
    boxed = np.zeros((h + 40, w + 60, 3), np.uint8)
    boxed[20:20 + h, 30:30 + w] = pic
    assert trim_bars(luma(boxed)).shape[-2:] == (h, w)
    assert damage_probability([boxed])[0] == pytest.approx(damage_probability([pic])[0], abs=1e-6)
    black = np.zeros((300, 400, 3), np.uint8)
    assert damage_probability([black]) == (1.0, 0)
    assert damage_probability([black, pic]) == damage_probability([pic])
