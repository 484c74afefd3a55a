"""Clean-source contexts (`source_contexts` configs): a clip the user calls clean gets its own pair of
contexts, learned on the clean training batches only."""

import json

import pytest
import torch

from gendrpix_video.loading import load_model
from gendrpix_video.model import build_model
from gendrpix_video.padcfg import restore, restore_any_scale
from gendrpix_video.training import grow as grow_mod
from gendrpix_video.training import train as train_mod
from gendrpix_video.weights import save_weights

from test_grid import _trained_tiny
from test_training import make_photo_set


def _grown(tmp_path):
    src = save_weights(_trained_tiny(), tmp_path / "m.safetensors", default_detail=0.25)
    assert grow_mod.main(["--init", str(src), "--config", "tiny-scale", "--out", str(tmp_path / "s.safetensors")]) == 0
    assert grow_mod.main(["--init", str(tmp_path / "s.safetensors"), "--config", "tiny-source",
                          "--out", str(tmp_path / "c.safetensors")]) == 0
    return (load_model(tmp_path / "s.safetensors", device="cpu", dtype=torch.float32),
            load_model(tmp_path / "c.safetensors", device="cpu", dtype=torch.float32))


def test_grown_source_model_restores_both_sources_as_the_original(tmp_path):
    a, b = _grown(tmp_path)
    assert a.sources == ("any",) and b.sources == ("any", "clean")
    assert b.metadata["provenance"]["grown"] == {"from": "tiny-scale", "to": "tiny-source"}
    x = torch.rand(2, 3, 13, 17)
    for size, detail in [((26, 34), None), ((52, 68), 1.0), ((30, 39), 0.0)]:
        ref = restore(a, x, size, detail)
        for source in ("any", "clean"):
            assert torch.allclose(restore(b, x, size, detail, source=source), ref, atol=1e-5)


def test_clean_contexts_change_only_the_clean_restores_and_survive_a_save(tmp_path):
    a, b = _grown(tmp_path)
    with torch.no_grad():
        b.c_pos_clean.add_(torch.randn_like(b.c_pos_clean))
        b.c_neg_clean.add_(torch.randn_like(b.c_neg_clean))
    b.invalidate()
    x = torch.rand(1, 3, 13, 17)
    for detail in (0.0, 0.25, 1.0):
        assert torch.allclose(restore(b, x, (52, 68), detail), restore(a, x, (52, 68), detail), atol=1e-5)
        assert (restore(b, x, (52, 68), detail, source="clean") - restore(a, x, (52, 68), detail)).abs().max() > 1e-3
    path = save_weights(b, tmp_path / "b2.safetensors")
    c = load_model(path, device="cpu", dtype=torch.float32)
    assert torch.equal(c.c_pos_clean, b.c_pos_clean) and torch.equal(c.c_neg_clean, b.c_neg_clean)
    assert torch.equal(restore_any_scale(c, x, (104, 136), 0.25, source="clean"),
                       restore_any_scale(b, x, (104, 136), 0.25, source="clean"))


def test_a_source_the_model_lacks_or_does_not_know_is_a_clear_error():
    m = build_model("tiny")
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="has no network for source 'clean'"):
        restore(m, x, (16, 16), source="clean")
    with pytest.raises(ValueError, match="source must be one of any, clean"):
        restore(build_model("tiny-source"), x, (16, 16), source="dirty")


def test_training_teaches_the_clean_contexts_on_clean_batches_only(tmp_path):
    photos = make_photo_set(tmp_path / "photos")
    a, b = _grown(tmp_path)
    init = save_weights(b, tmp_path / "init.safetensors")
    common = ["--config", "tiny-source", "--init", str(init), "--data", str(photos), "--teacher", "test-bicubic",
              "--batch", "4", "--crop", "64", "--bank", "2", "--refresh", "1", "--device", "cpu",
              "--eval-every", "1000", "--max-steps", "3", "--ema", "0"]
    moved = {}
    for frac in ("0", "1"):
        out = tmp_path / f"run{frac}"
        assert train_mod.main(common + ["--out", str(out), "--clean-fraction", frac]) == 0
        m = load_model(out / "model.safetensors", device="cpu", dtype=torch.float32)
        moved[frac] = {n: float((getattr(m, n) - getattr(b, n)).abs().max()) for n in m.context_names()}
        assert json.loads((out / "state.json").read_text())["step"] == 3
    # no clean batch: the clean pair is untouched; only clean batches: the other pair is
    assert moved["0"]["c_pos_clean"] == 0 and moved["0"]["c_neg_clean"] == 0 and moved["0"]["c_pos"] > 0
    assert moved["1"]["c_pos"] == 0 and moved["1"]["c_neg"] == 0 and moved["1"]["c_pos_clean"] > 0


def test_kind_balance_scales_clean_batches_up_to_the_damaged_loss_level():
    bal = train_mod.KindBalance(decay=0.5, cap=10.0)
    loss, w = bal(torch.tensor(0.1), clean=True)
    assert w == 1.0 and float(loss) == pytest.approx(0.1)   # no damaged batch seen yet
    loss, w = bal(torch.tensor(0.4), clean=False)
    assert w == 1.0 and float(loss) == pytest.approx(0.4)   # damaged batches are never scaled
    loss, w = bal(torch.tensor(0.1), clean=True)
    assert w == pytest.approx(4.0) and float(loss) == pytest.approx(0.4)
    bal(torch.tensor(100.0), clean=False)
    assert bal(torch.tensor(0.1), clean=True)[1] == 10.0     # capped


def test_balanced_run_records_it_and_logs_the_clean_scale(tmp_path):
    photos = make_photo_set(tmp_path / "photos")
    out = tmp_path / "run"
    assert train_mod.main(["--config", "tiny-source", "--data", str(photos), "--teacher", "test-bicubic",
                           "--batch", "4", "--crop", "64", "--bank", "4", "--refresh", "1", "--device", "cpu",
                           "--eval-every", "1000", "--max-steps", "3", "--clean-fraction", "0.5",
                           "--balance-clean", "--out", str(out)]) == 0
    assert load_model(out / "model.safetensors", device="cpu").metadata["provenance"]["balance_clean"] is True
    assert "clean_scale" in json.loads((out / "state.json").read_text())["history"][0]


def _three_tiny(tmp_path):
    """A base model, a model and that model trained further (perturbed), as files."""
    base = _trained_tiny()
    a = _trained_tiny()
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.02 * torch.randn_like(p))
    b = _trained_tiny()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return [save_weights(m, tmp_path / f"{n}.safetensors", default_detail=0.25)
            for n, m in (("base", base), ("from", a), ("to", b))]


def test_source_delta_gives_the_clean_source_base_plus_the_runs_difference(tmp_path):
    from gendrpix_video.training import source_delta
    base_p, from_p, to_p = _three_tiny(tmp_path)
    out = tmp_path / "src.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(out)]) == 0
    m = load_model(out, device="cpu", dtype=torch.float32)
    base, a, b = (load_model(p, device="cpu", dtype=torch.float32) for p in (base_p, from_p, to_p))
    assert m.sources == ("any", "clean") and m.metadata["sources"]["clean"]["to"] == str(to_p)
    ref = _trained_tiny()
    sa, sb, s0 = a.state_dict(), b.state_dict(), base.state_dict()
    ref.load_state_dict({k: s0[k] + sb[k] - sa[k] for k in s0})
    x = torch.rand(2, 3, 13, 17)
    for detail in (0.0, 0.25, 1.0):
        # source any: the base network (stored in fp16)
        assert torch.allclose(restore(m, x, (52, 68), detail), restore(base, x, (52, 68), detail), atol=5e-3)
        got = restore(m, x, (52, 68), detail, source="clean")
        want = restore(ref, x, (52, 68), detail)
        # 4-bit delta (random here, so with heavy tails): several times closer to base + delta than base is
        assert (got - want).abs().mean() < 0.35 * (restore(base, x, (52, 68), detail) - want).abs().mean()
    # saved again (fp16 base), the clean network survives; a half-precision model builds its twin in half
    again = load_model(save_weights(m, tmp_path / "again.safetensors"), device="cpu", dtype=torch.float32)
    assert torch.allclose(restore(again, x, (52, 68), 0.25, source="clean"),
                          restore(m, x, (52, 68), 0.25, source="clean"), atol=1e-5)
    h = load_model(out, device="cpu", dtype=torch.bfloat16)
    assert restore(h, x.bfloat16(), (52, 68), 0.25, source="clean").dtype == torch.bfloat16
    from gendrpix_video.loading import list_models, model_sources
    from gendrpix_video.weights import read_header
    assert model_sources(read_header(out)["__metadata__"]) == ("any", "clean")
    assert all(isinstance(i.sources, tuple) for i in list_models())


def test_a_continued_clean_run_keeps_the_sources_stages(tmp_path, capsys):
    from gendrpix_video.training import source_delta
    base_p, from_p, to_p = _three_tiny(tmp_path)
    first = tmp_path / "first.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(first)]) == 0
    stages = load_model(first, device="cpu").metadata["sources"]["clean"]["stages"]
    assert [st["model"] for st in stages] == [tmp_path.name]  # the run: its weights' folder
    # A run that went on from the first clean network: the difference is taken from the base's
    # network for any source, and the stages go on (one in between, then the run).
    again = tmp_path / "again.safetensors"
    assert source_delta.main(["--base", str(first), "--from", str(first), "--continues", "--stage", str(to_p),
                              "--to", str(to_p), "--out", str(again)]) == 0
    m = load_model(again, device="cpu", dtype=torch.float32)
    assert len(m.metadata["sources"]["clean"]["stages"]) == 3
    # its clean network is the run's weights (within the 4-bit storage), its network for any the base's
    x = torch.rand(1, 3, 13, 17)
    want = restore(load_model(to_p, device="cpu", dtype=torch.float32), x, (52, 68), 0.25)
    any_net = restore(m, x, (52, 68), 0.25)
    assert torch.equal(any_net, restore(load_model(first, device="cpu", dtype=torch.float32), x, (52, 68), 0.25))
    got = restore(m, x, (52, 68), 0.25, source="clean")
    assert (got - want).abs().mean() < 0.35 * (any_net - want).abs().mean()
    # --continues from a base without a network for the source: one line, exit 2
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--continues", "--to", str(to_p),
                              "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no stages for source 'clean'" in err[0]


def test_rebase_keeps_another_files_clean_network_over_a_new_base(tmp_path, capsys):
    """A new network for any source keeps the shipped clean network: --rebase stores that network
    as a delta over the new base (within the 4-bit storage) with its stages."""
    from gendrpix_video.training import source_delta
    base_p, from_p, to_p = _three_tiny(tmp_path)
    old = tmp_path / "old.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(old)]) == 0
    new = tmp_path / "new.safetensors"
    assert source_delta.main(["--base", str(from_p), "--rebase", str(old), "--out", str(new)]) == 0
    m, o = (load_model(p, device="cpu", dtype=torch.float32) for p in (new, old))
    x = torch.rand(1, 3, 13, 17)
    want = restore(o, x, (52, 68), 0.25, source="clean")
    any_net = restore(m, x, (52, 68), 0.25)
    assert torch.allclose(any_net, restore(load_model(from_p, device="cpu", dtype=torch.float32), x, (52, 68), 0.25),
                          atol=5e-3)
    assert (restore(m, x, (52, 68), 0.25, source="clean") - want).abs().mean() < 0.35 * (any_net - want).abs().mean()
    meta = m.metadata["sources"]["clean"]
    assert meta["stages"] == o.metadata["sources"]["clean"]["stages"] and meta["rebased_from"] == str(old)
    # --rebase from a file without a clean network, or with --from/--to too: one line, exit 2
    assert source_delta.main(["--base", str(from_p), "--rebase", str(base_p), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "has no network for source 'clean'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        source_delta.main(["--base", str(from_p), "--rebase", str(old), "--from", str(from_p), "--to", str(to_p),
                           "--out", str(tmp_path / "y.safetensors")])


def test_a_damaged_source_delta_is_a_weights_error(tmp_path):
    from safetensors.torch import load_file, save_file
    from gendrpix_video.training import source_delta
    from gendrpix_video.weights import WeightsError, read_header
    base_p, from_p, to_p = _three_tiny(tmp_path)
    out = tmp_path / "src.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(out)]) == 0
    meta = read_header(out)["__metadata__"]
    tensors = load_file(str(out))
    q4 = next(k for k in tensors if k.endswith(".q4"))
    cut = dict(tensors)
    cut.pop(q4)
    save_file(cut, str(tmp_path / "cut.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="incomplete 'clean' delta"):
        load_model(tmp_path / "cut.safetensors", device="cpu")
    bad = dict(tensors)
    bad[q4] = torch.zeros(bad[q4].shape[0], bad[q4].shape[1] + 1, dtype=torch.uint8)
    save_file(bad, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="has shape"):
        load_model(tmp_path / "bad.safetensors", device="cpu")
    none = {k: v for k, v in tensors.items() if not k.startswith("source.")}
    save_file(none, str(tmp_path / "none.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="no delta"):
        load_model(tmp_path / "none.safetensors", device="cpu")


def test_training_from_a_model_with_a_source_delta_drops_it(tmp_path):
    from gendrpix_video.training import source_delta
    base_p, from_p, to_p = _three_tiny(tmp_path)
    init = tmp_path / "src.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(init)]) == 0
    photos = make_photo_set(tmp_path / "photos")
    out = tmp_path / "run"
    assert train_mod.main(["--config", "tiny", "--init", str(init), "--data", str(photos), "--teacher", "test-bicubic",
                           "--batch", "4", "--crop", "64", "--bank", "2", "--refresh", "1", "--device", "cpu",
                           "--eval-every", "1000", "--max-steps", "1", "--out", str(out)]) == 0
    assert load_model(out / "model.safetensors", device="cpu").sources == ("any",)


def test_a_source_network_keeps_its_own_default_detail(tmp_path):
    """A clean network rebased over a base with another default detail runs at its own when none
    is given: restore, the pipeline's plan and the twin all say so; a given detail still wins."""
    from gendrpix_video.policy import resolve_detail
    from gendrpix_video.training import source_delta
    base_p, from_p, to_p = _three_tiny(tmp_path)
    old = tmp_path / "old.safetensors"
    assert source_delta.main(["--base", str(base_p), "--from", str(from_p), "--to", str(to_p), "--out", str(old)]) == 0
    one = save_weights(load_model(from_p, device="cpu", dtype=torch.float32), tmp_path / "one.safetensors",
                       default_detail=1.0)
    new = tmp_path / "new.safetensors"
    assert source_delta.main(["--base", str(one), "--rebase", str(old), "--out", str(new)]) == 0
    m = load_model(new, device="cpu", dtype=torch.float32)
    assert (m.default_detail, resolve_detail(m, None, "clean"), resolve_detail(m, 0.5, "clean")) == (1.0, 0.25, 0.5)
    assert m.for_source("clean")[0].default_detail == 0.25
    x = torch.rand(1, 3, 13, 17)
    assert torch.equal(restore(m, x, (52, 68), source="clean"), restore(m, x, (52, 68), 0.25, source="clean"))
    assert torch.equal(restore(m, x, (52, 68)), restore(m, x, (52, 68), 1.0))
