"""Every numeric option is checked against its range, zero included: one line naming the option
and its range, exit 2, nothing read or written. Library callers get the same check. --source is
checked against the model's sources the same way."""
import numpy as np
import pytest

from gendrpix_video.video import UpscaleSettings, VideoError, upscale_file
from gendrpix_video.video.argcheck import ArgError
from gendrpix_video.video.presets import RANGES
from video_fixtures import decoded_frames, file_fingerprint, photo_clip, run_upscale

PREFIX = "gendrpix-video: error: "


@pytest.mark.parametrize("flag, value, words", [
    ("--scale", "0", "between 0.25 and 16"),
    ("--height", "0", "between 16 and 8640 pixels"),
    ("--duration", "0", "more than 0 seconds"),
    ("--start", "-1", "between 0 and"),
    ("--batch", "0", "between 1 and 256"),
    ("--detail", "-0.5", "between 0 and 4"),
    ("--temporal", "1", "between 0 and 0.95"),
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


# -- --source: what the input is, checked against the model before any input is read ---------
def test_source_clean_changes_the_output_and_is_in_the_plan(clips, tiny_source_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    common = [src, "--model", tiny_source_model, "--scale", "2", "--codec", "ffv1", "--pix-fmt", "yuv420p",
              "--duration", "0.2"]
    code, _, err = run_upscale(capsys, *common, "-o", tmp_path / "any.mkv", "--quiet", "--source", "any")
    assert code == 0, err
    code, _, err = run_upscale(capsys, *common, "-o", tmp_path / "clean.mkv", "--source", "clean")
    assert code == 0, err
    assert "source clean, grid follow, temporal 0.7, detail" in err        # the plan says it
    a, b = decoded_frames(tmp_path / "any.mkv"), decoded_frames(tmp_path / "clean.mkv")
    assert len(a) == len(b) == 5
    assert not any(np.array_equal(x, y) for x, y in zip(a, b))  # the clean contexts differ


def test_source_auto_picks_per_file_says_so_and_restores_as_that_source(tiny_source_model, tmp_path, capsys):
    """The default, auto: a clean master (a photo panning, lossless) gets the clean network, the
    same photo noisy and at a low bitrate the network that removes damage; the plan says which,
    and the output is that source's."""
    from gendrpix_video.video.pipeline import choose_source
    from gendrpix_video.video.presets import UpscaleSettings
    from gendrpix_video.video.probe import probe

    files = {kind: photo_clip(tmp_path / f"{kind}.mkv", damaged=kind == "damaged") for kind in ("clean", "damaged")}
    common = ["--model", tiny_source_model, "--scale", "2", "--codec", "ffv1", "--pix-fmt", "yuv420p"]
    for kind, src in files.items():
        want = "clean" if kind == "clean" else "any"
        code, _, err = run_upscale(capsys, src, "-o", tmp_path / f"{kind}_auto.mkv", *common)
        assert code == 0, err
        assert f"source {want} (auto: damage " in err, err
        code, _, err = run_upscale(capsys, src, "-o", tmp_path / f"{kind}_told.mkv", *common, "--source", want)
        assert code == 0 and f"source {want}, grid" in err, err
        a, b = decoded_frames(tmp_path / f"{kind}_auto.mkv"), decoded_frames(tmp_path / f"{kind}_told.mkv")
        assert len(a) == 6 and all(np.array_equal(x, y) for x, y in zip(a, b))
        s, how = choose_source(probe(src), UpscaleSettings(), ("any", "clean"))
        assert s.source == want and how.startswith(f"{want} (auto: damage")
    # a model without a clean network: any, and nothing to guess
    s, how = choose_source(probe(files["clean"]), UpscaleSettings(), ("any",))
    assert (s.source, how) == ("any", "")


def test_supersample_restores_bigger_says_so_and_is_part_of_the_job(clips, tiny_model, tmp_path, capsys):
    """--supersample K: the plan names the size the model restores to; the output differs from
    the plain run; it is part of the job's identity; out of range: one line, exit 2."""
    from gendrpix_video.video.presets import UpscaleSettings
    from gendrpix_video.video.pipeline import plan_job
    from gendrpix_video.video.probe import probe

    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    common = [src, "--model", tiny_model, "--scale", "2", "--codec", "ffv1", "--pix-fmt", "yuv420p",
              "--duration", "0.2", "--temporal", "0"]
    code, _, err = run_upscale(capsys, *common, "-o", tmp_path / "plain.mkv", "--quiet")
    assert code == 0, err
    code, _, err = run_upscale(capsys, *common, "-o", tmp_path / "ss.mkv", "--supersample", "1.5")
    assert code == 0, err
    assert "restored at 192x144 and shrunk: --supersample" in err, err   # 64x48 -> 128x96, x1.5
    a, b = decoded_frames(tmp_path / "plain.mkv"), decoded_frames(tmp_path / "ss.mkv")
    assert len(a) == len(b) == 5 and not any(np.array_equal(x, y) for x, y in zip(a, b))
    s = UpscaleSettings.from_preset().override(scale=2, supersample=1.5)
    job = plan_job(src, tmp_path / "o.mkv", probe(src), s, model_id="m", detail=1.0, device="cpu")
    assert job.params["supersample"] == 1.5 and job.engine.supersample == 1.5
    plain = plan_job(src, tmp_path / "o.mkv", probe(src), s.override(supersample=1), model_id="m", detail=1.0,
                     device="cpu")
    assert "supersample" not in plain.params    # states written before the setting still match
    code, out, err = run_upscale(capsys, *common, "-o", tmp_path / "bad.mkv", "--supersample", "3")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "--supersample 3: must be between 1 and 2" in line, line
    assert UpscaleSettings.from_preset("archival").supersample == 1.5


def test_source_clean_with_a_model_without_it_is_one_line(clips, tiny_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    before = file_fingerprint(src)
    code, out, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", "--model", tiny_model, "--scale", "2",
                                 "--source", "clean")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{PREFIX}--source clean: model tiny (tiny) has no network for clean sources "
                           "(it has: any)"), line
    assert "--source any" in line and "Traceback" not in err
    assert not list(tmp_path.iterdir()) and file_fingerprint(src) == before


def test_source_clean_is_refused_before_gpu_processes_or_workers_start(clips, tiny_model, tiny_source_model,
                                                                       tmp_path, capsys):
    """With --gpus the driver never loads the model: the weights file's header decides."""
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    code, out, err = run_upscale(capsys, src, "-o", tmp_path / "o.mkv", "--model", tiny_model, "--scale", "2",
                                 "--source", "clean", "--gpus", "1")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{PREFIX}--source clean: model tiny (tiny) has no network for clean sources"), line
    assert not list(tmp_path.iterdir())
    from gendrpix_video.video.pipeline import check_source_in_file
    check_source_in_file(tiny_source_model, "clean")  # a model with one passes
    check_source_in_file(None, "clean")               # the shipped default has one


def test_bad_source_is_a_parser_error(capsys):
    from gendrpix_video.cli.upscale import main
    with pytest.raises(SystemExit) as e:
        main(["x.mkv", "--source", "dirty"])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{PREFIX}upscale: argument --source: invalid choice: 'dirty'"), line


def test_library_callers_get_the_source_check(clips, tiny_model, tmp_path):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    s = UpscaleSettings.from_preset().override(codec="ffv1", pix_fmt="yuv420p", scale=2, source="clean")
    with pytest.raises(VideoError, match=r"--source clean: model tiny \(tiny\) has no network for clean"):
        upscale_file(src, tmp_path / "o.mkv", s, model=tiny_model)
    assert not list(tmp_path.iterdir())          # the job folder is gone, nothing was written
    with pytest.raises(Exception, match=r"'source': must be one of auto, any, clean, got 'dirty'"):
        s.override(source="dirty")
