"""The filter through `vspipe` (y4m to stdout, decoded by PyAV) and the benchmark's --smoke mode."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import av
import pytest
import torch

from vsgendrpix.bench import _vspipe, vspipe_env

REPO = Path(__file__).resolve().parents[1]

VPY = r'''
import vapoursynth as vs
from vsgendrpix import gendrpix

core = vs.core
src = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=int(frames), color=[90, 110, 150])
src = core.std.SetFrameProps(src, _Matrix=6, _Primaries=6, _Transfer=6)
rgb = core.resize.Bicubic(src, format=vs.RGBS, matrix_in_s="170m")
up = gendrpix(rgb, height=96, model=weights, batch_size=3, num_streams=2)
core.resize.Bicubic(up, format=vs.YUV420P8, matrix_s="170m").set_output()
'''


@pytest.fixture(scope="module")
def env():
    return vspipe_env()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from gendrpix_video import build_model, save_weights

    torch.manual_seed(0)
    m = build_model("tiny", device="cpu")
    with torch.no_grad():
        torch.nn.init.normal_(m.unet.conv_out.weight, std=0.01)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(m, path)
    return path


def test_vspipe_y4m_to_stdout_decodes(tmp_path, env, weights):
    script = tmp_path / "script.vpy"
    script.write_text(VPY)
    cmd = [_vspipe(), str(script), "-c", "y4m", "-", "-a", f"weights={weights}", "-a", "frames=7"]
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    header = proc.stdout.split(b"\n", 1)[0].split()  # nothing but the y4m stream on stdout
    assert header[0] == b"YUV4MPEG2" and b"W128" in header and b"H96" in header
    with av.open(io.BytesIO(proc.stdout), format="yuv4mpegpipe") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 7
    assert {(f.width, f.height) for f in frames} == {(128, 96)}
    assert frames[0].format.name == "yuv420p"
    y = frames[3].to_ndarray()[:96]
    assert 90 - 12 < y.mean() < 90 + 12  # still the source's luma


def test_vspipe_error_is_a_clear_vs_error(tmp_path, env):
    script = tmp_path / "bad.vpy"
    script.write_text(
        "import vapoursynth as vs\nfrom vsgendrpix import gendrpix\n"
        "gendrpix(vs.core.std.BlankClip(format=vs.YUV420P8, width=1920, height=1080)).set_output()\n"
    )
    proc = subprocess.run([_vspipe(), str(script), "-c", "y4m", "-"], capture_output=True, env=env, timeout=120)
    assert proc.returncode != 0 and proc.stdout == b""
    assert 'gendrpix: input must be RGBH or RGBS, got YUV420P8; convert with core.resize.Bicubic(clip, ' \
           'format=vs.RGBH, matrix_in_s="709")' in proc.stderr.decode()


def test_bench_smoke(env):
    proc = subprocess.run([sys.executable, "-m", "vsgendrpix.bench", "--smoke"], capture_output=True,
                          env=env, timeout=300, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["in_size"] == "64x48" and result["out_height"] == 96
    assert result["fps_overall"] > 0
