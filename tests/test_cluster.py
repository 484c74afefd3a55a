"""Scale-out on a real Ray cluster of two nodes on this machine (a head and a second `ray start
--address` node, one CPU each), CPU tasks (`--device cpu --cluster ADDR`) and the tiny model.

The cluster starts once for the module (`ray start --block` in process groups of their own, so
the finalizer stops exactly what it started). The jobs run as `gendrpix-video upscale`
subprocesses, as on a render node, so a test can interrupt them with SIGINT."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from video_fixtures import damage_clip, decoded_frames, make_clip, packets, photo_clip, run_upscale, video_pts

CLI = str(Path(sys.executable).parent / "gendrpix-video")
RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
PRESET = "codec: libx264\ncrf: 20\npix_fmt: yuv420p\nsegment_frames: 8\nbatch: 2\nencoders: 1\n"
SHORT = [i * 40 for i in range(50)]    # 2 s at 25 fps: 7 segments
LONG = [i * 40 for i in range(200)]    # 8 s: 25 segments, long enough to interrupt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A head and a worker node, each a `ray start --block` in a process group of its own."""

    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must stay short
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head = self._start(["--head", "--port", str(self.port), "--temp-dir", self.temp,
                                 "--include-dashboard=false"], "head")
        self.wait_nodes(1)
        self.worker = self.start_worker()

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(Path(self.temp) / f"{name}.log", "ab")
        return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--num-gpus", "0",
                                 "--disable-usage-stats", *args], env=ENV, stdout=log, stderr=log,
                                start_new_session=True)

    def start_worker(self) -> subprocess.Popen:
        p = self._start(["--address", self.address], "worker")
        self.wait_nodes(2)
        return p

    def nodes(self) -> int:
        r = subprocess.run([RAY, "status", "--address", self.address], env=ENV, capture_output=True, text=True,
                           timeout=60)
        if r.returncode:
            return 0
        active = r.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return active.count("node_")

    def wait_nodes(self, n: int, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.nodes() == n:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes; logs in {self.temp}")

    @staticmethod
    def stop(p: subprocess.Popen | None) -> None:
        """Stop one node: its `ray start --block` and everything it started (its process group)."""
        if p is None or p.poll() is not None and not _group_alive(p.pid):
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):  # a head may outlive SIGTERM
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + wait
            while time.monotonic() < end and _group_alive(p.pid):
                time.sleep(0.2)
            if not _group_alive(p.pid):
                break
        p.wait(timeout=10)

    def close(self) -> None:
        self.stop(self.worker)
        self.stop(self.head)
        shutil.rmtree(self.temp, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of the group still answer; only live members count.
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


@pytest.fixture(scope="module")
def cluster(request):
    # Ray is in the test extra: a missing `ray` command is a broken install, not a reason to skip
    assert shutil.which(RAY) is not None, f"the ray command is not installed ({RAY})"
    c = Cluster.__new__(Cluster)
    c.head = c.worker = None
    request.addfinalizer(lambda: Cluster.close(c) if hasattr(c, "temp") else None)
    c.__init__()
    return c


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model):
    """The clips, the preset and the single-process outputs they are compared with."""
    root = tmp_path_factory.mktemp("cluster")
    preset = root / "p.yaml"
    preset.write_text(PRESET)
    clips = {name: make_clip(root / f"{name}.mkv", pts_ms=pts) for name, pts in (("short", SHORT), ("long", LONG))}
    return root, preset, clips, tiny_model


def common(preset, model) -> list[str]:
    return ["--preset", str(preset), "--model", str(model), "--scale", "4", "--device", "cpu", "--quiet"]


def one_process(work, name: str, capsys) -> Path:
    root, preset, clips, model = work
    ref = root / f"{name}.ref.mkv"
    if not ref.exists():
        code, _, err = run_upscale(capsys, clips[name], "-o", ref, *common(preset, model))
        assert code == 0, err
    return ref


def default_sigint() -> None:
    # A suite started in the background (`cmd &`) inherits SIGINT ignored, and Python keeps it
    # ignored in the child: give the CLI the disposition a terminal's Ctrl-C finds.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def upscale(*args, env=ENV, **kw) -> subprocess.Popen:
    return subprocess.Popen([CLI, "upscale", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint, **kw)


def assert_same(a: Path, b: Path) -> None:
    """Frames, timestamps, audio and subtitle packets."""
    assert video_pts(a) == video_pts(b)
    fa, fb = decoded_frames(a), decoded_frames(b)
    assert len(fa) == len(fb) and all((x == y).all() for x, y in zip(fa, fb))
    assert packets(a, "audio") == packets(b, "audio") and packets(a, "audio")
    assert packets(a, "subtitle") == packets(b, "subtitle")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("gendrpix-video: error:")]


def segments_done(target: Path) -> int:
    state = target.parent / f".{target.name}.gendrpix" / "state.json"
    try:
        return len(json.loads(state.read_text())["segments"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_for(cond, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the job ended first: {proc.communicate()}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def segment_workers() -> list[int]:
    """Pids of the job's worker processes (actors) now."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::SegmentWorker"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


# -- the tests ---------------------------------------------------------------------------------
def test_same_output_as_one_process(cluster, work, capsys):
    """Frames, timestamps and audio identical to one process; the nodes that did the work are named."""
    root, preset, clips, model = work
    ref = one_process(work, "short", capsys)
    out = root / "short.cluster.mkv"
    p = upscale(clips["short"], "-o", out, *common(preset, model)[:-1], "--cluster", cluster.address)
    stdout, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert_same(ref, out)
    nodes = [line for line in stdout.splitlines() if line.startswith("node ")]
    assert nodes and sum(int(n.split(", ")[1].split()[0]) for n in nodes) == len(SHORT), stdout
    assert "plan: short.mkv" in err          # the pre-flight plan, as one process prints it
    assert not (root / ".short.cluster.mkv.gendrpix").exists()


def test_source_auto_decided_by_the_driver_reaches_the_workers(cluster, work, tiny_source_model, tmp_path, capsys):
    """The default source, auto, on the cluster: the driver decides once per file (a clean master
    here: a photo panning, lossless) and the workers restore with the clean network, as one process
    does with --source clean. Lossless output: a model that changes pixels rounds differently under
    the workers' thread counts, which a lossy encoder would magnify."""
    root, preset, clips, _ = work
    src = photo_clip(tmp_path / "master.mkv", damaged=False)
    flags = [*common(preset, tiny_source_model)[:-1], "--codec", "ffv1", "--pix-fmt", "yuv420p"]
    refs = {}
    for source in ("any", "clean"):
        refs[source] = tmp_path / f"{source}.mkv"
        code, _, err = run_upscale(capsys, src, "-o", refs[source], *flags, "--quiet", "--source", source)
        assert code == 0, err
    out = tmp_path / "cluster.mkv"
    p = upscale(src, "-o", out, *flags, "--cluster", cluster.address)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "source clean (auto: damage" in err     # the plan says it
    got = [f.astype(int) for f in decoded_frames(out)]
    clean = [f.astype(int) for f in decoded_frames(refs["clean"])]
    other = [f.astype(int) for f in decoded_frames(refs["any"])]
    assert len(got) == len(clean) == 6
    assert max(abs(a - b).max() for a, b in zip(got, clean)) <= 2
    assert min(abs(a - b).mean() for a, b in zip(got, other)) > 0.5   # not the any-source network's


def test_segments_side_by_side_in_a_worker(cluster, work, tmp_path, capsys):
    """A preset with two encoders: each worker runs two segments at once in its threads, sharing
    its model, as a GPU worker does; the output is still the one-process output."""
    root, _, clips, model = work
    preset = tmp_path / "two.yaml"
    preset.write_text(PRESET.replace("encoders: 1", "encoders: 2"))
    flags = ["--preset", preset, "--model", model, "--scale", "4", "--device", "cpu", "--quiet"]
    code, _, err = run_upscale(capsys, clips["short"], "-o", tmp_path / "one.mkv", *map(str, flags))
    assert code == 0, err
    p = upscale(clips["short"], "-o", tmp_path / "farm.mkv", *flags, "--cluster", cluster.address)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert_same(tmp_path / "one.mkv", tmp_path / "farm.mkv")


def test_bad_input_among_good(cluster, work, tmp_path):
    """The bad file gets one line and FAILED in the summary; the others finish; exit 1."""
    _, preset, clips, model = work
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    out.mkdir()
    p = upscale(clips["short"], bad, "-o", out, *common(preset, model), "--cluster", cluster.address)
    stdout, err = p.communicate(timeout=300)
    assert p.returncode == 1
    lines = error_lines(err)
    assert len(lines) == 1 and "bad.mkv" in lines[0], err
    assert "Traceback" not in err
    assert (out / "short.mkv").exists() and not (out / "bad.mkv").exists()
    assert any(line.startswith("bad.mkv") and "FAILED" in line for line in stdout.splitlines()), stdout
    assert sorted(p.name for p in out.iterdir()) == ["short.mkv"]


def test_unreachable_cluster_is_one_line(work, tmp_path):
    """A wrong address: one line naming it, exit 2, nothing written (no cluster needed)."""
    _, preset, clips, model = work
    p = upscale(clips["short"], "-o", tmp_path / "o.mkv", *common(preset, model), "--cluster",
                f"127.0.0.1:{free_port()}")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2
    assert err.strip().count("\n") == 0 and "cannot reach the Ray cluster" in err, err
    assert list(tmp_path.iterdir()) == []


def test_damage_named_as_one_process(cluster, work, tmp_path, capsys):
    """A clip with packets overwritten in the middle: the same frames and the same damaged time
    ranges in the summary as one process (FFV1: frames compare whatever the segment bounds).
    Frames on their own (`--temporal 0`, `--grid fixed`): after the damage the workers' segments
    count the frames the decoder dropped and one process's do not, and the grid and the temporal
    filter start again at segment bounds, so with them the frames after the damage may differ."""
    root, preset, _, model = work
    clean = make_clip(tmp_path / "clean.mkv", codec="libx264", pts_ms=SHORT, options={"g": "12"})
    src = damage_clip(clean, tmp_path / "damaged.mkv")
    flags = [*common(preset, model)[:-1], "--codec", "ffv1", "--temporal", "0", "--grid", "fixed"]
    code, one_out, err = run_upscale(capsys, src, "-o", tmp_path / "one.mkv", *flags)
    assert code == 0, err
    p = upscale(src, "-o", tmp_path / "farm.mkv", *flags, "--cluster", cluster.address)
    stdout, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    note = [line for line in stdout.splitlines() if "damaged input at" in line]
    assert note and note == [line for line in one_out.splitlines() if "damaged input at" in line], stdout
    assert video_pts(tmp_path / "farm.mkv") == video_pts(tmp_path / "one.mkv")
    assert all((a == b).all() for a, b in zip(decoded_frames(tmp_path / "farm.mkv"),
                                              decoded_frames(tmp_path / "one.mkv")))


def test_busy_output_is_one_line(cluster, work, tmp_path):
    """The job lock holds for a cluster job too: an output another run writes is refused, untouched."""
    from gendrpix_video.video.lock import JobLock
    _, preset, clips, model = work
    target = tmp_path / "short.mkv"
    with JobLock(tmp_path / ".short.mkv.gendrpix", str(target)):
        p = upscale(clips["short"], "-o", target, *common(preset, model), "--cluster", cluster.address)
        stdout, err = p.communicate(timeout=300)
        assert (tmp_path / ".short.mkv.gendrpix" / "lock").exists()
    assert p.returncode == 1
    lines = error_lines(err)
    assert len(lines) == 1 and "another run is writing this output" in lines[0], err
    assert "busy" in stdout and not target.exists()


def test_gpus_without_a_gpu_is_one_line(work, tmp_path):
    """--gpus on a machine without CUDA: one line, exit 2, no Ray instance left behind. (A GPU
    machine hides its GPUs from the CLI to run it too.)"""
    _, preset, clips, model = work
    p = upscale(clips["short"], "-o", tmp_path / "o.mkv", "--preset", preset, "--model", model, "--gpus", "1",
                env={**ENV, "CUDA_VISIBLE_DEVICES": ""})
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and err.strip().count("\n") == 0 and "no CUDA GPU" in err, err


def test_ctrl_c_then_resume(cluster, work, tmp_path, capsys):
    """SIGINT mid-job: exit 130, one line, no output and nothing but the finished segments in the
    hidden job folder; --resume reuses them and the output is the one-process output."""
    _, preset, clips, model = work
    target = tmp_path / "long.mkv"
    p = upscale(clips["long"], "-o", target, *common(preset, model), "--cluster", cluster.address)
    wait_for(lambda: segments_done(target) >= 2, p)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not target.exists()
    workdir = tmp_path / ".long.mkv.gendrpix"
    assert sorted(p.name for p in tmp_path.iterdir()) == [workdir.name]
    kept = sorted(p.name for p in workdir.iterdir())
    assert "state.json" in kept and all(n == "state.json" or n.startswith("seg") for n in kept), kept
    done = segments_done(target)
    assert 2 <= done < 25

    p = upscale(clips["long"], "-o", target, *common(preset, model)[:-1], "--cluster", cluster.address,
                "--resume")
    stdout, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    # Segments a worker finished after the interrupt count too: they are complete.
    resumed = int(stdout.split(" resumed)")[0].rsplit("(", 1)[1])
    assert done * 8 <= resumed < len(LONG), stdout
    assert_same(one_process(work, "long", capsys), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv"]


def test_worker_killed_and_node_stopped(cluster, work, tmp_path, capsys):
    """A worker killed by its pid, then the second node stopped, mid-job: Ray reruns their segments
    on what is left and the output is still the one-process output. (Last: it stops a node.)"""
    _, preset, clips, model = work
    target = tmp_path / "long.mkv"
    p = upscale(clips["long"], "-o", target, *common(preset, model), "--cluster", cluster.address)
    wait_for(lambda: segments_done(target) >= 1 and segment_workers(), p)
    victim = segment_workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: segments_done(target) >= 6, p)
    cluster.stop(cluster.worker)
    at_stop = segments_done(target)
    _, err = p.communicate(timeout=400)
    assert p.returncode == 0, err
    assert at_stop < 25, "the job ended before the node was stopped"
    assert_same(one_process(work, "long", capsys), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv"]


def test_node_rate_over_the_span_of_its_segments():
    """Segments side by side on one GPU count once in a node's time, not once each."""
    from gendrpix_video.cluster.driver import NodeStats
    st = NodeStats()
    st.add(48, start=10.0, end=20.0)
    st.add(48, start=11.0, end=21.0)
    assert (st.tasks, st.frames, st.seconds) == (2, 96, 11.0)
    assert st.fps == 96 / 11.0
    assert NodeStats().fps == 0.0
