"""Real encode/decode round trips through `gendrpix-video upscale` for every encoder, 8 and 10 bit:
frame count, exact timestamps (VFR), audio/subtitle packets, chapters, metadata and colour tags."""
from fractions import Fraction

import av
import pytest

from gendrpix_video.video.encode import nvenc_available
from video_fixtures import file_fingerprint, packets, run_upscale, text_packets, video_pts

ENCODERS = [
    ("libx264", "yuv420p", ".mp4"), ("libx264", "yuv420p10le", ".mkv"),
    ("libx265", "yuv420p", ".mkv"), ("libx265", "yuv420p10le", ".mp4"),
    ("libsvtav1", "yuv420p", ".mkv"), ("libsvtav1", "yuv420p10le", ".mp4"),
    ("prores_ks", "yuv422p10le", ".mov"), ("prores_ks", "yuv444p10le", ".mkv"),
    ("ffv1", "yuv420p", ".mkv"), ("ffv1", "yuv422p10le", ".mkv"),
]


def check_same_streams(src, out):
    assert video_pts(out) == video_pts(src)                      # frame count and every timestamp
    assert packets(out, "audio") == packets(src, "audio")        # byte for byte, same times
    assert text_packets(out) == text_packets(src)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert [(c["start"] * Fraction(c["time_base"]), c["metadata"]) for c in a.chapters()] == \
               [(c["start"] * Fraction(c["time_base"]), c["metadata"]) for c in b.chapters()]
        assert b.metadata.get("title") == a.metadata.get("title")


@pytest.mark.parametrize("codec,pix_fmt,suffix", ENCODERS)
def test_encoder_round_trip(codec, pix_fmt, suffix, clips, tiny_model, tmp_path, capsys):
    src_kind = "10" if "10" in pix_fmt else "8"
    src = clips(f"src{src_kind}{suffix}", codec="ffv1" if suffix == ".mkv" else "libx264",
                pix_fmt="yuv420p10le" if src_kind == "10" else "yuv420p",
                audio="aac" if suffix != ".mkv" else "flac",
                colour=(9, 16, 9, 1) if src_kind == "10" else (1, 1, 1, 1))
    before = file_fingerprint(src)
    out = tmp_path / f"out{suffix}"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", codec,
                               "--pix-fmt", pix_fmt, "--scale", "2", "--quiet")
    assert code == 0, err
    assert err == ""
    assert file_fingerprint(src) == before
    check_same_streams(src, out)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (128, 96)
        frame = next(c.decode(v))
        # FFmpeg's ProRes decoder hands 4444 out as 12-bit, whatever was encoded.
        assert frame.format.name == ("yuv444p12le" if pix_fmt == "yuv444p10le" and codec == "prores_ks" else pix_fmt)
        cc = v.codec_context
        if suffix != ".mov":  # QuickTime writes colr atoms only for tags it knows of the source
            with av.open(str(src)) as s:
                sc = s.streams.video[0].codec_context
                assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == \
                       (sc.color_primaries, sc.color_trc, sc.colorspace, sc.color_range)
    assert not list(tmp_path.glob(".*"))  # no work folder left behind


@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_nvenc_round_trip(codec, clips, tiny_model, tmp_path, capsys):
    if not nvenc_available(codec):
        pytest.skip(f"{codec} is not available on this machine")
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p", audio="flac")
    out = tmp_path / "out.mkv"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", codec,
                               "--pix-fmt", "yuv420p", "--size", "256x192", "--quiet")
    assert code == 0, err
    check_same_streams(src, out)


def test_vfr_many_segments_parallel(clips, tiny_model, tmp_path, capsys):
    """Segments of 5 frames encoded by 2 encoders at once still join to the exact input times."""
    src = clips("vfr.mkv", codec="ffv1", pix_fmt="yuv420p", pts_ms=[0, 33, 50, 120, 121, 200, 260, 263, 400,
                                                                   401, 500, 533, 600, 700, 701, 750, 810])
    preset = tmp_path / "p.yaml"
    preset.write_text("codec: libx264\npix_fmt: yuv420p\nencoders: 2\nsegment_frames: 5\nbatch: 2\n")
    out = tmp_path / "out.mkv"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--preset", preset,
                               "--height", "96", "--quiet")
    assert code == 0, err
    check_same_streams(src, out)


def test_the_result_tells_when_each_segment_was_encoded(clips, tiny_model, tmp_path):
    """`Result.encode_spans`: every segment of the run once, inside the run's time (bench --e2e
    reads how busy the encoders were from it)."""
    from gendrpix_video.video import UpscaleSettings, upscale_file
    src = clips("spans.mkv", codec="ffv1", pix_fmt="yuv420p", pts_ms=[40 * i for i in range(11)])
    s = UpscaleSettings.from_preset().override(codec="libx264", pix_fmt="yuv420p", encoders=2, segment_frames=4,
                                               batch=2, height=96)
    r = upscale_file(src, tmp_path / "out.mkv", s, model=tiny_model)
    assert [i for i, _, _ in r.encode_spans] == [0, 1, 2]
    assert all(0 <= a <= b <= r.seconds for _, a, b in r.encode_spans)


def test_mp4_input_keeps_rotation_and_mov_text(clips, tiny_model, tmp_path, capsys):
    src = clips("rot.mp4", codec="libx264", audio="aac", rotation=90)
    out = tmp_path / "rot_out.mp4"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", "libx264",
                               "--pix-fmt", "yuv420p", "--height", "96", "--quiet")
    assert code == 0, err
    check_same_streams(src, out)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].codec_context.coded_side_data["display_matrix"] == \
               a.streams.video[0].codec_context.coded_side_data["display_matrix"]
        assert next(b.decode(video=0)).rotation == 90


def test_full_range_and_bt2020_tags_carried(clips, tiny_model, tmp_path, capsys):
    src = clips("full.mkv", codec="ffv1", pix_fmt="yuv444p10le", colour=(9, 18, 9, 2))
    out = tmp_path / "full_out.mkv"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p10le", "--scale", "2", "--quiet")
    assert code == 0, err
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (9, 18, 9, 2)


def test_trim_start_duration(clips, tiny_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p", audio="flac")
    out = tmp_path / "cut.mkv"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--scale", "2", "--start", "0.15", "--duration", "0.3",
                               "--quiet")
    assert code == 0, err
    src_t = [t for t in video_pts(src) if Fraction(15, 100) <= t < Fraction(45, 100)]
    assert video_pts(out) == [t - src_t[0] for t in src_t]
    audio = packets(out, "audio")
    assert audio and set(p for p, _ in audio) <= set(p for p, _ in packets(src, "audio"))


def test_folder_in_folder_out_and_default_names(clips, tiny_model, tmp_path, capsys):
    import shutil
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    shutil.copy(clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p", audio="flac"), src_dir / "a.mkv")
    shutil.copy(clips("rot.mp4", codec="libx264", audio="aac", rotation=90), src_dir / "b.mp4")
    (src_dir / "notes.txt").write_text("not picked up: not a video suffix")
    code, out, err = run_upscale(capsys, src_dir, "-o", out_dir, "--model", tiny_model, "--preset", "preview",
                                 "--height", "96")
    assert code == 0, err
    # The preset asks for MP4; a.mkv's ASS subtitles do not fit in MP4, so it stays Matroska.
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mkv", "b.mp4"]
    assert "a.mkv" in out and "b.mp4" in out and "fps" in out  # the summary table
    code, _, err = run_upscale(capsys, src_dir / "a.mkv", "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--scale", "2", "--quiet")
    assert code == 0, err
    assert (src_dir / "a.upscaled.mkv").exists()


def test_mkv_attachments_are_copied(clips, tiny_model, tmp_path, capsys):
    """Fonts attached for ASS subtitles travel with the output."""
    plain = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p", audio="flac")
    src = tmp_path / "fonts.mkv"
    with av.open(str(plain)) as i, av.open(str(src), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        o.add_attachment("font.ttf", "font/ttf", b"FONTDATA" * 32)
        for p in i.demux():
            if p.size:
                p.stream = streams[p.stream.index]
                o.mux(p)
    out = tmp_path / "out.mkv"
    code, _, err = run_upscale(capsys, src, "-o", out, "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--scale", "2", "--quiet")
    assert code == 0, err
    with av.open(str(out)) as c:
        att = [s for s in c.streams if s.type == "attachment"]
        assert len(att) == 1 and att[0].mimetype == "font/ttf" and bytes(att[0].data) == b"FONTDATA" * 32
    assert video_pts(out) == video_pts(src)
