"""One run per output: a second run on an output being written refuses at once, in one line naming
the running job (pid, host), and never touches its files; a lock left by a dead run is taken over."""
import json
import os
import socket
import subprocess
import sys
import threading

from gendrpix_video.video import UpscaleSettings, upscale_file
from video_fixtures import file_fingerprint, run_upscale, video_pts

PREFIX = "gendrpix-video: error: "


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_second_run_on_the_same_output_refuses(clips, tiny_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    before = file_fingerprint(src)
    target = tmp_path / "out.mkv"
    workdir = tmp_path / ".out.mkv.gendrpix"
    s = UpscaleSettings.from_preset().override(codec="ffv1", pix_fmt="yuv420p", scale=2, batch=2,
                                               segment_frames=4)
    # The first run stops at its fourth frame (its first segment is being encoded) until released.
    reached, release = threading.Event(), threading.Event()
    first: dict = {}

    def progress(done, total):
        if done == 4:
            reached.set()
            release.wait(30)

    def run_first():
        try:
            first["result"] = upscale_file(src, target, s, model=tiny_model, progress=progress)
        except BaseException as e:  # the assertion below shows it
            first["error"] = e

    t = threading.Thread(target=run_first)
    t.start()
    try:
        assert reached.wait(30), first
        files = snapshot(workdir)
        lock = json.loads(files["lock"])
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()

        code, _, err = run_upscale(capsys, src, "-o", target, "--model", tiny_model, "--codec", "ffv1",
                                   "--pix-fmt", "yuv420p", "--scale", "2", "--overwrite")
        assert code == 1
        line = [l for l in err.splitlines() if l.startswith(PREFIX)]
        assert len(line) == 1 and "Traceback" not in err, err
        assert line[0] == (f"{PREFIX}{target}: another run is writing this output (pid {os.getpid()} on "
                           f"{socket.gethostname()}, started {lock['started']}) (wait for it to finish, or "
                           "choose another output)")
        assert "plan:" not in err          # refused before the model is loaded
        assert snapshot(workdir) == files  # not one of the first run's files touched
    finally:
        release.set()
        t.join(60)
    assert "error" not in first, first
    assert first["result"].status == "ok" and video_pts(target) == video_pts(src)
    assert not workdir.exists() and file_fingerprint(src) == before


def test_a_dead_runs_lock_is_taken_over(clips, tiny_model, tmp_path, capsys):
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    workdir = tmp_path / ".out.mkv.gendrpix"
    workdir.mkdir()
    (workdir / "lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                              "started": "2026-01-01 00:00:00"}))
    code, _, err = run_upscale(capsys, src, "-o", tmp_path / "out.mkv", "--model", tiny_model, "--codec", "ffv1",
                               "--pix-fmt", "yuv420p", "--scale", "2", "--quiet")
    assert code == 0, err
    assert (tmp_path / "out.mkv").exists() and not workdir.exists()


def test_a_lock_held_by_another_process_is_respected(clips, tiny_model, tmp_path, capsys):
    """The lock is the kernel's (flock): another process holding it blocks a run, whatever the
    file says; the refusal names what the file records."""
    src = clips("src8.mkv", codec="ffv1", pix_fmt="yuv420p")
    workdir = tmp_path / ".out.mkv.gendrpix"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys
from pathlib import Path
from gendrpix_video.video.lock import JobLock
lock = JobLock(Path({str(workdir)!r}), "out.mkv")
lock.acquire()
print("held", flush=True)
sys.stdin.read()
lock.release(remove_folder=True)
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_upscale(capsys, src, "-o", tmp_path / "out.mkv", "--model", tiny_model,
                                   "--scale", "2", "--quiet")
        assert code == 1
        (line,) = err.strip().splitlines()
        assert f"(pid {holder.pid} on {socket.gethostname()}" in line
        assert (workdir / "lock").exists()
    finally:
        holder.communicate("", timeout=30)
    assert not workdir.exists()
