"""Ctrl-C leaves no output, only a resumable work folder; --resume gives the same frames as an
uninterrupted run; a resume with other settings is refused, naming them."""
import json
import time

import numpy as np
import pytest

from video_fixtures import decoded_frames, file_fingerprint, packets, run_upscale, video_pts

PTS = [0, 40, 80, 150, 190, 300, 340, 380, 420, 500, 540, 580, 620, 700, 740, 780, 820, 860]


def interrupt_after_first_segment(monkeypatch, workdir):
    """Ctrl-C in the main thread once the first segment is on disk, as a user would press it."""
    import gendrpix_video.video.engine as engine
    real = engine.restore_any_scale
    calls = {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # frames 8-9 with batch 2: segments 0 and 1 have all their frames
            state = workdir / "state.json"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if state.exists() and json.loads(state.read_text())["segments"]:
                    break
                time.sleep(0.02)
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(engine, "restore_any_scale", step)


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
def test_resume_gives_identical_frames(codec, clips, tiny_model, tmp_path, capsys, monkeypatch):
    src = clips("long.mkv", codec="ffv1", pix_fmt="yuv420p", pts_ms=PTS)
    before = file_fingerprint(src)
    preset = tmp_path / "p.yaml"
    preset.write_text(f"codec: {codec}\npix_fmt: yuv420p\nsegment_frames: 4\nbatch: 2\nencoders: 2\n")
    common = ["--model", tiny_model, "--preset", preset, "--scale", "2", "--quiet"]

    whole = tmp_path / "whole.mkv"
    assert run_upscale(capsys, src, "-o", whole, *common)[0] == 0

    target = tmp_path / "resumed.mkv"
    workdir = tmp_path / ".resumed.mkv.gendrpix"
    with monkeypatch.context() as m:
        interrupt_after_first_segment(m, workdir)
        code, _, err = run_upscale(capsys, src, "-o", target, *common)
    assert code == 130
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert not target.exists()                      # no partial output
    state = json.loads((workdir / "state.json").read_text())
    assert state["segments"] and state["segments"][0]["index"] == 0

    code, _, err = run_upscale(capsys, src, "-o", target, "--resume", *common)
    assert code == 0, err
    assert not workdir.exists()
    assert video_pts(target) == video_pts(whole) == video_pts(src)
    a, b = decoded_frames(target), decoded_frames(whole)
    assert len(a) == len(b) == len(PTS)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert packets(target, "audio") == packets(src, "audio")
    assert file_fingerprint(src) == before


def test_resume_refuses_other_settings(clips, tiny_model, tmp_path, capsys, monkeypatch):
    src = clips("long.mkv", codec="ffv1", pix_fmt="yuv420p", pts_ms=PTS)
    preset = tmp_path / "p.yaml"
    preset.write_text("codec: ffv1\npix_fmt: yuv420p\nsegment_frames: 4\nbatch: 2\n")
    target = tmp_path / "r.mkv"
    common = ["--model", tiny_model, "--preset", preset, "--quiet"]
    with monkeypatch.context() as m:
        interrupt_after_first_segment(m, tmp_path / ".r.mkv.gendrpix")
        assert run_upscale(capsys, src, "-o", target, "--scale", "2", *common)[0] == 130
    code, _, err = run_upscale(capsys, src, "-o", target, "--scale", "3", "--resume", *common)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot resume" in lines[0] and "size" in lines[0]
    assert not target.exists()
    # Starting over without --resume works and cleans up.
    assert run_upscale(capsys, src, "-o", target, "--scale", "3", *common)[0] == 0
    assert target.exists() and not (tmp_path / ".r.mkv.gendrpix").exists()


@pytest.mark.parametrize("key,unkeyed,keyed", [("source", "any", "clean"), ("grid", "fixed", "follow"),
                                                ("temporal", 0.0, 0.7), ("supersample", 1.0, 1.5)])
def test_resume_keeps_each_setting_that_changes_the_frames(clips, tmp_path, key, unkeyed, keyed):
    """The source, the grid, the temporal filter and supersampling are part of the job's identity: a
    resume with another value is refused, naming the setting. The value that adds no key ("any", "fixed", 0, 1)
    is how states written before the setting existed were made, so they resume as before."""
    from gendrpix_video.video.errors import VideoError
    from gendrpix_video.video.job import Job, workdir_of
    from gendrpix_video.video.lock import JobLock
    from gendrpix_video.video.pipeline import plan_job
    from gendrpix_video.video.presets import UpscaleSettings
    from gendrpix_video.video.probe import probe

    src = clips("long.mkv", codec="ffv1", pix_fmt="yuv420p", pts_ms=PTS)
    target, info = tmp_path / "r.mkv", probe(src)
    s = UpscaleSettings.from_preset().override(codec="ffv1", pix_fmt="yuv420p", scale=2)

    def params(value):
        plan = plan_job(src, target, info, s.override(**{key: value}), model_id="m", detail=1.0, device="cpu")
        assert getattr(plan.engine, key) == value and plan.engine.segment_frames == plan.segment_frames
        return plan.params

    assert key not in params(unkeyed) and params(keyed)[key] == keyed
    with JobLock(workdir_of(target), str(target)) as lock:
        Job(target, params(keyed), lock).start(resume=False)
        with pytest.raises(VideoError, match=rf"cannot resume r.mkv: settings differ .*\({key}\)"):
            Job(target, params(unkeyed), lock).start(resume=True)
        Job(target, params(keyed), lock).start(resume=True)
