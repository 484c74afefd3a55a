"""CUDA checks of the core (marker `gpu`: skipped without CUDA, run on the GPU machine)."""

import pytest
import torch

from gendrpix_video import build_model, load_model, restore, save_weights

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    m = build_model("tiny")
    torch.nn.init.normal_(m.unet.conv_out.weight, std=0.02)
    return save_weights(m, tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.mark.parametrize("detail", [1.0, 1.5])
def test_cuda_bf16_matches_cpu_fp32(weights, detail):
    cpu = load_model(weights, device="cpu")
    gpu = load_model(weights, device="cuda")   # bf16, channels-last by default on CUDA
    assert gpu.dtype == torch.bfloat16
    x = torch.rand(2, 3, 45, 61)
    a = restore(cpu, x, (90, 122), detail=detail)
    b = restore(gpu, x.cuda(), (90, 122), detail=detail)
    assert b.is_cuda and b.dtype == x.dtype and b.shape == a.shape
    assert (a - b.cpu()).abs().max() < 0.03


def test_cuda_fp32_matches_cpu_closely(weights):
    cpu = load_model(weights, device="cpu")
    gpu = load_model(weights, device="cuda", dtype=torch.float32)
    x = torch.rand(1, 3, 32, 32)
    assert (restore(cpu, x, (64, 64)) - restore(gpu, x, (64, 64))).abs().max() < 1e-3


def test_restore_on_a_side_stream(weights):
    gpu = load_model(weights, device="cuda")
    x = torch.rand(4, 3, 32, 32, device="cuda")
    ref = restore(gpu, x, (64, 64), detail=1.3)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        out = restore(gpu, x, (64, 64), detail=1.3)
    s.synchronize()
    assert torch.equal(out, ref)


def test_fa4_self_attention_matches_sdpa():
    """The optional FlashAttention-4 backend (PyPI flash-attn-4) computes what SDPA computes."""
    pytest.importorskip("flash_attn.cute")
    from gendrpix_video import accel
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 5, 4096, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    got = accel._fa4_attention()(q, k, v)
    assert got.shape == ref.shape and (got.float() - ref.float()).abs().max() < 2e-2


def test_the_default_s_clean_network_runs_on_cuda_as_on_the_cpu():
    """The clean-source network is built from the weights file's delta on the model's device and dtype."""
    cpu = load_model(None, device="cpu", dtype=torch.float32)
    gpu = load_model(None, device="cuda")
    x = torch.rand(1, 3, 40, 56)
    a = restore(cpu, x, (160, 224), source="clean")
    b = restore(gpu, x.cuda(), (160, 224), source="clean")
    twin, _ = gpu.for_source("clean")
    assert twin is not gpu and twin.device.type == "cuda" and twin.dtype == torch.bfloat16
    assert twin.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert (a - b.cpu()).abs().mean() < 0.01
    assert (restore(gpu, x.cuda(), (160, 224)) - b).abs().mean() > 1e-3


def test_frames_on_their_own_grid_phases_run_on_cuda_as_on_the_cpu(weights):
    cpu = load_model(weights, device="cpu")
    gpu = load_model(weights, device="cuda")
    x = torch.rand(3, 3, 24, 40)
    positions = [(0.0, 0.0), (0.25, -0.75), (-1.0, 0.5)]
    for detail in (0.0, 0.25, 1.0):
        a = restore(cpu, x, (96, 160), detail=detail, positions=positions)
        b = restore(gpu, x.cuda(), (96, 160), detail=detail, positions=positions)
        assert (a - b.cpu()).abs().max() < 0.03


def _engine_runs(seed: int, runs, **cfg_kw) -> dict:
    """A one-pixel-a-frame pan (6 frames, segments of 4) through the engine: {name: first planes}
    for each (name, device, EngineConfig changes) of `runs`, the shipped default on each device."""
    import dataclasses

    import numpy as np
    from gendrpix_video.video.colour import layout
    from gendrpix_video.video.decode import Frame
    from gendrpix_video.video.engine import Engine, EngineConfig
    models = {d: load_model(None, device=d) for d in {dev for _, dev, _ in runs}}
    lay = layout("yuv444p")
    base = (np.random.default_rng(seed).random((48, 72)) * 255).astype(np.uint8)
    frames = [Frame(t, t, [np.ascontiguousarray(np.roll(base, t, 1)[:, :64])] * 3, None) for t in range(6)]
    cfg = EngineConfig(in_layout=lay, in_size=(48, 64), in_matrix=1, in_full=False, out_layout=lay,
                       out_size=(96, 128), out_matrix=1, out_full=False, batch=4, segment_frames=4, **cfg_kw)
    got = {}
    for name, dev, change in runs:
        out = []
        Engine(models[dev], dataclasses.replace(cfg, **change), torch.device(dev)).run(
            [frames[:4], frames[4:]], lambda f, planes: out.append(planes[0].astype(int)))
        got[name] = out
    return got


def test_the_cuda_engine_follows_the_grid_as_the_cpu_engine_does():
    """The CUDA engine (streams, pinned buffers) with --grid follow: its frames as the CPU engine's."""
    import numpy as np
    got = _engine_runs(0, [("cpu", "cpu", {}), ("cuda", "cuda", {}), ("fixed", "cuda", {"grid": "fixed"})],
                       grid="follow")
    assert len(got["cuda"]) == 6
    assert max(np.abs(a - b).max() for a, b in zip(got["cpu"], got["cuda"])) <= 12
    # the first frame of each segment sits at 0 either way; the moved ones are restored elsewhere
    for t in (0, 4):
        assert np.abs(got["cuda"][t] - got["fixed"][t]).max() <= 1
    assert min(np.abs(got["cuda"][t] - got["fixed"][t]).mean() for t in (1, 2, 3, 5)) > 0.3


def test_the_cuda_engine_filters_as_the_cpu_engine_does():
    """The temporal filter on the CUDA engine (the compute stream, across batches): its frames as
    the CPU engine's, and unlike the unfiltered frames after each segment's first."""
    import numpy as np
    got = _engine_runs(1, [("cpu", "cpu", {}), ("cuda", "cuda", {}), ("off", "cuda", {"temporal": 0.0})],
                       grid="follow", temporal=0.7)
    assert max(np.abs(a - b).max() for a, b in zip(got["cpu"], got["cuda"])) <= 12
    for t in (0, 4):
        assert np.abs(got["cuda"][t] - got["off"][t]).max() <= 1
    assert min(np.abs(got["cuda"][t] - got["off"][t]).mean() for t in (1, 2, 3, 5)) > 0.2
