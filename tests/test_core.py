"""The core: network, PadCFG, weights file. CPU, tiny config."""

import json
import os
import stat
import struct

import pytest
import torch
import torch.nn.functional as F

from gendrpix_video import CONFIGS, WeightsError, build_model, get_config, load_model, restore, save_weights
from gendrpix_video.configs import SHUFFLE
from gendrpix_video.model import NEG, POS
from gendrpix_video.padcfg import grid_phases


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = build_model("tiny")
    # A trained-looking model: random conv_out, so the network's output is not just bicubic.
    torch.nn.init.normal_(m.unet.conv_out.weight, std=0.02)
    return m.eval()


def test_pixel_unshuffle_round_trip():
    x = torch.rand(2, 3, 64, 48)
    z = F.pixel_unshuffle(x, SHUFFLE)
    assert z.shape == (2, 192, 8, 6)
    assert torch.equal(F.pixel_shuffle(z, SHUFFLE), x)


def test_padcfg_matches_formula_by_hand(tiny):
    x = torch.rand(1, 3, 24, 20)
    size, w = (48, 40), 1.7
    up = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    # Paper's offsets: (4,4,4,4) for c_pos and (3,5,3,5) for c_neg (left, right, top, bottom).
    with torch.no_grad():
        g_pos = tiny(F.pad(up, (4, 4, 4, 4), mode="reflect"), torch.tensor([POS]))[..., 4:52, 4:44]
        g_neg = tiny(F.pad(up, (3, 5, 3, 5), mode="reflect"), torch.tensor([NEG]))[..., 3:51, 3:43]
    expected = (w * g_pos + (1 - w) * g_neg).clamp(0, 1)
    got = restore(tiny, x, size, detail=w, seed=0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def unet_batches(model, fn):
    """fn()'s result and the batch size of each UNet pass it ran."""
    calls = []
    hook = model.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        return fn(), calls
    finally:
        hook.remove()


def test_detail_one_is_a_single_pass(tiny):
    x = torch.rand(2, 3, 16, 16)
    got, calls = unet_batches(tiny, lambda: restore(tiny, x, (32, 32), detail=1.0))
    assert calls == [2]  # one UNet pass over the 2 frames, no second branch
    up = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False)
    with torch.no_grad():
        single = tiny(F.pad(up, (4, 4, 4, 4), mode="reflect"))[..., 4:36, 4:36].clamp(0, 1)
    torch.testing.assert_close(got, single, atol=1e-6, rtol=0)


def test_detail_zero_is_the_negative_branch_alone_in_one_pass(tiny):
    x = torch.rand(2, 3, 16, 16)
    got, calls = unet_batches(tiny, lambda: restore(tiny, x, (32, 32), detail=0.0))
    assert calls == [2]
    # what the two-branch formula gives at w = 0, on the c_neg phase (3, 5, 3, 5)
    up = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False)
    with torch.no_grad():
        g_neg = tiny(F.pad(up, (3, 5, 3, 5), mode="reflect"), torch.tensor([NEG, NEG]))[..., 3:35, 3:35]
    torch.testing.assert_close(got, g_neg.clamp(0, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(got, restore(tiny, x, (32, 32), detail=1e-9), atol=1e-5, rtol=0)


def test_no_detail_means_the_model_s_own_default(tiny, tmp_path):
    x = torch.rand(1, 3, 16, 16)
    assert tiny.default_detail == 1.0  # a model that says nothing: one pass
    assert torch.equal(restore(tiny, x, (32, 32)), restore(tiny, x, (32, 32), detail=1.0))
    p = save_weights(tiny, tmp_path / "d.safetensors", default_detail=0.25)
    m = load_model(p, device="cpu")
    assert m.default_detail == 0.25
    assert torch.equal(restore(m, x, (32, 32)), restore(m, x, (32, 32), detail=0.25))
    assert not torch.equal(restore(m, x, (32, 32)), restore(m, x, (32, 32), detail=1.0))
    # and it survives a re-save without being named again
    assert load_model(save_weights(m, tmp_path / "e.safetensors"), device="cpu").default_detail == 0.25


def test_guidance_runs_both_branches_in_one_batch(tiny):
    _, calls = unet_batches(tiny, lambda: restore(tiny, torch.rand(3, 3, 16, 16), (32, 32), detail=2.0))
    assert calls == [6]


def test_same_seed_same_output_other_seed_other_phase(tiny):
    x = torch.rand(1, 3, 20, 28)
    a = restore(tiny, x, (40, 56), detail=1.5, seed=7)
    b = restore(tiny, x, (40, 56), detail=1.5, seed=7)
    assert torch.equal(a, b)
    assert grid_phases(0) == ((4, 4, 4, 4), (3, 5, 3, 5))
    phases = {grid_phases(s) for s in range(1, 40)}
    assert len(phases) > 10 and all(sum(p[:2]) == 8 and sum(p[2:]) == 8 for ph in phases for p in ph)
    assert not torch.equal(a, restore(tiny, x, (40, 56), detail=1.5, seed=grid_seed_with_other_phase(7)))


def grid_seed_with_other_phase(seed):
    return next(s for s in range(1, 100) if grid_phases(s) != grid_phases(seed))


@pytest.mark.parametrize("size", [(403, 721), (61, 97), (8, 8), (33, 17)])
def test_odd_sizes_exact(tiny, size):
    x = torch.rand(1, 3, 31, 45)
    for detail in (1.0, 1.3):
        y = restore(tiny, x, size, detail=detail)
        assert y.shape == (1, 3, *size)
        assert y.min() >= 0 and y.max() <= 1


def test_restore_keeps_device_dtype_and_validates(tiny):
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    assert restore(tiny, x, (24, 24)).dtype == torch.float64
    with pytest.raises(ValueError, match="N x 3 x h x w"):
        restore(tiny, torch.rand(3, 16, 16), (32, 32))
    with pytest.raises(TypeError, match="float"):
        restore(tiny, torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (16, 16))


def test_untrained_model_is_bicubic():
    m = build_model("tiny")
    x = torch.rand(1, 3, 20, 20)
    up = F.interpolate(x, size=(40, 40), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(restore(m, x, (40, 40)), up, atol=1e-6, rtol=0)


def test_constants_are_computed_once_per_load(tiny):
    x = torch.rand(1, 3, 16, 16)
    restore(tiny, x, (32, 32))
    calls = []
    hook = tiny.unet.time_embedding.register_forward_hook(lambda *a: calls.append(1))
    k_hook = tiny.unet.cross_attentions[0].to_k.register_forward_hook(lambda *a: calls.append(2))
    try:
        for _ in range(3):
            restore(tiny, x, (32, 32), detail=1.5)
    finally:
        hook.remove()
        k_hook.remove()
    assert calls == []
    # Changing the weights (load_state_dict) recomputes them.
    tiny.load_state_dict(tiny.state_dict())
    assert tiny._cache is None


def test_meta_device_sd21():
    m = build_model("sd21", device="meta")
    n = sum(p.numel() for p in m.unet.parameters())
    assert 860e6 < n < 870e6
    assert m.unet.conv_in.weight.shape == (320, 192, 3, 3)
    assert m.unet.conv_out.weight.shape == (192, 320, 3, 3)


# -- weights file -----------------------------------------------------------------------------------

def test_save_load_round_trip(tiny, tmp_path):
    p = save_weights(tiny, tmp_path / "w.safetensors", provenance={"steps": 12}, license="Apache-2.0",
                     scale_range=(2, 4))
    m = load_model(p, device="cpu")
    for (k, a), (k2, b) in zip(tiny.state_dict().items(), m.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert m.config == tiny.config
    assert m.scale_range == (2.0, 4.0)
    assert m.metadata["provenance"]["steps"] == 12 and m.metadata["license"] == "Apache-2.0"
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(restore(m, x, (32, 32), detail=1.4), restore(tiny, x, (32, 32), detail=1.4))
    # the file's mode follows the umask, as other outputs do (safetensors alone makes it owner-only)
    mask = os.umask(0o022)
    try:
        assert stat.S_IMODE(save_weights(tiny, tmp_path / "m.safetensors").stat().st_mode) == 0o644
    finally:
        os.umask(mask)


def test_save_fp16_for_shipping(tiny, tmp_path):
    p = save_weights(tiny, tmp_path / "h.safetensors", dtype=torch.float16)
    m = load_model(p, device="cpu", dtype=torch.float16)
    assert m.dtype == torch.float16
    assert torch.equal(m.unet.conv_in.weight, tiny.unet.conv_in.weight.half())


@pytest.fixture
def good_file(tiny, tmp_path):
    return save_weights(tiny, tmp_path / "good.safetensors")


def rewrite_header(path, edit):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    edit(header)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def test_bad_file_not_safetensors(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"PK\x03\x04 this is a zip or a pickle, not safetensors" * 4)
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_model(p)
    p.write_bytes(b"")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_model(p)


def test_bad_file_missing(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="unknown model"):
        load_model("no-such-model")


def test_bad_file_truncated(good_file):
    raw = good_file.read_bytes()
    good_file.write_bytes(raw[:len(raw) - 100])
    with pytest.raises(WeightsError, match="truncated"):
        load_model(good_file)


def test_bad_file_unknown_config(good_file):
    def edit(h):
        h["__metadata__"]["config_name"] = "huge9000"
    rewrite_header(good_file, edit)
    with pytest.raises(WeightsError, match="unknown config 'huge9000'"):
        load_model(good_file)


def test_bad_file_missing_tensors(good_file):
    rewrite_header(good_file, lambda h: (h.pop("c_neg"), h.pop("conv_in.bias")))
    with pytest.raises(WeightsError, match="missing 2 tensors.*c_neg"):
        load_model(good_file)


def test_bad_file_wrong_shape(good_file):
    def edit(h):
        h["conv_in.bias"]["shape"] = [16, 2]
    rewrite_header(good_file, edit)
    with pytest.raises(WeightsError, match=r"conv_in.bias has shape \(16, 2\).*expects \(32,\)"):
        load_model(good_file)


def test_bad_file_no_metadata(tiny, tmp_path):
    from safetensors.torch import save_file
    p = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.unet.state_dict().items()}, str(p))
    with pytest.raises(WeightsError, match="no gendrpix-video metadata"):
        load_model(p)


def test_bad_default_detail_in_metadata(good_file):
    def edit(h):
        h["__metadata__"]["default_detail"] = "-3"
    rewrite_header(good_file, edit)
    with pytest.raises(WeightsError, match="default_detail must be in"):
        load_model(good_file)


# -- diffusers layout ---------------------------------------------------------------------------------

import diffusers  # noqa: E402  (the test extra)


@pytest.mark.parametrize("name", ["sd21", "small", "tiny"])
def test_state_dict_matches_diffusers(name):
    cfg = get_config(name)
    with torch.device("meta"):
        ref = diffusers.UNet2DConditionModel(**cfg.diffusers_config())
    ours = build_model(name, device="meta").unet
    a = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert a == b


def test_same_function_as_diffusers():
    torch.manual_seed(1)
    cfg = get_config("tiny")
    ref = diffusers.UNet2DConditionModel(**cfg.diffusers_config()).eval()
    m = build_model("tiny")
    m.unet.load_state_dict(ref.state_dict())
    z = torch.randn(2, 192, 9, 13)  # odd latent sizes exercise the upsampler's size matching
    ctx = torch.randn(2, cfg.context_tokens, cfg.cross_attention_dim)
    with torch.no_grad():
        r = ref(z, cfg.timestep, encoder_hidden_states=ctx).sample
        o = m.unet(z, m.unet.conditioning(ctx), torch.tensor([0, 1]))
    torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-4)


def test_registry_has_the_sizes_the_issue_asks_for():
    counts = {n: sum(p.numel() for p in build_model(n, device="meta").parameters()) for n in CONFIGS}
    assert any(20e6 <= c <= 80e6 for c in counts.values())
    assert any(c < 10e6 for n, c in counts.items() if n != "tiny")


def test_the_shipped_default_is_trained_small_enough_and_says_its_detail(capsys):
    from gendrpix_video.cli import main
    from gendrpix_video.loading import shipped_models
    path = shipped_models()["default"]
    assert path.stat().st_size <= 50 * 2**20  # the package budget for the embedded model
    m = load_model(None, device="cpu")
    prov = m.metadata["provenance"]
    assert m.trained and m.config.name == "wide-scale" and m.default_detail == 1.0
    assert [st["stage"] for st in prov["stages"]] == [1, 2, 2, 2, 2, 2, 2] and prov["gpu_minutes"] > 0
    assert prov["stages"][-1]["video_fraction"] > 0  # its last stage saw codec degradations
    assert prov["stages"][-1]["pattern_weight"] > 0  # and the pattern loss
    # each network runs its own refiner, at the detail it was trained at
    from gendrpix_video.policy import resolve_detail
    clean = m.for_source("clean")[0]
    assert resolve_detail(m, None, "clean") == 1.0 and clean.default_detail == 1.0
    assert m.config.refiner == (32, 4) and m.refine_strength == 1.0 and clean.refine_strength == 0.75
    assert prov["refiner"]["source"] == "any" and prov["refiner"]["detail"] == 1.0
    assert prov["refiner"]["teacher"] == "realesrgan-x4plus" and prov["refiner"]["edge_gate"] > 0
    assert m.metadata["sources"]["clean"]["refiner"]["source"] == "clean"
    assert any(not torch.equal(a, b) for a, b in zip(m.refine.state_dict().values(),
                                                     clean.refine.state_dict().values()))
    from gendrpix_video.loading import list_models
    info = list_models("default")[0]
    assert info.source_details == {"clean": 1.0} and info.refiner == {"any": 1.0, "clean": 0.75}
    # clean sources get their own network: a run on clean batches alone, stored as a delta
    assert m.sources == ("any", "clean")
    assert all(st["clean_fraction"] == 1.0 for st in m.metadata["sources"]["clean"]["stages"])
    assert "Apache-2.0" in m.metadata["license"]
    assert main(["info"]) == 0
    printed = capsys.readouterr().out
    assert "default detail 1 (clean 1)  sources any,clean  refiner any,clean" in printed
    assert "--source auto: damage detector " in printed and "damage.safetensors (threshold 0.37)" in printed


def test_bench_flops_counts_a_wider_network_without_a_gpu(capsys):
    """`bench --flops`: a wider first level costs more operations a pass, counted on the meta device."""
    from gendrpix_video.measure.bench import main as bench_main
    assert bench_main(["--flops", "--configs", "tiny,tiny@64/64", "--sizes", "128x64"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == ["tiny", "tiny@64/64"] and rows[0][-1] == "x1.00"
    assert float(rows[1][-1][1:]) > 1.5 and float(rows[1][2][:-1]) > float(rows[0][2][:-1])  # x ratio, parameters
    assert bench_main(["--flops", "--configs", "nope"]) == 2
    assert "'nope' is not a config" in capsys.readouterr().err


def test_model_front_ends_import_without_pyav():
    """A GPU node measuring or training the model alone has no PyAV: bench, eval and train import."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['av'] = None\n"  # `import av` now fails
            "import gendrpix_video.measure.bench as b, gendrpix_video.training.realeval, gendrpix_video.training.train\n"
            "sys.exit(b.main(['--flops', '--configs', 'tiny', '--sizes', '64x64']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tiny")


def test_supersample_restores_bigger_and_shrinks_up_to_the_largest_scale(tiny):
    """supersample k: the model restores to k times the output (no more than its x4 allows) and
    the result is shrunk to the output, bicubic with antialiasing; k 1, or a frame already at x4,
    is the plain restore."""
    from gendrpix_video.padcfg import restore_any_scale
    from gendrpix_video.policy import check_supersample, run_size

    x = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    assert run_size(tiny, (20, 30), (40, 60), 1.5) == (60, 90)
    assert run_size(tiny, (20, 30), (60, 90), 2.0) == (80, 120)      # capped at x4
    assert run_size(tiny, (20, 30), (80, 120), 2.0) == (80, 120)     # already at x4
    got = restore_any_scale(tiny, x, (40, 60), 1.0, supersample=1.5)
    big = restore(tiny, x, size=(60, 90), detail=1.0)
    want = F.interpolate(big, size=(40, 60), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    assert got.shape == (2, 3, 40, 60) and torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, restore(tiny, x, size=(40, 60), detail=1.0), atol=1e-3)
    assert torch.equal(restore_any_scale(tiny, x, (40, 60), 1.0, supersample=1.0), restore(tiny, x, size=(40, 60), detail=1.0))
    assert torch.equal(restore_any_scale(tiny, x, (80, 120), 1.0, supersample=2.0), restore(tiny, x, size=(80, 120), detail=1.0))
    for bad in (0.5, 2.5, "2", True):
        with pytest.raises(ValueError, match="supersample must be a number from 1 to 2"):
            check_supersample(bad)
