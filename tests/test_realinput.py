"""The real-input evaluation: codec chains through real encoders, the frozen set, flow-aligned
temporal error, the lattice score, and `gendrpix-video eval-real` end to end on a tiny model."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gendrpix_video import build_model, save_weights
from gendrpix_video.cli import main as cli_main
from gendrpix_video.training import degrade as dg
from gendrpix_video.training import realeval as re_
from gendrpix_video.training import realinput as ri

HAVE_CV2 = importlib.util.find_spec("cv2") is not None


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([0.5 + 0.4 * np.sin(xx / 3 + yy / 11), 0.5 + 0.4 * np.cos(yy / 4),
                    (xx + yy) / (h + w)], -1)
    return np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    recs = []
    for i, (split, h, w) in enumerate([("val", 112, 160), ("train", 96, 96), ("val", 160, 112)]):
        (root / split).mkdir(exist_ok=True)
        f = f"{split}/p{i}.png"
        Image.fromarray((_texture(h, w, i) * 255).astype("uint8")).save(root / f)
        recs.append({"file": f, "split": split, "width": w, "height": h})
    (root / "manifest.json").write_text(json.dumps(recs))
    return root


@pytest.fixture(scope="module")
def real_set(photo_set, tmp_path_factory):
    # OpenCV is in the test extra: without it the set's flow cannot be built, and that is a failure
    assert HAVE_CV2, "OpenCV (the eval and test extras) builds the set's flow"
    path = tmp_path_factory.mktemp("set") / "real.npz"
    ri.build(photo_set, path, crop=64, crops=1, motion_clips=1, motion_frames=4, log=lambda m: None)
    return path


def _psnr(a, b):
    return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.mark.parametrize("codec,q", [("libx264", 32), ("mpeg2video", 12)])
def test_codecs_damage_the_clip_but_keep_it(codec, q):
    frames = (np.stack([_texture(64, 64, s) for s in range(6)]) * 255).astype(np.uint8)
    out = ri.encode_decode(frames, codec, q)
    assert out.shape == frames.shape and out.dtype == np.uint8
    p = np.mean([_psnr(o, f) for o, f in zip(out, frames)])
    assert 18 < p < 40, p  # visibly coded, still the same pictures
    # a lower quality setting damages more
    worse = ri.encode_decode(frames, codec, q + 12)
    assert np.mean([_psnr(o, f) for o, f in zip(worse, frames)]) < p


def test_bob_deinterlace_keeps_the_top_field_and_interpolates_the_other():
    x = np.random.default_rng(0).integers(0, 256, (2, 7, 5, 3), dtype=np.uint8)
    y = ri.bob_deinterlace(x)
    assert np.array_equal(y[:, 0::2], x[:, 0::2])
    expect = np.round((x[:, 0].astype(float) + x[:, 2]) / 2)
    assert np.array_equal(y[:, 1], expect.astype(np.uint8))
    # the torch one (training) agrees on the kept field and the rebuilt lines
    t = dg.bob_deinterlace(torch.from_numpy(x).permute(0, 3, 1, 2).float())
    assert torch.allclose(t.permute(0, 2, 3, 1).round(), torch.from_numpy(y).float(), atol=1)


def test_deblock_touches_block_edges_only():
    x = torch.rand(1, 3, 32, 32)
    y = dg.deblock(x)
    assert torch.equal(y[..., 3:5, 3:5], x[..., 3:5, 3:5])  # block interior
    assert not torch.equal(y[..., 7:9, :], x[..., 7:9, :])  # the edge between blocks


def test_video_degradation_is_seeded_and_codec_like():
    hr = torch.rand(2, 3, 64, 64)
    a = dg.degrade_video(hr, torch.Generator().manual_seed(1), scale=4)
    b = dg.degrade_video(hr, torch.Generator().manual_seed(1), scale=4)
    assert a.lr.shape == (2, 3, 16, 16) and torch.equal(a.lr, b.lr)
    assert torch.equal(a.lr, torch.round(a.lr * 255) / 255)  # 8-bit levels


def test_the_set_holds_every_chain_and_the_moving_clips(real_set):
    s = ri.RealInputSet(real_set)
    assert len(s) == 2 and s.hr.shape == (2, 64, 64, 3)
    for c in ri.CHAINS:
        assert s.lr[c].shape == (2, 16, 16, 3), c
    assert not np.array_equal(s.lr["h264"], s.lr["clean"])
    assert s.motion_lr.shape == (1, 4, 16, 16, 3)
    assert s.motion_flow.shape == (1, 3, 64, 64, 2) and s.motion_mask.shape == (1, 3, 64, 64)
    # the pan is PAN HR pixels a frame: the content moves left and up, so the backward flow
    # (where a pixel was in the previous frame) points right and down by PAN
    med = np.median(s.motion_flow[0][s.motion_mask[0]].reshape(-1, 2), axis=0) / ri.FLOW_STEP
    assert np.allclose(med, ri.PAN, atol=0.3), med
    assert s.motion_mask.mean() > 0.5


def test_warp_error_is_small_for_the_true_motion_and_large_for_noise():
    torch.manual_seed(0)
    big = torch.rand(1, 3, 40, 60)
    frames = torch.cat([big[..., 0:32, t * 3:t * 3 + 32] for t in range(4)])
    flow = torch.zeros(3, 32, 32, 2)
    flow[..., 0] = 3 * ri.FLOW_STEP  # in 1/8 px, as stored
    mask = torch.ones(3, 32, 32, dtype=torch.bool)
    mask[..., -3:] = False
    still = ri.warp_error(frames, flow, mask)
    assert still < 1e-3
    noisy = ri.warp_error((frames + 0.05 * torch.randn_like(frames)).clamp(0, 1), flow, mask)
    assert noisy > 5


def test_lattice_score_sees_an_x8_pattern():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 0.1 + 0.4
    pattern = torch.zeros(1, 3, 64, 64)
    pattern[..., ::8, :] = 0.2
    assert re_.lattice_energy(x + pattern) > 10 * re_.lattice_energy(x)


def test_eval_real_command_writes_tables_plot_and_crops(real_set, tmp_path, capsys):
    weights = tmp_path / "tiny.safetensors"
    torch.manual_seed(0)
    save_weights(build_model("tiny"), weights)
    out = tmp_path / "real"
    rc = cli_main(["eval-real", "--set", str(real_set), "--model", str(weights),
                   "--details", "0.5,1", "--teachers", "test-bicubic", "--niqe-model", "none",
                   "--frames", "3", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "real.json").read_text())
    assert res["methods"] == ["bicubic", "teacher test-bicubic", "tiny@0.5", "tiny@1"]
    # the stand-in teacher is bicubic itself: the same numbers everywhere
    for c in ri.CHAINS:
        assert res["chains"][c]["teacher test-bicubic"]["psnr_y"] == pytest.approx(
            res["chains"][c]["bicubic"]["psnr_y"], abs=0.05)
    assert res["temporal"]["bicubic"]["warp_x"] == 1.0
    assert res["temporal"]["teacher test-bicubic"]["warp_x"] == pytest.approx(1.0, abs=0.02)
    assert res["damaged"]["bicubic"]["lattice"] > 0
    # clean input at x2 and x3 too: less lost than at x4, so bicubic scores higher there
    sc = res["clean_scales"]
    assert set(sc) == {"x2", "x3"} and set(sc["x2"]) == set(res["methods"])
    assert sc["x2"]["bicubic"]["psnr_y"] > sc["x3"]["bicubic"]["psnr_y"] > res["chains"]["clean"]["bicubic"]["psnr_y"]
    assert (out / "crops.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| bicubic |" in printed and "h264_deint" in printed and "| method | x2 | x3 | x4 |" in printed


def test_eval_real_scores_a_clean_source_row_for_models_that_have_one(real_set, tmp_path, capsys):
    torch.manual_seed(0)
    src = save_weights(build_model("tiny-source"), tmp_path / "src.safetensors")
    plain = save_weights(build_model("tiny"), tmp_path / "plain.safetensors")
    out = tmp_path / "real"
    rc = cli_main(["eval-real", "--set", str(real_set), "--model", "none", "--candidate", f"s={src}@0.5",
                   "--candidate", f"p={plain}@0.5", "--sources", "any,clean", "--teachers", "none",
                   "--niqe-model", "none", "--frames", "2", "--limit", "1", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "real.json").read_text())
    # a model without clean contexts gets no clean row
    assert res["methods"] == ["bicubic", "s@0.5", "s@0.5 clean", "p@0.5"]
    assert "s@0.5 clean" in res["clean_scales"]["x2"] and "s@0.5 clean" in res["temporal"]
    # auto: one row per model with a clean network, each crop's network guessed from it
    rc = cli_main(["eval-real", "--set", str(real_set), "--model", "none", "--candidate", f"s={src}@0.5",
                   "--candidate", f"p={plain}@0.5", "--sources", "auto", "--supersample", "1.5", "--teachers", "none",
                   "--niqe-model", "none", "--frames", "2", "--limit", "1", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "real.json").read_text())
    assert res["methods"] == ["bicubic", "s auto"]
    picks = res["auto_picks"]["s auto"]
    assert set(picks) == set(ri.CHAINS) and all(sum(p.values()) == 1 for p in picks.values())
    assert re_.merge([res])["auto_picks"] == res["auto_picks"]   # a merge keeps them
    assert cli_main(["eval-real", "--set", str(real_set), "--supersample", "3"]) == 2
    assert "eval-real --supersample must be a number from 1 to 2, got 3.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["eval-real", "--set", str(real_set), "--sources", "dirty"])
    assert "sources must be among auto, any, clean" in capsys.readouterr().err
    # a grid of the clean chain with the clean-source column
    grid = tmp_path / "grid"
    assert cli_main(["eval-real", "--set", str(real_set), "--model", "none", "--candidate", f"s={src}@0.5",
                     "--sources", "any,clean", "--grid-only", "--grid-chains", "clean", "--grid-model",
                     "s@0.5,s@0.5 clean", "--teachers", "none", "--device", "cpu", "--out", str(grid)]) == 0
    assert (grid / "crops.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        cli_main(["eval-real", "--set", str(real_set), "--grid-chains", "vhs"])
    assert "chains must be among clean" in capsys.readouterr().err


def test_eval_real_merge_joins_runs_on_the_same_set(real_set, tmp_path, capsys):
    """A new model's rows joined to an earlier run's (teachers not run again); the later row of a
    name wins; runs on another set are refused with one line."""
    weights = tmp_path / "tiny.safetensors"
    torch.manual_seed(0)
    save_weights(build_model("tiny"), weights)
    common = ["eval-real", "--set", str(real_set), "--niqe-model", "none", "--frames", "3", "--device", "cpu"]
    assert cli_main([*common, "--model", str(weights), "--details", "1", "--teachers", "test-bicubic",
                     "--out", str(tmp_path / "a")]) == 0
    assert cli_main([*common, "--model", str(weights), "--details", "0.5,1", "--teachers", "none",
                     "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / n / "real.json").read_text()) for n in "ab")
    b["damaged"]["tiny@1"]["psnr_y"] = 99.0  # marks the row that must win
    del a["clean_scales"]["x2"]["tiny@1"]  # a row measured before the clean-scale table existed
    a["hr_niqe"], b["hr_niqe"] = 7.125973580545774, 7.125973580545782  # two runs' sums, last digit apart
    (tmp_path / "a" / "real.json").write_text(json.dumps(a))
    (tmp_path / "b" / "real.json").write_text(json.dumps(b))
    capsys.readouterr()
    out = tmp_path / "m"
    assert cli_main(["eval-real", "--merge", f"{tmp_path / 'a' / 'real.json'},{tmp_path / 'b' / 'real.json'}",
                     "--out", str(out)]) == 0
    m = json.loads((out / "real.json").read_text())
    assert m["methods"] == ["bicubic", "teacher test-bicubic", "tiny@1", "tiny@0.5"]
    assert m["damaged"]["tiny@1"]["psnr_y"] == 99.0
    assert m["chains"]["h264"]["teacher test-bicubic"] == a["chains"]["h264"]["teacher test-bicubic"]
    assert m["clean_scales"]["x2"]["teacher test-bicubic"] == a["clean_scales"]["x2"]["teacher test-bicubic"]
    assert m["clean_scales"]["x3"]["tiny@0.5"] == b["clean_scales"]["x3"]["tiny@0.5"]
    assert "| tiny@0.5 |" in capsys.readouterr().out  # (no pd.png: no NIQE without its model)
    b["settings"]["crop"] = -1
    (tmp_path / "b" / "real.json").write_text(json.dumps(b))
    assert cli_main(["eval-real", "--merge", f"{tmp_path / 'a' / 'real.json'},{tmp_path / 'b' / 'real.json'}",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "same set" in err[0]


def test_eval_real_without_a_set_is_one_line(tmp_path, capsys):
    rc = cli_main(["eval-real", "--set", str(tmp_path / "missing.npz"), "--teachers", "none"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "realinput" in err[0]


def test_pattern_score_sees_a_texture_drawn_at_one_scale_and_not_a_blur():
    """A grating at 0.15 cycles a pixel (off the x8 grid frequencies) over a scene scores high; the
    scene itself and a blurred copy score about nothing."""
    from gendrpix_video.training.realeval import pattern_reference, pattern_score
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 32, 32, generator=g)
    hr = torch.nn.functional.interpolate(coarse, size=(256, 256), mode="bicubic").clamp(0, 1)
    hr = (0.9 * hr + 0.1 * torch.rand(1, 3, 256, 256, generator=g)).clamp(0, 1)
    ref = pattern_reference(hr)
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    mesh = hr + 0.04 * torch.sin(2 * torch.pi * 0.15 * (0.8 * xx + 0.6 * yy))
    blurred = torch.nn.functional.avg_pool2d(hr, 3, 1, 1, count_include_pad=False)
    assert pattern_score(hr, ref) < 0.01 and pattern_score(blurred, ref) < 0.01
    assert pattern_score(mesh, ref) > 0.2
