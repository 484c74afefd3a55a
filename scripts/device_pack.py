#!/usr/bin/env python3
"""Pack files and folders for the GPU machine into as few device calls as the carry limit allows.

A call carries the working tree plus its `carry` paths, 64 MiB in all; with the tree near 36 MB,
training data and teachers take several calls. This fills folders OUT/c1, OUT/c2, ... in the
order given, each at most BUDGET bytes (default: 64 MiB less the tree that travels, less 1 MiB),
splitting a file that does not fit the room left in a call into NAME.part.aa, .ab, ... in call
order, which scripts/device_stash.sh joins on the machine. OUT belongs in an ignored folder
(.carry/), or it would travel with every call. Files are hard links where the filesystem allows.
Carry each folder in one call, back to back (a machine goes back 30 s after a call):

    scripts/device_pack.py .carry/pack data/photos .carry/realesrgan-x4plus.safetensors ...
    run(carry=[".carry/pack/c1"], command="scripts/device_stash.sh .carry/pack/c1/*") ...

usage: scripts/device_pack.py OUT PATH... [--budget BYTES]
"""
from __future__ import annotations

import argparse
import os
import shutil
import string
import subprocess
import sys
from itertools import product
from pathlib import Path

LIMIT = 64 * 2**20
MARGIN = 2**20


def tree_bytes(root: Path) -> int:
    """What a call sends besides its carry: tracked files and untracked ones git does not ignore."""
    names = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.split(b"\0")
    return sum((root / n.decode()).stat().st_size for n in names if n and (root / n.decode()).is_file())


def size(p: Path) -> int:
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def suffixes():
    for a, b in product(string.ascii_lowercase, repeat=2):
        yield a + b


def link_or_copy(src, dst) -> None:
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link_or_copy)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def pack(paths: list[Path], out: Path, budget: int) -> list[list[str]]:
    """Fill out/c1, out/c2, ... in order; returns the names in each. A file that does not fit the
    room left in a call is split there (its parts arrive in name order); a folder starts a call."""
    calls: list[list[tuple[str, int, Path, int | None]]] = [[]]  # (name, bytes, source, offset of a part)
    room = lambda: budget - sum(x[1] for x in calls[-1])  # noqa: E731
    for p in paths:
        n = size(p)
        if p.is_dir():
            if n > budget:
                raise SystemExit(f"device_pack: {p} ({n} bytes) is a folder larger than a call's {budget} bytes")
            if n > room():
                calls.append([])
            calls[-1].append((p.name, n, p, None))
        elif n <= room():
            calls[-1].append((p.name, n, p, None))
        else:
            off, parts = 0, suffixes()
            while off < n:
                if room() == 0:
                    calls.append([])
                k = min(room(), n - off)
                calls[-1].append((f"{p.name}.part.{next(parts)}", k, p, off))
                off += k
    calls = [c for c in calls if c]
    if out.exists():
        shutil.rmtree(out)
    for i, call in enumerate(calls, 1):
        d = out / f"c{i}"
        d.mkdir(parents=True)
        for name, n, src, off in call:
            if off is None:
                link_or_copy(src, d / name)
            else:
                with open(src, "rb") as f:
                    f.seek(off)
                    (d / name).write_bytes(f.read(n))
    return [[x[0] for x in call] for call in calls]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--budget", type=int, help="bytes a call may carry (default: from the tree's size)")
    a = ap.parse_args(argv)
    paths = [Path(p) for p in a.paths]
    for p in paths:
        if not p.exists():
            raise SystemExit(f"device_pack: no such file or folder: {p}")
    budget = a.budget or LIMIT - tree_bytes(Path(__file__).resolve().parent.parent) - MARGIN
    if budget <= 0:
        raise SystemExit("device_pack: the working tree alone fills a call's 64 MiB")
    for i, names in enumerate(pack(paths, Path(a.out), budget), 1):
        d = Path(a.out) / f"c{i}"
        print(f"{d}  {size(d) / 1e6:.1f} MB: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
