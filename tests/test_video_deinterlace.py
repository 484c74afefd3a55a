"""Interlaced input: FFmpeg's bwdif before the model (`--deinterlace`, `decode.Deinterlacer`), one
frame out per frame in, every timestamp kept, a part of the file the same as in a whole-file run."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from video_fixtures import decoded_frames, run_upscale

W, H, N = 96, 64, 10


def comb(y: np.ndarray) -> float:
    """Combing: how far each row is from the mean of its neighbours, on luma (levels)."""
    y = y.astype(np.float32)
    return float(np.abs(2 * y[1:-1] - y[:-2] - y[2:]).mean())


def woven(k: int) -> np.ndarray:
    """Frame k of a bar moving 6 pixels a field: top field at time 2k, bottom field at 2k + 1."""
    out = np.full((H, W), 40, np.uint8)
    for field in (0, 1):
        x = 6 * (2 * k + field)
        out[field::2, x:x + 12] = 220
    return out


@pytest.fixture
def interlaced(tmp_path):
    path = tmp_path / "tff.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1", "qp": "0"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        v.codec_context.field_order = 2  # tt
        for k in range(N):
            f = av.VideoFrame(W, H, "yuv420p")
            f.planes[0].update(woven(k).tobytes())
            for p in (1, 2):
                f.planes[p].update(bytes([128]) * (f.planes[p].line_size * f.planes[p].height))
            f.pts, f.time_base = k, Fraction(1, 25)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


def frames(path, **kw):
    from gendrpix_video.video.decode import Decoder
    from gendrpix_video.video.probe import probe
    with Decoder(probe(path), **kw) as d:
        return [(f.pts, np.array(f.planes[0])) for f in d]


def test_decoder_rebuilds_fields_and_keeps_every_timestamp(interlaced):
    plain, deint = frames(interlaced), frames(interlaced, deinterlace=True)
    assert [p for p, _ in deint] == [p for p, _ in plain] and len(deint) == N
    assert np.mean([comb(y) for _, y in plain]) > 20           # the bar's two fields apart
    assert np.mean([comb(y) for _, y in deint]) < 0.25 * np.mean([comb(y) for _, y in plain])
    # top field first: each frame shows the top field's time, the bar at 12 k .. 12 k + 12
    for k, (_, y) in enumerate(deint[1:7], 1):  # while the bar is in the frame
        bright = (y[8:-8] > 130).mean(0)
        assert abs((bright * np.arange(W)).sum() / bright.sum() - (12 * k + 5.5)) < 1.5, k


def test_a_part_decodes_as_in_the_whole_file(interlaced):
    """A resumed or distributed job starts mid-file: its first frame still has the frame before."""
    whole = dict(frames(interlaced, deinterlace=True))
    part = frames(interlaced, deinterlace=True, start=0.2, duration=0.2)
    assert [p for p, _ in part] == [p for p in sorted(whole) if 0.2 <= float(p * Fraction(1, 1000)) < 0.4]
    for pts, y in part:
        np.testing.assert_array_equal(y, whole[pts])


def test_cli_deinterlaces_interlaced_files_by_default(interlaced, tiny_model, tmp_path, capsys):
    args = ["--model", tiny_model, "--codec", "ffv1", "--pix-fmt", "yuv420p", "--scale", "2", "--device", "cpu"]
    code, out, err = run_upscale(capsys, interlaced, "-o", tmp_path / "auto.mkv", *args)
    assert code == 0, err
    assert "deinterlaced with bwdif" in out + err
    code, _, err = run_upscale(capsys, interlaced, "-o", tmp_path / "off.mkv", *args, "--quiet", "--deinterlace", "off")
    assert code == 0 and "interlaced" in err
    auto, off = decoded_frames(tmp_path / "auto.mkv"), decoded_frames(tmp_path / "off.mkv")
    assert len(auto) == len(off) == N
    assert np.mean([comb(f[:2 * H]) for f in auto]) < 0.5 * np.mean([comb(f[:2 * H]) for f in off])
    with av.open(str(tmp_path / "auto.mkv")) as a, av.open(str(interlaced)) as s:
        assert [p.pts * p.time_base for p in a.demux(video=0) if p.size] == \
               [p.pts * p.time_base for p in s.demux(video=0) if p.size]


def test_bad_deinterlace_value(interlaced, tiny_model, tmp_path, capsys):
    from gendrpix_video.video.presets import PresetError, UpscaleSettings
    with pytest.raises(SystemExit) as e:
        run_upscale(capsys, interlaced, "-o", tmp_path / "x.mkv", "--model", tiny_model, "--deinterlace", "yes")
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "--deinterlace" in err
    with pytest.raises(PresetError, match="bad value for 'deinterlace'"):
        UpscaleSettings().override("preset x.yaml", deinterlace="yes")
    assert not (tmp_path / "x.mkv").exists()
