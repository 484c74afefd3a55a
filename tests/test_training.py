"""Training pieces: losses, RandPad, checkpoints, and a few real steps of both stages (CPU, tiny)."""

import json
import random

import pytest
import torch
from PIL import Image

from gendrpix_video import build_model, load_model
from gendrpix_video.training import train as train_mod
from gendrpix_video.training.checkpoint import load_checkpoint, save_checkpoint
from gendrpix_video.training.teacher import load_teacher
from gendrpix_video.training.losses import (Discriminator, G1Features, lattice_mask, masked_fourier_loss,
                                            perceptual_loss, rand_pad)


def test_lattice_mask_passes_the_x8_lattice_only():
    m = lattice_mask(64, 48, 1.0, "cpu")
    assert m[0, 0] == 0                     # DC excluded
    assert m[8, 0] == 1 and m[0, 6] == 1    # (H/8, 0) and (0, W/8)
    assert m[8 * 3, 6 * 5] == 1
    assert m[4, 3] == 0                     # between lattice points


def test_fourier_loss_sees_x8_artefacts_not_smooth_changes():
    torch.manual_seed(0)
    y = torch.rand(2, 3, 64, 64)
    grid = torch.zeros(1, 1, 64, 64)
    grid[..., ::8, ::8] = 0.2               # a pattern with period 8: pixel-shuffle artefacts
    smooth = 0.2 * torch.sin(torch.arange(64.) * 2 * torch.pi / 64).view(1, 1, 1, 64)  # low frequency
    assert masked_fourier_loss(y, y) == 0
    assert masked_fourier_loss(y + grid, y) > 20 * masked_fourier_loss(y + smooth, y)


def test_rand_pad_moves_the_grid_phase():
    x = torch.rand(1, 3, 32, 32)
    shapes = {rand_pad(x).shape for _ in range(20)}
    assert shapes == {(1, 3, 40, 40)}
    g = torch.Generator().manual_seed(0)
    firsts = {tuple(rand_pad(torch.arange(32.).view(1, 1, 1, 32).expand(1, 1, 32, 32), g)[0, 0, 0, :2].tolist())
              for _ in range(30)}
    assert len(firsts) > 3


def test_discriminator_trains_head_only_and_passes_gradients_to_its_input():
    g1 = build_model("tiny")
    d = Discriminator(G1Features(g1))
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    d(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.trunk.parameters())
    assert any(p.grad is not None for p in d.head_deep.parameters())
    lp = perceptual_loss(d.trunk, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert lp > 0


def test_checkpoint_round_trip_without_pickle(tmp_path):
    m = build_model("tiny").train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.rand(1, 3, 16, 16)).mean().backward()
    opt.step()
    state = {"step": 7, "gpu_seconds": 12.5, "history": [{"step": 0, "loss": 1.0}], "evals": []}
    save_checkpoint(tmp_path / "c.safetensors", m, opt, state)
    m2 = build_model("tiny").train()
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    got = load_checkpoint(tmp_path / "c.safetensors", m2, opt2)
    assert got == state
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for k in s1["state"]:
        for n in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][k][n], s2["state"][k][n])


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    return make_photo_set(tmp_path_factory.mktemp("photos"))


def make_photo_set(root):
    """A three-photo set in the dataset builder's layout (2 train, 1 val)."""
    recs = []
    for i, split in enumerate(["train", "train", "val"]):
        (root / split).mkdir(parents=True, exist_ok=True)
        yy, xx = torch.meshgrid(torch.arange(96.), torch.arange(128.), indexing="ij")
        img = torch.stack([(xx * (i + 1) / 128) % 1, (yy / 96), ((xx + yy) / 224)], -1)
        img = (img + 0.05 * torch.rand_like(img)).clamp(0, 1)
        f = f"{split}/p{i}.jpg"
        Image.fromarray((img.numpy() * 255).astype("uint8")).save(root / f, quality=95)
        recs.append({"file": f, "split": split})
    (root / "manifest.json").write_text(json.dumps(recs))
    return root



def test_two_stages_train_and_resume(photo_set, tmp_path):
    common = ["--config", "tiny", "--data", str(photo_set), "--teacher", "test-bicubic", "--batch", "4",
              "--crop", "64", "--bank", "2", "--clean-fraction", "0.5", "--refresh", "1", "--device", "cpu", "--eval-every", "1000"]
    out1 = tmp_path / "s1"
    assert train_mod.main(common + ["--out", str(out1), "--max-steps", "3"]) == 0
    state = json.loads((out1 / "state.json").read_text())
    assert state["step"] == 3 and len(state["evals"]) == 1
    assert (out1 / "loss.png").stat().st_size > 1000
    # Resume: the step counter and optimizer continue from the checkpoint.
    assert train_mod.main(common + ["--out", str(out1), "--max-steps", "5"]) == 0
    assert json.loads((out1 / "state.json").read_text())["step"] == 5
    m = load_model(out1 / "model.safetensors", device="cpu")
    assert m.metadata["provenance"]["trained"] is True and m.metadata["provenance"]["steps"] == 5
    out2 = tmp_path / "s2"
    assert train_mod.main(common + ["--stage", "2", "--init", str(out1 / "model.safetensors"),
                                    "--out", str(out2), "--max-steps", "2", "--eval-every", "1", "--snapshots",
                                    "--stage2-teacher-weight", "0.5", "--stage2-hr-weight", "1",
                                    "--stability-weight", "1", "--phase-weight", "1", "--temporal-weight", "1",
                                    "--pattern-weight", "2", "--stage2-neg-target", "hr"]) == 0
    assert json.loads((out2 / "state.json").read_text())["step"] == 2
    # Stage II keeps a snapshot at each eval (one, after 2 steps), a loadable model saying what made it.
    snaps = sorted((out2 / "snapshots").iterdir())
    assert [s.name for s in snaps] == ["step_000002.safetensors"]
    prov = load_model(snaps[0], device="cpu").metadata["provenance"]
    assert prov["stage"] == 2 and prov["steps"] == 2
    assert prov["losses"]["teacher"] == 0.5 and prov["losses"]["hr"] == 1.0 and prov["losses"]["stability"] == 1.0
    assert prov["losses"]["neg_target"] == "hr" and prov["phase_weight"] == 1.0
    assert {"stability", "phase", "temporal", "pattern"} <= set(json.loads((out2 / "state.json").read_text())["history"][0])
    assert prov["temporal_weight"] == 1.0 and prov["temporal_grid"] == "follow" and prov["pattern_weight"] == 2.0


def test_bank_mixes_clean_mild_video_and_full_batches_with_a_clean_teacher(photo_set):
    import random
    args = train_mod.build_parser().parse_args(
        ["--out", "x", "--batch", "2", "--crop", "64", "--clean-fraction", "0.3", "--mild-fraction", "0.2",
         "--video-fraction", "0.25"])
    photos = train_mod.PhotoBank.load(photo_set, "train")
    teacher = load_teacher("test-bicubic")
    clean = load_teacher("test-bicubic")
    clean.net.w.data.fill_(0.5)  # a distinguishable teacher: half brightness
    random.seed(0)
    bank = train_mod.PairBank(photos, teacher, args, torch.Generator().manual_seed(0), clean)
    seen = {}
    for _ in range(48):
        before = dict(bank.kinds)
        hr, lr, t, clean = bank.make()
        kind = next(k for k in bank.kinds if bank.kinds[k] != before[k])
        assert clean == (kind == "clean")
        up = torch.nn.functional.interpolate(lr.float() / 255, scale_factor=4, mode="bicubic")
        ratio = float((t.float() / 255).mean() / up.clamp(0, 1).mean())
        seen.setdefault(kind, []).append(ratio)
    assert set(seen) == {"clean", "mild", "video", "full"}
    assert all(abs(r - 0.5) < 0.05 for r in seen["clean"])
    assert all(abs(r - 1.0) < 0.05 for r in seen["mild"] + seen["video"] + seen["full"])


def test_fractions_over_one_are_refused(photo_set, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_mod.main(["--out", str(tmp_path / "o"), "--data", str(photo_set), "--clean-fraction", "0.6",
                        "--mild-fraction", "0.6", "--device", "cpu"])
    assert e.value.code == 2 and "sum to at most 1" in capsys.readouterr().err


def test_ema_is_saved_resumed_and_shipped(photo_set, tmp_path):
    from gendrpix_video.training.ema import EMA
    m = build_model("tiny").train()
    ema = EMA(m, 0.9)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for step in range(3):
        m(torch.rand(1, 3, 16, 16)).mean().backward()
        opt.step()
        ema.update(m, step)
    # The average lags the weights: it is neither the start nor the current model.
    w, a = m.unet.conv_in.weight, ema.model.unet.conv_in.weight
    assert not torch.equal(w, a)
    state = {"step": 3, "gpu_seconds": 1.0, "history": [], "evals": []}
    save_checkpoint(tmp_path / "c.safetensors", m, opt, state, ema=ema)
    m2 = build_model("tiny").train()
    ema2 = EMA(m2, 0.9)
    load_checkpoint(tmp_path / "c.safetensors", m2, torch.optim.AdamW(m2.parameters(), lr=1e-2), ema=ema2)
    for k, v in ema.state_dict().items():
        assert torch.equal(v, ema2.state_dict()[k])
    # The trainer ships the average, and says so in the provenance.
    out = tmp_path / "run"
    assert train_mod.main(["--config", "tiny", "--data", str(photo_set), "--teacher", "test-bicubic", "--batch", "2",
                           "--crop", "64", "--bank", "1", "--device", "cpu", "--out", str(out), "--max-steps", "2",
                           "--ema", "0.5"]) == 0
    shipped = load_model(out / "model.safetensors", device="cpu")
    assert shipped.metadata["provenance"]["ema"] == 0.5


def test_profile_mode_reports_step_time(photo_set, tmp_path, capsys):
    assert train_mod.main(["--config", "tiny", "--data", str(photo_set), "--teacher", "test-bicubic", "--batch", "2",
                           "--crop", "64", "--bank", "1", "--device", "cpu", "--out", str(tmp_path / "p"),
                           "--profile", "2"]) == 0
    assert "ms/step over 2 steps" in capsys.readouterr().out


def test_soup_averages_weights_and_keeps_provenance(tmp_path):
    from gendrpix_video import save_weights
    from gendrpix_video.training import soup
    torch.manual_seed(0)
    a, b = build_model("tiny"), build_model("tiny")
    torch.nn.init.normal_(a.unet.conv_out.weight)
    a.metadata = {"provenance": {"trained": True, "stage": 2}, "license": "Apache-2.0"}
    b.metadata = {"provenance": {"trained": True, "stage": 1}}
    pa, pb = save_weights(a, tmp_path / "a.safetensors"), save_weights(b, tmp_path / "b.safetensors")
    out = tmp_path / "s.safetensors"
    assert soup.main([str(pa), str(pb), "--weight", "0.7", "--out", str(out)]) == 0
    s = load_model(out, device="cpu")
    want = 0.7 * a.unet.conv_out.weight + 0.3 * b.unet.conv_out.weight
    assert torch.allclose(s.unet.conv_out.weight.float(), want, atol=1e-3)   # stored in fp16
    prov = s.metadata["provenance"]
    assert prov["trained"] is True and prov["soup"]["weight_a"] == 0.7 and prov["soup"]["a"]["stage"] == 2
    assert s.metadata["license"] == "Apache-2.0"
    # Different configs cannot be averaged: one clear error, exit 2.
    pc = save_weights(build_model("lite"), tmp_path / "c.safetensors")
    assert soup.main([str(pa), str(pc), "--out", str(tmp_path / "x.safetensors")]) == 2


def test_auto_schedule_fits_the_cosine_to_the_minutes(photo_set, tmp_path, capsys):
    common = ["--config", "tiny", "--data", str(photo_set), "--teacher", "test-bicubic", "--batch", "2",
              "--crop", "32", "--bank", "2", "--device", "cpu", "--eval-every", "1000", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        train_mod.main(common + ["--total-steps", "0"])
    assert "positive step count or 'auto'" in capsys.readouterr().err
    assert train_mod.main(common + ["--total-steps", "auto", "--max-steps", "101"]) == 0
    state = json.loads((tmp_path / "state.json").read_text())
    # estimated once from the step time: the steps that fit in the chunk's --minutes, at least those run
    assert state["total_steps"] > 101
    assert "cosine over" in capsys.readouterr().err


def test_phase_loss_is_zero_for_a_grid_free_network_and_positive_for_a_grid_bound_one():
    from gendrpix_video.model import NEG, POS
    torch.manual_seed(0)
    net = build_model("tiny")  # untrained: the bicubic upscale, the same on every grid phase
    lr = torch.rand(4, 3, 16, 16)
    ctx = torch.tensor([POS, POS, NEG, NEG])
    y = train_mod.forward_random_phase(net, lr, (64, 64), ctx, (1, 6))
    assert train_mod.phase_loss(net, lr, y, (64, 64), ctx, (1, 6), share=0.5).item() < 1e-6
    with torch.no_grad():  # a residual from the x8 patches: it moves with the grid, not the content
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    y = train_mod.forward_random_phase(net, lr, (64, 64), ctx, (1, 6))
    assert train_mod.phase_loss(net, lr, y, (64, 64), ctx, (1, 6), share=0.5).item() > 1e-3


def test_stability_loss_measures_how_much_fresh_noise_changes_the_output():
    from gendrpix_video.model import POS
    torch.manual_seed(0)
    net = build_model("tiny")  # untrained: its output is the bicubic upscale, noise and all
    lr = torch.rand(4, 3, 16, 16) * 0.5 + 0.25
    ctx = torch.tensor([POS] * 4)
    y = train_mod.forward_random_phase(net, lr, (64, 64), ctx, (3, 5))
    quiet = train_mod.stability_loss(net, lr, y, (64, 64), ctx, (3, 5), sigma=(0.0, 0.0))
    noisy = train_mod.stability_loss(net, lr, y, (64, 64), ctx, (3, 5), sigma=(8 / 255, 8 / 255))
    assert quiet.item() < 1e-6           # same input, same phase: the same output
    assert 0.005 < noisy.item() < 8 / 255  # bicubic passes the noise on, a little smoothed


def test_pan_pair_loss_compares_the_two_frames_where_their_content_overlaps():
    from gendrpix_video.model import NEG, POS
    torch.manual_seed(0)
    net = build_model("tiny")  # untrained: the bicubic upscale, which at scale 1 is the input itself
    args = train_mod.build_parser().parse_args(["--out", "o", "--scale", "1", "--clean-fraction", "1"])
    bank = train_mod.PairBank(None, None, args, torch.Generator().manual_seed(0))
    hr = torch.rand(4, 3, 48, 48)
    ctx = torch.tensor([POS, POS, NEG, NEG])
    # Clean frames at scale 1 and no fresh noise: the second frame is the first moved, so an output
    # that follows the content is equal on the overlap (a wrong offset would compare unrelated pixels).
    still = train_mod.pan_pair_loss(net, bank, hr, ctx, (2, 5), share=0.5, sigma=(0.0, 0.0))
    assert still.item() < 1e-6
    noisy = train_mod.pan_pair_loss(net, bank, hr, ctx, (2, 5), share=0.5, sigma=(8 / 255, 8 / 255))
    assert 0.005 < noisy.item() < 0.1  # fresh noise a frame reaches the output of a plain upscale
    # A network bound to the grid: with the second frame's grid fixed its output changes as the
    # content moves; with the grid following the content far less of it does.
    with torch.no_grad():
        for prm in net.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
    hr = torch.rand(4, 3, 96, 96)
    random.seed(3)
    fixed = train_mod.pan_pair_loss(net, bank, hr, ctx, (2, 5), share=0.5, sigma=(0.0, 0.0), margin=16)
    random.seed(3)
    follow = train_mod.pan_pair_loss(net, bank, hr, ctx, (2, 5), share=0.5, sigma=(0.0, 0.0), margin=16,
                                      follow=True)
    assert follow.item() < 0.5 * fixed.item(), (follow.item(), fixed.item())


def test_the_bank_degrades_both_frames_of_a_pair_alike_from_one_generator_state():
    args = train_mod.build_parser().parse_args(["--out", "o", "--video-fraction", "1"])
    bank = train_mod.PairBank(None, None, args, torch.Generator().manual_seed(3))
    hr = torch.rand(2, 3, 64, 64)
    state = bank.g.get_state()
    a = bank.degrade(hr, "video", 2.0)
    bank.g.set_state(state)
    b = bank.degrade(hr, "video", 2.0)
    c = bank.degrade(hr, "video", 2.0)
    assert a.shape == (2, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)


def test_a_cpu_run_says_its_time_is_cpu_time(tmp_path, capsys):
    photos = make_photo_set(tmp_path / "photos")
    assert train_mod.main(["--config", "tiny", "--data", str(photos), "--teacher", "test-bicubic", "--batch", "2",
                           "--crop", "64", "--bank", "2", "--refresh", "1", "--device", "cpu", "--eval-every",
                           "1000", "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 0
    assert "CPU process-minutes" in capsys.readouterr().err
    prov = load_model(tmp_path / "run" / "model.safetensors").metadata["provenance"]
    assert prov["device"] == "cpu" and "cpu_minutes" in prov and "gpu_minutes" not in prov


def test_degradation_overrides_reach_the_bank_and_bad_ones_are_refused(photo_set, tmp_path, capsys):
    args = train_mod.build_parser().parse_args(["--out", "o", "--degrade", "noise_range=3,30",
                                                "--degrade", "jpeg_range2=30,85"])
    opts = train_mod.degrade_options(args)
    assert opts.noise_range == (3.0, 30.0) and opts.jpeg_range2 == (30.0, 85.0)
    with pytest.raises(SystemExit) as e:
        train_mod.main(["--out", str(tmp_path / "o"), "--data", str(photo_set), "--degrade", "noise_range=9",
                        "--device", "cpu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "noise_range takes LO,HI" in err and "Traceback" not in err


def test_pattern_loss_costs_a_mesh_and_not_the_scene():
    """The pattern loss is eval-real's pattern score as a loss: small for the target itself (its own
    peaks over their neighbourhood's level), less for a blurred copy, several times more for a
    mesh at one period added, and it passes a gradient."""
    from gendrpix_video.training.losses import pattern_loss
    torch.manual_seed(0)
    hr = torch.nn.functional.interpolate(torch.rand(2, 3, 32, 32), size=(128, 128), mode="bicubic").clamp(0, 1)
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    mesh = (hr + 0.03 * torch.sin(2 * torch.pi * 0.15 * xx) * torch.sin(2 * torch.pi * 0.15 * yy)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(hr, 3, 1, 1, count_include_pad=False)
    own = float(pattern_loss(hr, hr))
    assert own < 0.01 and float(pattern_loss(blurred, hr)) <= own
    y = mesh.clone().requires_grad_()
    loss = pattern_loss(y, hr)
    loss.backward()
    assert float(loss.detach()) > 2 * own and float(y.grad.abs().sum()) > 0
