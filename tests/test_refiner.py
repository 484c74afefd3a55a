"""The refiner after the UNet (`gendrpix_video/refiner.py`) and its tool (`training/refine_fit.py`):
it starts as the identity, runs per source at the strength the weights give, survives a save, and
training it reduces the error it is trained on."""

import json

import numpy as np
import pytest
import torch

from gendrpix_video.loading import load_model
from gendrpix_video.padcfg import restore, restore_any_scale
from gendrpix_video.refiner import Refiner
from gendrpix_video.training import refine_fit
from gendrpix_video.training import source_delta
from gendrpix_video.training import train as train_mod
from gendrpix_video.weights import WeightsError, read_header, save_weights

from test_grid import _trained_tiny
from test_source import _three_tiny
from test_training import make_photo_set


def _busy_refiner(channels=8, blocks=1, seed=0):
    torch.manual_seed(seed)
    net = Refiner(channels, blocks)
    with torch.no_grad():
        net.tail.weight.normal_(0, 0.05)
    return net


def _source_model(tmp_path):
    base_p, from_p, to_p = _three_tiny(tmp_path)
    out = tmp_path / "src.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(out)]) == 0
    return load_model(out, device="cpu", dtype=torch.float32)


def test_an_untrained_refiner_changes_nothing():
    m = _trained_tiny().eval()
    r = refine_fit.with_refiner(m, Refiner(8, 2))
    r.refine_strength = 1.0
    x = torch.rand(2, 3, 13, 17)
    for size, detail in [((26, 34), 1.0), ((39, 51), 0.25), ((27, 35), 0.0)]:  # odd sizes too
        assert torch.allclose(restore(r, x, size, detail), restore(m, x, size, detail), atol=1e-6)


def test_the_refiner_runs_per_source_at_its_strength_and_survives_a_save(tmp_path):
    m = _source_model(tmp_path)
    r = refine_fit.attach(m, _busy_refiner(), {"clean": 1.0}, {"test": True}, details={"clean": 0.5})
    assert r.config.refiner == (8, 1) and r.refine_strength == 0.0
    assert r.for_source("clean")[0].refine_strength == 1.0 and r.for_source("clean")[0].default_detail == 0.5
    assert r.default_detail == m.default_detail
    x = torch.rand(2, 3, 13, 17)
    size = (52, 68)
    # source any: strength 0, the refiner is not run; source clean: the correction is added
    assert torch.equal(restore(r, x, size, 0.25), restore(m, x, size, 0.25))
    plain_clean = restore(m, x, size, 0.25, source="clean")
    got = restore(r, x, size, 0.25, source="clean")
    assert (got - plain_clean).abs().max() > 1e-3
    # run a frame at a time inside a batch: a frame restored alone comes out the same
    assert torch.allclose(restore(r, x[1:], size, 0.25, source="clean"), got[1:], atol=1e-5)
    path = save_weights(r, tmp_path / "r.safetensors", dtype=torch.float16)
    meta = read_header(path)["__metadata__"]
    assert json.loads(meta["refine_strength"]) == 0.0
    assert json.loads(meta["sources"])["clean"]["refine_strength"] == 1.0
    assert json.loads(meta["config"])["refiner"] == [8, 1]
    back = load_model(path, device="cpu", dtype=torch.float32)
    assert back.config.refiner == (8, 1) and back.for_source("clean")[0].refine_strength == 1.0
    assert back.for_source("clean")[0].default_detail == 0.5
    for k, v in r.refine.state_dict().items():
        assert torch.equal(back.refine.state_dict()[k], v.half().float())
    assert torch.allclose(restore_any_scale(back, x, size, 0.25, source="clean"), got, atol=5e-3)
    again = load_model(save_weights(back, tmp_path / "again.safetensors"), device="cpu", dtype=torch.float32)
    assert torch.equal(restore(again, x, size, 0.25, source="clean"), restore(back, x, size, 0.25, source="clean"))


def test_a_wider_refiner_x4_unshuffle_starts_as_the_identity_and_survives_a_save(tmp_path):
    m = _trained_tiny().eval()
    net = _busy_refiner()
    wide = Refiner(8, 1, down=4)
    x = torch.rand(1, 3, 13, 17)
    assert torch.allclose(restore(refine_fit.with_refiner(m, wide), x, (39, 51), 1.0), restore(m, x, (39, 51), 1.0),
                          atol=1e-6)  # odd sizes: padded to the x4 grid and cropped back
    with torch.no_grad():
        wide.tail.weight.normal_(0, 0.05)
    r = refine_fit.with_refiner(m, wide)
    assert r.config.refiner == (8, 1, 4) and net.shape == (8, 1)
    back = load_model(save_weights(r, tmp_path / "wide.safetensors"), device="cpu", dtype=torch.float32)
    assert back.config.refiner == (8, 1, 4) and back.refine.down == 4
    assert Refiner.from_state(wide.state_dict()).down == 4
    assert torch.allclose(restore(back, x, (52, 68), 1.0), restore(r, x, (52, 68), 1.0), atol=5e-3)
    assert (restore(back, x, (52, 68), 1.0) - restore(m, x, (52, 68), 1.0)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="down must be one of"):
        Refiner(8, 1, down=3)
    with pytest.raises(ValueError, match="refiner must be"):
        m.config.replace(refiner=(8, 1, 3))


def test_a_new_refiner_for_any_source_keeps_the_clean_networks_own(tmp_path):
    m = _source_model(tmp_path)
    first = refine_fit.attach(m, _busy_refiner(seed=1), {"clean": 0.75}, {"run": "clean"})
    second = refine_fit.attach(first, _busy_refiner(seed=2), {"any": 1.0}, {"run": "any"}, keep=("clean",))
    path = save_weights(second, tmp_path / "two.safetensors", dtype=torch.float16)
    back = load_model(path, device="cpu", dtype=torch.float32)
    assert back.refine_strength == 1.0 and back.for_source("clean")[0].refine_strength == 0.75
    assert back.metadata["provenance"]["refiner"] == {"run": "any"}
    assert back.metadata["sources"]["clean"]["refiner"] == {"run": "clean"}
    for k, v in _busy_refiner(seed=2).state_dict().items():  # the new one serves source any
        assert torch.equal(back.refine.state_dict()[k], v.half().float())
    clean_ref = back.for_source("clean")[0].refine.state_dict()
    for k, v in _busy_refiner(seed=1).state_dict().items():  # the clean network's own, through its delta
        assert torch.allclose(clean_ref[k], v, atol=2e-3)
    x = torch.rand(1, 3, 13, 17)
    assert torch.allclose(restore(back, x, (52, 68), 0.25, source="clean"),
                          restore(first, x, (52, 68), 0.25, source="clean"), atol=5e-3)
    with pytest.raises(SystemExit, match="no network of its own for 'any'"):
        refine_fit.attach(first, _busy_refiner(), {"any": 1.0}, {}, keep=("any",))
    with pytest.raises(SystemExit, match="no refiner to keep"):
        refine_fit.attach(m, _busy_refiner(), {"any": 1.0}, {}, keep=("clean",))
    with pytest.raises(SystemExit, match="needs a refiner of the model's shape"):
        refine_fit.attach(first, Refiner(16, 1), {"any": 1.0}, {}, keep=("clean",))


def test_a_bad_refine_strength_is_a_weights_error(tmp_path):
    from safetensors.torch import load_file, save_file
    m = refine_fit.attach(_source_model(tmp_path), _busy_refiner(), {"clean": 1.0}, {})
    path = save_weights(m, tmp_path / "r.safetensors")
    meta, tensors = read_header(path)["__metadata__"], load_file(str(path))
    for key, value, match in [("refine_strength", "7", "refine_strength must be in"),
                              ("sources", json.dumps({"clean": {"refine_strength": -1}}), "refine_strength must be in")]:
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, key: value})
        with pytest.raises(WeightsError, match=match):
            load_model(tmp_path / "bad.safetensors", device="cpu")
    save_file({k: v for k, v in tensors.items() if not k.startswith("refine.")}, str(tmp_path / "cut.safetensors"),
              metadata=meta)
    with pytest.raises(WeightsError, match="missing 8 tensors .*refine.body.0.a.bias"):
        load_model(tmp_path / "cut.safetensors", device="cpu")


def _bank(n=24, size=48, seed=0):
    """Ground truth: smooth random pictures with edges; 'restored': the same blurred, as a soft model leaves them."""
    g = torch.Generator().manual_seed(seed)
    hr = torch.nn.functional.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), size=(size, size),
                                         mode="nearest")
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = (k[:, None] * k[None, :]) / 256
    soft = torch.nn.functional.conv2d(torch.nn.functional.pad(hr, (2, 2, 2, 2), mode="replicate"),
                                      k.expand(3, 1, 5, 5), groups=3)
    u8 = lambda t: (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    return {"hr": u8(hr), "y": u8(soft), "up": u8(soft), "source": np.array("clean"), "detail": np.array(0.25)}


def test_training_the_refiner_reduces_the_error_it_is_trained_on():
    net, report = refine_fit.train_refiner(_bank(), channels=8, blocks=1, batch=4, window=32, lr=3e-3, steps=150)
    assert report["steps"] == 150 and report["held_back"] == 2
    assert report["gain_db"] > 0.5


def test_refine_fit_train_and_attach_write_a_model_with_the_refiner(tmp_path):
    bank = tmp_path / "bank.npz"
    np.savez(bank, **_bank())
    ref = tmp_path / "ref.safetensors"
    assert refine_fit.main(["train", "--bank", str(bank), "--channels", "8", "--blocks", "1", "--steps", "20",
                            "--batch", "4", "--out", str(ref)]) == 0
    src = save_weights(_trained_tiny(), tmp_path / "m.safetensors", dtype=torch.float16)  # as attach writes
    out = tmp_path / "out.safetensors"
    assert refine_fit.main(["attach", "--model", str(src), "--refiner", str(ref), "--strength", "any=0.5",
                            "--out", str(out)]) == 0
    m = load_model(out, device="cpu", dtype=torch.float32)
    assert m.config.refiner == (8, 1) and m.refine_strength == 0.5
    prov = m.metadata["provenance"]["refiner"]
    assert prov["steps"] == 20 and prov["strength"] == {"any": 0.5} and prov["source"] == "clean"
    plain = load_model(src, device="cpu", dtype=torch.float32)
    for k, v in plain.unet.state_dict().items():  # the UNet tensor for tensor
        assert torch.equal(m.unet.state_dict()[k], v)
    for bad, match in [(["--strength", "dirty=1"], "--strength takes SOURCE=VALUE"),
                       (["--strength", "any=x"], "--strength takes SOURCE=VALUE"),
                       (["--detail", "any=5"], "--detail: 'any=5' is outside 0-4")]:
        with pytest.raises(SystemExit, match=match):
            refine_fit.main(["attach", "--refiner", str(ref), *bad, "--out", str(out)])


def test_refine_fit_joins_banks_and_trains_against_an_adversary_from_a_refiner(tmp_path):
    a, b, other = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "other.npz"
    np.savez(a, **_bank(seed=0))
    np.savez(b, **_bank(seed=1))
    np.savez(other, **{**_bank(seed=2), "detail": np.array(1.0)})
    first = tmp_path / "first.safetensors"
    assert refine_fit.main(["train", "--bank", str(a), "--channels", "8", "--blocks", "1", "--steps", "60",
                            "--batch", "4", "--window", "32", "--lr", "3e-3", "--out", str(first)]) == 0
    start = refine_fit.read_refiner(str(first))[0]
    torch.manual_seed(0)
    net, report = refine_fit.train_refiner(refine_fit.load_banks([str(a), str(b)]), batch=4, window=32, lr=1e-3,
                                           steps=10, adv_weight=0.05, pattern_weight=1.0, init=start)
    assert report["held_back"] == 4 and report["adv_weight"] == 0.05 and report["init"]
    assert net.head.out_channels == 8 and len(net.body) == 1  # the shape of the refiner it started from
    assert any(not torch.equal(v, start[k]) for k, v in net.state_dict().items())
    with pytest.raises(SystemExit, match="holds source clean at detail 1"):
        refine_fit.load_banks([str(a), str(other)])


def test_the_edge_map_marks_steps_and_leaves_flat_ground():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8:] = 0.5  # a vertical step of half the range between columns 7 and 8
    e = refine_fit.edge_map(x, 0.1)
    assert e.shape == (1, 1, 16, 16)
    assert torch.all(e[..., 6:9] == 1) and torch.all(e[..., :5] == 0) and torch.all(e[..., 10:] == 0)


def test_a_bank_with_a_teacher_trains_the_refiner_towards_the_teachers_output(tmp_path):
    photos = make_photo_set(tmp_path / "photos")
    src = save_weights(_trained_tiny(), tmp_path / "m.safetensors")
    bank = tmp_path / "bank.npz"
    assert refine_fit.main(["bank", "--data", str(photos), "--model", str(src), "--source", "any", "--n", "6",
                            "--crop", "64", "--teacher", "test-bicubic", "--out", str(bank)]) == 0
    b = refine_fit.load_banks([str(bank)])
    assert b["t"].shape == b["hr"].shape and str(b["teacher"]) == "test-bicubic"
    # the stand-in teacher is bicubic: its target is the LR crop's bicubic upscale
    assert np.abs(b["t"].astype(int) - b["up"].astype(int)).mean() < 3
    ref = tmp_path / "ref.safetensors"
    assert refine_fit.main(["train", "--bank", str(bank), "--channels", "8", "--blocks", "1", "--steps", "5",
                            "--batch", "2", "--window", "32", "--hr-weight", "0", "--teacher-weight", "1",
                            "--out", str(ref)]) == 0
    report = refine_fit.read_refiner(str(ref))[1]
    assert report["teacher"] == "test-bicubic" and report["teacher_weight"] == 1 and report["hr_weight"] == 0
    assert refine_fit.main(["train", "--bank", str(bank), "--channels", "8", "--blocks", "1", "--steps", "3",
                            "--batch", "2", "--window", "32", "--teacher-weight", "1", "--edge-gate", "0.05",
                            "--out", str(ref)]) == 0
    assert refine_fit.read_refiner(str(ref))[1]["edge_gate"] == 0.05
    # the other ways to follow the teacher, each recorded in the report
    for extra, key, value in [(["--ungated", "0.5"], "ungated", 0.5), (["--blend"], "blend", True),
                              (["--gate-from", "network"], "gate_from", "network"),
                              (["--adv-weight", "0.05", "--adv-target", "teacher"], "adv_target", "teacher"),
                              (["--adv-weight", "0.05", "--adv-target", "teacher", "--adv-luma"], "adv_luma", True),
                              (["--down", "4"], "down", 4)]:
        assert refine_fit.main(["train", "--bank", str(bank), "--channels", "8", "--blocks", "1", "--steps", "3",
                                "--batch", "2", "--window", "32", "--teacher-weight", "1", "--edge-gate", "0.05",
                                *extra, "--out", str(ref)]) == 0
        assert refine_fit.read_refiner(str(ref))[1][key] == value, extra
    plain = tmp_path / "plain.npz"
    np.savez(plain, **_bank())
    with pytest.raises(SystemExit, match="needs a bank made with --teacher"):
        refine_fit.main(["train", "--bank", str(plain), "--steps", "1", "--teacher-weight", "1",
                         "--out", str(ref)])


def test_training_from_a_model_with_a_refiner_drops_it(tmp_path):
    init = save_weights(refine_fit.attach(_trained_tiny(), _busy_refiner(), {"any": 1.0}, {}),
                        tmp_path / "init.safetensors")
    photos = make_photo_set(tmp_path / "photos")
    out = tmp_path / "run"
    assert train_mod.main(["--config", "tiny", "--init", str(init), "--data", str(photos), "--teacher", "test-bicubic",
                           "--batch", "4", "--crop", "64", "--bank", "2", "--refresh", "1", "--device", "cpu",
                           "--eval-every", "1000", "--max-steps", "1", "--out", str(out)]) == 0
    assert load_model(out / "model.safetensors", device="cpu").config.refiner == ()
