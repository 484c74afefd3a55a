"""Every bad input gets one line on stderr, a non-zero exit, no traceback, and an untouched input;
a batch goes on past a bad file and names it in the summary."""
import errno
import shutil

import pytest
import torch

from video_fixtures import file_fingerprint, make_clip, run_upscale

PREFIX = "gendrpix-video: error: "


def one_error(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def good(clips, tmp_path):
    src = tmp_path / "good.mkv"
    shutil.copy(clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p"), src)
    return src


def upscale_bad(capsys, tiny_model, src, *extra, out=None):
    before = file_fingerprint(src) if src.exists() else None
    out = out or src.parent / "out"
    if out.suffix == "" and not out.exists() and out.name == "out":
        out.mkdir()
    code, stdout, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", "ffv1",
                                    "--pix-fmt", "yuv420p", "--scale", "2", "--quiet", *extra)
    if before:
        assert file_fingerprint(src) == before
    assert code != 0
    return err


def test_missing_file(tmp_path, tiny_model, capsys):
    err = upscale_bad(capsys, tiny_model, tmp_path / "nope.mkv")
    one_error(err, "nope.mkv", "no such file")


def test_zero_bytes(tmp_path, tiny_model, capsys):
    src = tmp_path / "empty.mp4"
    src.write_bytes(b"")
    one_error(upscale_bad(capsys, tiny_model, src), "empty file")


def test_not_a_video(tmp_path, tiny_model, capsys):
    src = tmp_path / "notes.mkv"
    src.write_text("these are not frames\n" * 50)
    one_error(upscale_bad(capsys, tiny_model, src), "not a video")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated(suffix, tmp_path, tiny_model, capsys):
    full = make_clip(tmp_path / f"full{suffix}", codec="libx264" if suffix == ".mp4" else "ffv1",
                     audio="aac" if suffix == ".mp4" else "flac", pts_ms=[i * 40 for i in range(25)])
    src = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    src.write_bytes(data[: len(data) * 6 // 10])
    one_error(upscale_bad(capsys, tiny_model, src), "truncated")
    assert not (tmp_path / "out" / f"cut{suffix}").exists()
    assert not list((tmp_path / "out").iterdir())


def test_no_video_stream(tmp_path, tiny_model, capsys):
    import av
    import numpy as np
    src = tmp_path / "audio.mkv"
    with av.open(str(src), "w") as c:
        a = c.add_stream("flac", rate=48000)
        a.layout = "stereo"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.int16), format="s16", layout="stereo")
        f.sample_rate, f.pts = 48000, 0
        c.mux(a.encode(f))
        c.mux(a.encode(None))
    one_error(upscale_bad(capsys, tiny_model, src), "no video stream")


def test_unsupported_pixel_format(tmp_path, tiny_model, capsys):
    src = make_clip(tmp_path / "mono.nut", codec="rawvideo", pix_fmt="monob", audio=None, subtitle=None,
                    chapters=False, colour=None)
    one_error(upscale_bad(capsys, tiny_model, src), "unsupported pixel format monob")


def test_alpha_is_dropped_with_a_warning(tmp_path, tiny_model, capsys):
    src = make_clip(tmp_path / "alpha.mkv", codec="ffv1", pix_fmt="yuva420p")
    before = file_fingerprint(src)
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--scale", "2", "--quiet")
    assert code == 0
    assert err.strip().splitlines() == [
        "gendrpix-video: warning: alpha.mkv: yuva420p has an alpha channel: it is dropped, the output is opaque"]
    assert file_fingerprint(src) == before


def test_interlaced_warns_only_when_not_deinterlaced(tmp_path, tiny_model, capsys):
    src = make_clip(tmp_path / "tff.mkv", codec="libx264", interlaced=True,
                    options={"x264-params": "interlaced=1:tff=1"})
    args = ["--model", tiny_model, "--codec", "ffv1", "--pix-fmt", "yuv420p", "--scale", "2", "--quiet"]
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", *args, "--deinterlace", "off")
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gendrpix-video: warning: tff.mkv: interlaced"), err
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "d.mkv", *args)  # auto: bwdif, nothing to warn
    assert code == 0 and err.strip() == "", err


def test_output_folder_missing(good, tiny_model, capsys):
    err = upscale_bad(capsys, tiny_model, good, out=good.parent / "no" / "such" / "x.mkv")
    one_error(err, "does not exist")
    err = upscale_bad(capsys, tiny_model, good, good, out=good.parent / "missing_folder")  # 2 inputs: a folder
    one_error(err, "missing_folder", "does not exist")


def test_output_not_writable(good, tiny_model, capsys):
    blocker = good.parent / "file_not_folder"
    blocker.write_text("x")
    one_error(upscale_bad(capsys, tiny_model, good, out=blocker / "x.mkv"), "not a folder")


def test_output_equals_input(good, tiny_model, capsys):
    one_error(upscale_bad(capsys, tiny_model, good, out=good), "overwrite the input")
    one_error(upscale_bad(capsys, tiny_model, good, "--overwrite", out=good), "overwrite the input")


def test_existing_output_needs_overwrite(good, tiny_model, capsys, tmp_path):
    target = tmp_path / "exists.mkv"
    target.write_text("precious")
    one_error(upscale_bad(capsys, tiny_model, good, out=target), "exists", "--overwrite")
    assert target.read_text() == "precious"


def test_disk_full(good, tiny_model, capsys, monkeypatch, tmp_path):
    import gendrpix_video.video.pipeline as pipeline

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pipeline, "join", full)
    target = tmp_path / "full.mkv"
    one_error(upscale_bad(capsys, tiny_model, good, out=target), "disk full")
    assert not target.exists()
    assert not list(tmp_path.glob(".full.mkv*"))  # no work folder either


def test_gpu_out_of_memory(good, tiny_model, capsys, monkeypatch, tmp_path):
    import gendrpix_video.video.engine as engine

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(engine, "restore_any_scale", oom)
    line = one_error(upscale_bad(capsys, tiny_model, good, "--batch", "3", out=tmp_path / "oom.mkv"),
                     "out of GPU memory", "--batch")
    assert "now 3" in line


def test_debug_shows_traceback(tmp_path, tiny_model, capsys):
    src = tmp_path / "empty.mkv"
    src.write_bytes(b"")
    err = upscale_bad(capsys, tiny_model, src, "--debug")
    assert "Traceback" in err and PREFIX in err


def test_batch_continues_past_bad_files(good, tiny_model, capsys, tmp_path):
    bad = tmp_path / "bad.mkv"
    bad.write_text("nope")
    out = tmp_path / "outdir"
    out.mkdir()
    code, stdout, err = run_upscale(capsys, bad, good, tmp_path / "missing.mp4", "-o", out, "--model",
                                    tiny_model, "--codec", "ffv1", "--pix-fmt", "yuv420p", "--scale", "2",
                                    "--quiet")
    assert code == 1
    assert len(err.strip().splitlines()) == 2 and all(l.startswith(PREFIX) for l in err.strip().splitlines())
    assert (out / "good.mkv").exists()
    assert "bad.mkv" in stdout and "FAILED" in stdout and "good.mkv" in stdout and "missing.mp4" in stdout


def test_bad_preset_values_name_the_key(good, tiny_model, capsys, tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("codec: libx264\ncrf: lots\n")
    code, _, err = run_upscale(capsys, good, "--preset", p, "--model", tiny_model)
    assert code == 2
    one_error(err, "'crf'")
    p.write_text("codec: libx264\nbitrate: 5M\n")
    code, _, err = run_upscale(capsys, good, "--preset", p, "--model", tiny_model)
    assert code == 2
    one_error(err, "unknown key 'bitrate'")
    code, _, err = run_upscale(capsys, good, "--preset", "nonesuch", "--model", tiny_model)
    one_error(err, "unknown preset 'nonesuch'")


def test_bad_encoder_settings_name_the_setting(good, tiny_model, capsys, tmp_path):
    one_error(upscale_bad(capsys, tiny_model, good, "--pix-fmt", "yuv420p", "--codec", "prores_ks",
                          out=tmp_path / "x.mov"), "pix_fmt", "prores_ks")
