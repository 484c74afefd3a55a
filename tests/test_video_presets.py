"""Presets: the shipped ones load and encode, flags override them, bad keys are named."""
import pytest

from gendrpix_video import presets
from gendrpix_video.video.encode import check_encoder


def test_shipped_presets_are_valid_and_encodable():
    names = presets.available()
    assert {"archival", "delivery", "preview", "default"} <= set(names)
    for name in names:
        p = presets.load(name)
        check_encoder(p["codec"], p["pix_fmt"]) if not p["codec"].endswith("_nvenc") else None
    arch = presets.load("archival")
    assert arch["codec"] in ("ffv1", "prores_ks") and "10" in arch["pix_fmt"]
    dlv = presets.load("delivery")
    assert dlv["codec"] == "libx265" and dlv["pix_fmt"] == "yuv420p10le"
    assert presets.load(None)["height"] == 2160  # defaults aim at 2160p


def test_unknown_key_and_bad_values_name_the_key(tmp_path):
    p = tmp_path / "x.yaml"
    for text, key in [("bogus: 1\n", "bogus"), ("crf: -3\n", "crf"), ("batch: 2.5\n", "batch"),
                      ("size: big\n", "size"), ("codec: mpeg2video\n", "codec"), ("options: 3\n", "options"),
                      ("container: avi\n", "container"), ("encoders: zero\n", "encoders")]:
        p.write_text(text)
        with pytest.raises(presets.PresetError, match=repr(key)):
            presets.load(str(p))
    p.write_text("- a list\n")
    with pytest.raises(presets.PresetError):
        presets.load(str(p))


def test_flags_override_preset():
    from gendrpix_video.video.upscale import parser, settings_from
    args = parser().parse_args(["x.mkv", "--preset", "preview", "--crf", "30", "--scale", "2"])
    s = settings_from(args)
    assert s["crf"] == 30 and s["scale"] == 2 and s["height"] is None and s["codec"] == "libx264"
    args = parser().parse_args(["x.mkv", "--preset", "delivery", "--codec", "prores_ks"])
    s = settings_from(args)
    assert s["codec"] == "prores_ks" and s["pix_fmt"] in ("yuv422p10le", "yuv444p10le") and s["speed"] is None


def test_presets_command_lists(capsys):
    assert presets.main([]) == 0
    out = capsys.readouterr().out
    assert "archival" in out and "delivery" in out and "preview" in out
