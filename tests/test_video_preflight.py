"""The pre-flight plan: printed before the first frame (the CPU named as such), jobs over a memory
or time limit refused at once in one line naming the limit and an option that fits, nothing
decoded or written; the README's command on a CPU says within seconds what it costs."""
import math
import re

import pytest
import torch

from gendrpix_video.video import UpscaleSettings, upscale_file
from gendrpix_video.video.preflight import PlanRefused
from video_fixtures import file_fingerprint, make_clip, run_upscale

PREFIX = "gendrpix-video: error: "


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX) and "Traceback" not in err, err
    return lines[0]


def untouched(folder, src, before):
    """Nothing beside the input: no output, no job folder; the input as it was."""
    assert sorted(p.name for p in folder.iterdir()) == [src.name]
    assert file_fingerprint(src) == before


@pytest.fixture
def clip(clips, tmp_path):
    src = tmp_path / "in" / "clip.mkv"
    src.parent.mkdir()
    src.write_bytes(clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p").read_bytes())
    return src


def test_plan_is_printed_before_the_first_frame(clip, tiny_model, tmp_path, capsys):
    code, _, err = run_upscale(capsys, clip, "-o", tmp_path / "o.mkv", "--model", tiny_model, "--codec",
                               "ffv1", "--pix-fmt", "yuv420p", "--scale", "2", "--batch", "3")
    assert code == 0, err
    plan = [l for l in err.splitlines() if l.startswith(("plan:", "  "))]
    assert re.fullmatch(r"plan: clip.mkv -> o.mkv: 64x48 -> 128x96, about \d+ frames", plan[0]), plan[0]
    text = "\n".join(plan)
    want = "CPU (no CUDA GPU found)" if not torch.cuda.is_available() else "CUDA GPU"
    assert want in text
    assert "tiny" in text and "detail 1 (1 UNet pass a frame), batch 3" in text
    assert "host memory" in text
    if not torch.cuda.is_available():
        assert "time   about" in text   # measured on a CPU


def test_memory_over_the_limit_is_refused_up_front(clip, tiny_model, tmp_path, capsys):
    before = file_fingerprint(clip)
    out = tmp_path / "in" / "big.mkv"
    code, _, err = run_upscale(capsys, clip, "-o", out, "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--height", "2160", "--batch", "8",
                               "--max-memory", "1.5", "--device", "cpu")
    assert code == 1
    line = one_line(err)
    assert "host memory" in line and "limit of 1.5 GiB (--max-memory)" in line, line
    assert "--batch" in line and "would need about" in line, line
    assert str(out) not in line or line.index(str(clip)) < line.index("needs")
    untouched(clip.parent, clip, before)


def test_memory_refusal_names_a_height_when_no_batch_fits(clip, tiny_model, tmp_path):
    s = UpscaleSettings.from_preset().override(codec="ffv1", pix_fmt="yuv420p", height=4320, batch=1)
    with pytest.raises(PlanRefused) as e:
        upscale_file(clip, tmp_path / "o.mkv", s, model=tiny_model, device="cpu", max_memory=1.0)
    assert "--max-memory" in str(e.value) and "--height" in str(e.value)
    assert not list(tmp_path.glob(".o.mkv*")) and not (tmp_path / "o.mkv").exists()


def test_huge_size_is_refused_before_any_work(clip, tiny_model, tmp_path, capsys):
    before = file_fingerprint(clip)
    code, _, err = run_upscale(capsys, clip, "-o", tmp_path / "o.mkv", "--model", tiny_model,
                               "--size", "30000x20000")
    assert code == 2
    line = one_line(err)
    assert "--size 30000x20000" in line and "16384" in line
    code, _, err = run_upscale(capsys, clip, "-o", tmp_path / "o.mkv", "--model", tiny_model,
                               "--size", "16000x8000", "--codec", "ffv1", "--pix-fmt", "yuv420p")
    assert code == 1
    assert "memory" in one_line(err)   # within the ranges, but no machine here holds it
    untouched(clip.parent, clip, before)


def test_time_over_the_limit_is_refused_with_a_smaller_job(clip, tiny_model, tmp_path):
    s = UpscaleSettings.from_preset().override(codec="ffv1", pix_fmt="yuv420p", scale=2, detail=0.5)
    with pytest.raises(PlanRefused) as e:
        upscale_file(clip, tmp_path / "o.mkv", s, model=tiny_model, max_minutes=1e-9)
    line = str(e.value)
    assert "\n" not in line and "over the 1e-09-minute limit (--max-minutes)" in line, line
    assert "2 UNet passes a frame" in line and "raise --max-minutes" in line
    assert [p.name for p in tmp_path.iterdir()] == ["in"]
    plans = []
    r = upscale_file(clip, tmp_path / "o.mkv", s, model=tiny_model, max_minutes=math.inf, on_plan=plans.append)
    assert r.status == "ok" and len(plans) == 1 and plans[0].passes == 2 and r.plan is plans[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's default limit")
def test_readme_command_on_a_cpu_says_what_it_costs(tmp_path, capsys):
    """`upscale my_clip.mp4 -o my_clip_2160p.mkv` as the README writes it, on the shipped model:
    a 10-second 360p clip to 2160p is far over a CPU's 15 minutes, so it is refused before any frame,
    with the estimate and options that fit."""
    src = make_clip(tmp_path / "my_clip.mp4", codec="libx264", audio="aac", size=(640, 360),
                    pts_ms=[i * 40 for i in range(250)])
    before = file_fingerprint(src)
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "my_clip_2160p.mkv")
    assert code == 1
    line = one_line(err)
    assert "on CPU (no CUDA GPU found)" in line and "3840x2160" in line and "250 frames" in line
    assert "15-minute limit (--max-minutes)" in line
    # Which option fits depends on this CPU's measured speed: one pass at full size on a fast one
    # (--detail 0), a lower --height as well on a slower one; either way, one that fits is named.
    fits = re.search(r"((?:--height \d+ )?(?:--detail 0 )?)would take about (\d+) (min|s)\b", line)
    assert fits and fits.group(1) and (fits.group(3) == "s" or int(fits.group(2)) <= 15) and "--duration" in line
    untouched(tmp_path, src, before)


def test_a_clean_network_built_from_a_delta_is_counted_in_the_memory(tmp_path):
    from gendrpix_video import build_model
    from gendrpix_video.video.preflight import Shape, make_plan
    m = build_model("tiny")
    shape = Shape(in_size=(64, 64), out_size=(128, 128), batch=1, passes=2, in_frame_bytes=1, out_frame_bytes=1,
                  decode_depth=1, encode_frames=1, encoders=1)
    plan = lambda kind: make_plan(source=tmp_path / "a.mkv", target=tmp_path / "b.mkv", model=m,  # noqa: E731
                                  device=torch.device("cpu"), model_name="tiny", detail=0.25, shape=shape,
                                  frames=1, max_memory_gib=None, max_minutes=None, source_kind=kind)
    weights = sum(p.numel() * p.element_size() for p in m.parameters())
    assert plan("clean").host_bytes == plan("any").host_bytes     # no delta: nothing more
    m.source_deltas = {"clean": {}}
    assert plan("clean").host_bytes - plan("any").host_bytes == weights
