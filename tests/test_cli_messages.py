"""What a new user reads: --help with usage and every option's meaning, one-line errors from every
command, summary labels and fps that say what this run did, a progress bar that draws without a
terminal size or a known total, output errors named by the output's path, a quiet set-up."""
import errno
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gendrpix_video.cli import main as cli_main
from gendrpix_video.cli.upscale import Bar, parser
from gendrpix_video.measure.bench import build_parser as bench_parser
from gendrpix_video.measure.bench_e2e import main as e2e_main
from gendrpix_video.video import UpscaleSettings, upscale_file
from video_fixtures import run_upscale

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "gendrpix-video: error: "


def options_without_help(p) -> list[str]:
    return [a.option_strings[0] for a in p._actions if a.option_strings and not a.help]


def test_every_option_has_help():
    assert options_without_help(parser()) == []
    assert options_without_help(bench_parser()) == []


def test_top_level_help_shows_usage(capsys):
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gendrpix-video COMMAND")
    assert "upscale" in out and ".py" not in out          # commands, not source files


def test_upscale_help_lists_usage_and_the_resume_folder(capsys):
    with pytest.raises(SystemExit) as e:
        parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gendrpix-video upscale INPUT... [-o OUT] [options]")
    assert ".NAME.gendrpix/" in out and "--max-minutes" in out and "--strict" in out


def test_readme_synopsis_lists_every_option():
    readme = (ROOT / "README.md").read_text()
    synopsis = readme.split("gendrpix-video upscale INPUT...")[1].split("```")[0]
    for a in parser()._actions:
        if a.option_strings and a.dest != "help":
            assert any(o in synopsis for o in a.option_strings), a.option_strings


@pytest.mark.parametrize("argv, words", [
    (["eval", "--data", "/nonexistent/photos"], ["eval: no photo set at /nonexistent/photos",
                                                  "gendrpix_video.training.dataset build", "docs/evaluation.md"]),
    (["eval-real", "--set", "/nonexistent.npz"], ["eval-real: no set at /nonexistent.npz"]),
    (["bench", "--batch", "0"], ["bench: argument --batch: must be at least 1"]),
    (["bench", "--nonsense"], ["bench: unrecognized arguments: --nonsense"]),
    (["upscale"], ["upscale: the following arguments are required: INPUT"]),
    (["nonsense"], ["unknown command 'nonsense'"]),
])
def test_commands_fail_in_one_line(argv, words, capsys):
    code = None
    try:
        code = cli_main(argv)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX) and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


def test_bench_e2e_bad_option_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        e2e_main(["--frames", "0x"])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(PREFIX + "bench --e2e: argument --frames")


def test_bench_scale_out_bad_option_is_one_line(capsys):
    from gendrpix_video.measure.bench import main as bench_main
    with pytest.raises(SystemExit) as e:
        bench_main(["--scale-out", "--workers", "one"])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(PREFIX) and "--workers" in line, line


def test_bar_draws_without_a_terminal_size_and_ends_at_the_true_count(monkeypatch):
    monkeypatch.setenv("COLUMNS", "0")
    out = io.StringIO()
    with Bar("clip.mkv", quiet=False, file=out) as bar:   # a container that guessed 10 frames
        for n in range(14):
            bar.update(n, 10)
    text = out.getvalue()
    assert "13/13" in text and "frame" in text
    out = io.StringIO()
    with Bar("clip.mkv", quiet=False, file=out) as bar:   # no estimate at all
        for n in range(5):
            bar.update(n, None)
    assert "4frame" in out.getvalue().replace(" ", "") or "4/4" in out.getvalue()


def test_output_error_is_named_by_the_output(clips, tiny_model, tmp_path, capsys, monkeypatch):
    import gendrpix_video.video.pipeline as pipeline

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pipeline, "join", full)
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    target = tmp_path / "full.mkv"
    code, _, err = run_upscale(capsys, src, "-o", target, "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--scale", "2", "--quiet")
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{PREFIX}disk full while writing {target}"), line
    assert str(src) not in line


def test_interrupted_is_labelled_and_fps_counts_this_runs_frames(clips, tiny_model, tmp_path, capsys):
    src = clips("long.mkv", codec="ffv1", pix_fmt="yuv420p",
                pts_ms=[0, 40, 80, 150, 190, 300, 340, 380, 420, 500, 540, 580, 620, 700, 740, 780, 820, 860])
    preset = tmp_path / "p.yaml"
    preset.write_text("codec: ffv1\npix_fmt: yuv420p\nsegment_frames: 4\nbatch: 2\n")
    s = UpscaleSettings.from_preset(str(preset)).override(scale=2)
    target = tmp_path / "out.mkv"
    state = tmp_path / ".out.mkv.gendrpix" / "state.json"

    def stop_after_two_segments(done, total):
        if done == 9:  # frames 0-7 emitted: wait for their two segments, then Ctrl-C
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(json.loads(state.read_text())["segments"]) < 2:
                time.sleep(0.02)
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        upscale_file(src, target, s, model=tiny_model, progress=stop_after_two_segments)
    assert state.exists() and not target.exists()

    r = upscale_file(src, target, s, model=tiny_model, resume=True)
    assert r.status == "ok" and r.frames == 18 and r.resumed == 8
    assert r.fps == pytest.approx(10 / r.seconds)

    from gendrpix_video.cli.upscale import summary
    from gendrpix_video.video.pipeline import Result
    stopped = Result(src, status="interrupted", error="interrupted")
    text = summary([r, stopped])
    assert re.search(r"long\.mkv\s+ok\s+18 \(8 resumed\)", text)
    assert re.search(r"long\.mkv\s+interrupted\s", text) and "FAILED" not in text


def test_setup_is_quiet_once_installed(tmp_path):
    """An installed checkout: scripts/setup.sh prints nothing and writes nothing in $HOME."""
    assert list((ROOT / ".venv").glob(".installed-*")), "no scripts/setup.sh install here: run the tests with scripts/test"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), EXTRAS="test")
    proc = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/setup.sh"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
    proc = subprocess.run([str(ROOT / "scripts" / "run"), "--help"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: gendrpix-video") and proc.stderr == ""
    assert not list(home.iterdir())


def test_setup_keeps_vapoursynth_config_in_the_venv():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'XDG_CONFIG_HOME="$venv/config"' in text and "setting up" in text and "setup.log" in text


def test_a_reader_that_goes_away_gets_no_traceback():
    """`gendrpix-video info | head -1`: the rest of the output meets a closed pipe; the command
    stops quietly, with no traceback on stderr."""
    code = "import sys; from gendrpix_video.cli import main; sys.exit(main(['info']))"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert p.stdout.readline().startswith("shipped models")
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
