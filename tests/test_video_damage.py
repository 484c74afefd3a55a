"""A clip with bytes overwritten in the middle: by default every frame FFmpeg can decode is in the
output at its exact timestamp and the damaged time range is named in the summary; --strict stops
at the damage, keeping the finished segments for --resume. The input is never modified."""
import json
from fractions import Fraction

import av
import pytest

from video_fixtures import damage_clip, file_fingerprint, make_clip, packets, run_upscale, video_pts

PTS = [i * 40 for i in range(48)]
PREFIX = "gendrpix-video: error: "


def decodable_pts(path) -> list[Fraction]:
    """Times of the frames FFmpeg decodes from a damaged file, going on past the packets it rejects."""
    out = []
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        for pkt in c.demux(vs):
            try:
                out += [Fraction(f.pts) * vs.time_base for f in vs.decode(pkt)]
            except av.error.FFmpegError:
                continue
    return out


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """An H.264 clip in Matroska (GOPs of 12) with three packets in its middle overwritten."""
    root = tmp_path_factory.mktemp("damaged")
    clean = make_clip(root / "clean.mkv", codec="libx264", pts_ms=PTS, options={"g": "12"})
    return clean, damage_clip(clean, root / "damaged.mkv")


def test_damage_is_decoded_past_and_named(damaged, tiny_model, tmp_path, capsys):
    clean, src = damaged
    before = file_fingerprint(src)
    whole, exist = video_pts(clean), decodable_pts(src)
    missing = sorted(set(whole) - set(exist))
    assert missing and len(exist) > 40  # the damage costs FFmpeg frames, not the clip

    out = tmp_path / "out.mkv"
    code, stdout, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", "ffv1",
                                    "--pix-fmt", "yuv420p", "--scale", "2", "--quiet")
    assert code == 0, err
    assert video_pts(out) == exist                    # every undamaged frame, at its exact time
    assert packets(out, "audio") == packets(src, "audio")
    note = [l for l in stdout.splitlines() if "damaged input at" in l]
    assert len(note) == 1, stdout
    spans = [tuple(float(x) for x in s.removesuffix("s").split("-"))
             for s in note[0].split("damaged input at ")[1].split(":")[0].split(", ")]
    step = 0.04
    for t in missing:  # each lost frame lies in a named range
        assert any(a - 2 * step <= float(t) <= b + 2 * step for a, b in spans), (t, spans)
    assert file_fingerprint(src) == before


def test_strict_stops_at_damage_and_keeps_finished_segments(damaged, tiny_model, tmp_path, capsys):
    clean, src = damaged
    before = file_fingerprint(src)
    preset = tmp_path / "p.yaml"
    preset.write_text("codec: ffv1\npix_fmt: yuv420p\nsegment_frames: 4\nbatch: 2\n")
    out = tmp_path / "out.mkv"
    common = ["--model", tiny_model, "--preset", preset, "--scale", "2", "--quiet"]
    code, stdout, err = run_upscale(capsys, src, "-o", out, "--strict", *common)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{PREFIX}{src}: damaged at ") and "--resume" in line, line
    assert not out.exists()
    workdir = tmp_path / ".out.mkv.gendrpix"
    state = json.loads((workdir / "state.json").read_text())
    kept = [s["index"] for s in state["segments"]]
    assert kept and kept == list(range(len(kept)))   # the finished segments before the damage
    assert not (workdir / "lock").exists()

    code, stdout, err = run_upscale(capsys, src, "-o", out, "--resume", *common)
    assert code == 0, err
    assert video_pts(out) == decodable_pts(src)
    assert "damaged input at" in stdout
    assert f"({4 * len(kept)} resumed)" in stdout       # the kept segments were used, not redone
    assert file_fingerprint(src) == before


def test_source_auto_looks_past_damage(damaged, tiny_source_model, tmp_path, capsys):
    """--source auto samples frames over the whole file: damage where it seeks costs it frames,
    never the run; a file of one frame gives that frame."""
    from gendrpix_video.video.decode import sample_frames
    from gendrpix_video.video.probe import probe

    _, src = damaged
    before = file_fingerprint(src)
    frames = sample_frames(probe(src), 8)
    assert 1 <= len(frames) <= 8 and all(f.ndim == 3 and f.shape[2] == 3 for f in frames)
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "out.mkv", "--model", tiny_source_model,
                               "--codec", "ffv1", "--pix-fmt", "yuv420p", "--scale", "2")
    assert code == 0, err
    assert "(auto: damage " in err and file_fingerprint(src) == before
    one = make_clip(tmp_path / "one.mkv", codec="ffv1", pts_ms=[0])
    assert len(sample_frames(probe(one), 8)) >= 1
