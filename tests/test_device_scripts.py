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
