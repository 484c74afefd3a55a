"""The GPU-machine helper scripts that can run anywhere."""

import os
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_stash_copies_and_joins_split_files_once(tmp_path):
    src = tmp_path / "carry"
    (src / "photos").mkdir(parents=True)
    (src / "photos" / "a.jpg").write_bytes(b"jpg")
    data = os.urandom(1000)
    (src / "t.safetensors.part.aa").write_bytes(data[:600])
    (src / "t.safetensors.part.ab").write_bytes(data[600:])
    env = dict(os.environ, STASH=str(tmp_path / "stash"))
    run = lambda *p: subprocess.run(["bash", str(SCRIPTS / "device_stash.sh"), *map(str, p)],  # noqa: E731
                                    env=env, check=True, capture_output=True)
    run(src / "photos", src / "t.safetensors.part.aa")      # first call
    run(src / "t.safetensors.part.aa", src / "t.safetensors.part.ab")  # second call repeats a part
    assert (tmp_path / "stash" / "t.safetensors").read_bytes() == data
    assert (tmp_path / "stash" / "photos" / "a.jpg").read_bytes() == b"jpg"


def test_sweep_runs_one_training_per_gpu_and_grid_scores_them(tmp_path):
    import json
    import sys
    from gendrpix_video import load_model
    from tests.test_training import make_photo_set
    photos = make_photo_set(tmp_path / "photos")
    # A machine with two "GPUs" (a stand-in nvidia-smi) and this interpreter as python3.
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: x'\necho 'GPU 1: x'\n")
    (bin_ / "nvidia-smi").chmod(0o755)
    # python3 -m MODULE ... with the tests' stand-in teacher registered (conftest.py)
    (bin_ / "shim.py").write_text(
        f"import runpy, sys\nsys.path.insert(0, {str(SCRIPTS.parent / 'tests')!r})\nimport conftest  # noqa\n"
        "if sys.argv[1] == '-':\n"  # python3 - ARGS < script (device_fetch.sh)
        "    sys.argv = sys.argv[1:]\n    exec(compile(sys.stdin.read(), '<stdin>', 'exec'), {'__name__': '__main__'})\n"
        "else:\n    assert sys.argv[1] == '-m'\n    sys.argv = sys.argv[2:]\n"
        "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")
    (bin_ / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{bin_ / "shim.py"}" "$@"\n')
    (bin_ / "python3").chmod(0o755)
    root = SCRIPTS.parent
    env = dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}", PYTHONPATH=str(root), SWEEP=str(tmp_path / "sw"),
               STAGE="1", CONFIG="tiny", DATA=str(photos), TEACHER="test-bicubic")
    env.pop("OUT", None)
    common = "--batch 2 --crop 64 --bank 1 --device cpu --max-steps 2 --eval-every 1000"
    spec = tmp_path / "spec"
    spec.write_text(f"# name, then train arguments\na {common} --lr 1e-4\n\nb {common} --lr 2e-4\nc {common}\n")
    r = subprocess.run(["bash", str(SCRIPTS / "device_sweep.sh"), str(spec), "1", "--max-steps", "9", "--seed", "3"],
                       env=env, cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "a on GPU 0" in r.stdout and "b on GPU 1" in r.stdout and "'c' and later not started" in r.stderr
    runs = [tmp_path / "sw" / n for n in "ab"]
    assert not (tmp_path / "sw" / "c").exists()
    # The grid waits for the background runs to end, then scores each on its own "GPU", JSON into $OUT.
    out = tmp_path / "out"
    out.mkdir()
    env.update(OUT=str(out), WEIGHTS="1,0.5", DETAILS="1", WAIT="120")
    r = subprocess.run(["bash", str(SCRIPTS / "device_grid.sh"), str(runs[0] / "model.safetensors"), "none",
                        str(photos)], env=env, cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [json.loads((d / "state.json").read_text())["step"] for d in runs] == [2, 2]
    # the common arguments reach every run, and each line's own come after them
    prov = [load_model(d / "model.safetensors", device="cpu").metadata["provenance"] for d in runs]
    assert [p["lr"] for p in prov] == [1e-4, 2e-4] and [p["steps"] for p in prov] == [2, 2]
    for n in "ab":
        rows = json.loads((out / f"grid_{n}.json").read_text())["rows"]
        assert [(r_["weight"], r_["detail"]) for r_ in rows] == [(1.0, 1.0), (0.5, 1.0)]
    assert "## grid_a" in r.stdout and "| bicubic |" in r.stdout
    # Waiting for the sweep returns at once when no run trains (its own command line names the
    # sweep folder) and brings the chosen run home.
    for f in out.iterdir():
        f.unlink()
    r = subprocess.run(["bash", str(SCRIPTS / "device_sweep_wait.sh"), "b", "60"], env=env, cwd=root,
                       capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
    assert "still running" not in r.stdout and f"== {runs[0]}/train.log" in r.stdout
    assert [f.name for f in out.iterdir()] == ["runs.tar.part.aa"]
    listing = subprocess.run(["tar", "tf", str(out / "runs.tar.part.aa")], capture_output=True, text=True).stdout
    assert "b/model_fp16.safetensors" in listing and "a/" not in listing


def test_pack_fills_calls_in_order_and_splits_what_no_call_holds(tmp_path):
    """Every piece once, each call's folder within the budget, a large file's parts in call order
    (device_stash.sh then joins them back)."""
    src = tmp_path / "src"
    (src / "photos").mkdir(parents=True)
    (src / "photos" / "a.jpg").write_bytes(os.urandom(300))
    big = os.urandom(2500)
    (src / "teacher.safetensors").write_bytes(big)
    (src / "small.npz").write_bytes(os.urandom(400))
    out = tmp_path / "pack"
    r = subprocess.run([str(SCRIPTS / "device_pack.py"), str(out), str(src / "photos"),
                        str(src / "teacher.safetensors"), str(src / "small.npz"), "--budget", "1000"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    calls = sorted(out.iterdir(), key=lambda d: int(d.name[1:]))
    assert [d.name for d in calls] == ["c1", "c2", "c3", "c4"]
    for d in calls:
        assert sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) <= 1000
    names = [sorted(p.name for p in d.iterdir()) for d in calls]
    assert names == [["photos", "teacher.safetensors.part.aa"], ["teacher.safetensors.part.ab"],
                     ["small.npz.part.aa", "teacher.safetensors.part.ac"], ["small.npz.part.ab"]]
    env = dict(os.environ, STASH=str(tmp_path / "stash"))
    for d in calls:  # one device call each
        subprocess.run(["bash", str(SCRIPTS / "device_stash.sh"), *map(str, d.iterdir())], env=env,
                       check=True, capture_output=True)
    assert (tmp_path / "stash" / "teacher.safetensors").read_bytes() == big
    assert (tmp_path / "stash" / "small.npz").read_bytes() == (src / "small.npz").read_bytes()
    assert (tmp_path / "stash" / "photos" / "a.jpg").exists()


def test_vs_settings_parse_types_each_value_as_the_filter_s_default():
    import sys
    import pytest
    sys.path.insert(0, str(SCRIPTS))
    from vs_settings import parse
    assert parse("") == {}
    assert parse("span=12,temporal=0,grid=fixed,batch_size=4") == {
        "span": 12, "temporal": 0.0, "grid": "fixed", "batch_size": 4}
    with pytest.raises(SystemExit, match="unknown filter argument 'spam'"):
        parse("spam=1")
