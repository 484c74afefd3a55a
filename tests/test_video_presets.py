"""Presets: the shipped ones load and encode, flags override them, bad keys are named."""
import pytest

from gendrpix_video.cli import presets as presets_cmd
from gendrpix_video.video import presets
from gendrpix_video.video.encode import check_encoder
from gendrpix_video.video.presets import UpscaleSettings


def test_shipped_presets_are_valid_and_encodable():
    names = presets.available()
    assert {"archival", "delivery", "preview", "default"} <= set(names)
    for name in names:
        p = UpscaleSettings.from_preset(name)
        check_encoder(p.codec, p.pix_fmt) if not p.codec.endswith("_nvenc") else None
    arch = UpscaleSettings.from_preset("archival")
    assert arch.codec in ("ffv1", "prores_ks") and "10" in arch.pix_fmt
    dlv = UpscaleSettings.from_preset("delivery")
    assert dlv.codec == "libx265" and dlv.pix_fmt == "yuv420p10le"
    assert UpscaleSettings.from_preset(None).height == 2160  # defaults aim at 2160p
    # Clips run with the grid following the picture and the temporal filter on unless told.
    assert (UpscaleSettings().grid, UpscaleSettings().temporal) == ("follow", 0.7)


def test_unknown_key_and_bad_values_name_the_key(tmp_path):
    p = tmp_path / "x.yaml"
    for text, key in [("bogus: 1\n", "bogus"), ("crf: -3\n", "crf"), ("batch: 2.5\n", "batch"),
                      ("size: big\n", "size"), ("codec: mpeg2video\n", "codec"), ("options: 3\n", "options"),
                      ("container: avi\n", "container"), ("encoders: zero\n", "encoders"),
                      ("source: dirty\n", "source"), ("grid: moving\n", "grid"), ("temporal: 1\n", "temporal")]:
        p.write_text(text)
        with pytest.raises(presets.PresetError, match=repr(key)):
            UpscaleSettings.from_preset(str(p))
    p.write_text("- a list\n")
    with pytest.raises(presets.PresetError):
        UpscaleSettings.from_preset(str(p))


def test_every_bad_key_is_named_in_one_error(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("crf: -3\nbatch: 2.5\nbogus: 1\n")
    with pytest.raises(presets.PresetError) as e:
        UpscaleSettings.from_preset(str(p))
    msg = str(e.value)
    assert "\n" not in msg and all(repr(k) in msg for k in ("crf", "batch", "bogus"))


def test_flags_override_preset():
    from gendrpix_video.cli.upscale import parser, settings_from
    args = parser().parse_args(["x.mkv", "--preset", "preview", "--crf", "30", "--scale", "2"])
    s = settings_from(args)
    assert s.crf == 30 and s.scale == 2 and s.height is None and s.codec == "libx264"
    args = parser().parse_args(["x.mkv", "--preset", "delivery", "--codec", "prores_ks"])
    s = settings_from(args)
    assert s.codec == "prores_ks" and s.pix_fmt in ("yuv422p10le", "yuv444p10le") and s.speed is None


def test_source_from_a_preset_and_over_it(tmp_path):
    from gendrpix_video.cli.upscale import parser, settings_from
    assert UpscaleSettings.from_preset().source == "auto"
    p = tmp_path / "masters.yaml"
    p.write_text("codec: ffv1\nsource: clean\n")
    assert UpscaleSettings.from_preset(str(p)).source == "clean"
    assert settings_from(parser().parse_args(["x.mkv", "--preset", str(p)])).source == "clean"
    assert settings_from(parser().parse_args(["x.mkv", "--preset", str(p), "--source", "any"])).source == "any"
    p.write_text("source: Clean\n")
    with pytest.raises(presets.PresetError) as e:
        UpscaleSettings.from_preset(str(p))
    assert str(e.value) == "preset masters.yaml: bad value for 'source': must be one of auto, any, clean, got 'Clean'"


def test_presets_command_lists(capsys):
    assert presets_cmd.main([]) == 0
    out = capsys.readouterr().out
    assert "archival" in out and "delivery" in out and "preview" in out


def test_ffv1_takes_a_slice_count_its_frame_size_allows(clips, tiny_model, tmp_path, capsys):
    """FFV1 level 3 refuses some slice grids for some sizes (1 slice at 384x288): the encoder
    gets the nearest count that opens, and the job finishes."""
    from gendrpix_video.video.encode import ffv1_slices
    from video_fixtures import decoded_frames, run_upscale
    assert ffv1_slices(64, 48, "yuv420p", 1) == 1 and ffv1_slices(3840, 2160, "yuv422p10le", 24) == 24
    assert ffv1_slices(384, 288, "yuv420p", 1) != 1
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", "--model", tiny_model, "--size", "384x288",
                               "--codec", "ffv1", "--pix-fmt", "yuv420p", "--duration", "0.2", "--quiet")
    assert code == 0, err
    assert decoded_frames(tmp_path / "o.mkv")[0].shape == (288 * 3 // 2, 384)
