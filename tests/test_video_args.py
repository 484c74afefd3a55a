"""Every numeric option is checked against its range, zero included: one line naming the option
and its range, exit 2, nothing read or written. Library callers get the same check."""
import pytest

from gendrpix_video.video import UpscaleSettings, upscale_file
from gendrpix_video.video.argcheck import ArgError
from gendrpix_video.video.presets import RANGES
from video_fixtures import file_fingerprint, run_upscale

PREFIX = "gendrpix-video: error: "


@pytest.mark.parametrize("flag, value, words", [
    ("--scale", "0", "between 0.25 and 16"),
    ("--height", "0", "between 16 and 8640 pixels"),
    ("--duration", "0", "more than 0 seconds"),
    ("--start", "-1", "between 0 and"),
    ("--batch", "0", "between 1 and 256"),
    ("--detail", "-0.5", "between 0 and 4"),
    ("--crf", "64", "between 0 and 63"),
    ("--max-memory", "0", "more than 0 GiB"),
    ("--max-minutes", "0", "more than 0 minutes"),
    ("--size", "0x100", "width must be between 16 and 16384 pixels"),
    ("--scale", "nan", "between 0.25 and 16"),
])
def test_out_of_range_is_one_line(flag, value, words, clips, tiny_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    before = file_fingerprint(src)
    code, out, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", "--model", tiny_model, flag, value)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"{PREFIX}{flag} {value}: "), lines[0]
    assert words in lines[0]
    assert not list(tmp_path.iterdir()) and file_fingerprint(src) == before


def test_every_bad_value_is_named_in_the_one_line(clips, tiny_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", "--scale", "0", "--duration", "0",
                               "--batch", "0")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "--scale 0" in line and "--duration 0" in line and "--batch 0" in line


def test_library_callers_get_the_same_check(clips, tiny_model, tmp_path):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    s = UpscaleSettings.from_preset().override(codec="ffv1", pix_fmt="yuv420p", scale=2)
    with pytest.raises(ArgError, match=r"--duration 0: must be more than 0 seconds"):
        upscale_file(src, tmp_path / "o.mkv", s, model=tiny_model, duration=0)
    with pytest.raises(Exception, match=r"'scale': must be between 0.25 and 16"):
        s.override(scale=0)
    assert not list(tmp_path.iterdir())


def test_presets_use_the_same_ranges(tmp_path, clips, tiny_model, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("codec: ffv1\nheight: 0\nsegment_frames: 0\n")
    code, _, err = run_upscale(capsys, clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p"), "--preset", p,
                               "--model", tiny_model)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "'height': must be between 16 and 8640" in line and "'segment_frames': must be between 1" in line
    assert all(r.lo >= 0 for r in RANGES.values())
