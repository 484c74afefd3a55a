"""One output file as a job: a work folder beside the target, a resume state, an atomic finish.

The target itself only ever appears complete: everything is written inside the hidden work
folder `.<name>.gendrpix/` (same filesystem, so the final rename is atomic) and moved into place
on success. After Ctrl-C (or `--strict` stopping at damage) the folder stays so `--resume` can
continue from the last finished segment; any other failure removes it. The folder is locked
(lock.py) for the whole job: a second run on the same output refuses without touching it.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from .encode import Segment
from .errors import VideoError
from .lock import LOCK, JobLock

STATE = "state.json"


def workdir_of(target: Path) -> Path:
    return target.parent / f".{target.name}.gendrpix"


class Job:
    def __init__(self, target: Path, params: dict, lock: JobLock):
        self.target = target
        self.workdir = workdir_of(target)
        self.lock = lock
        self.params = params
        self.key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.done: dict[int, dict] = {}
        self._lock = threading.Lock()

    @property
    def partial(self) -> Path:
        """The whole output before its rename: a temporary file beside the target."""
        return self.workdir / f"partial{self.target.suffix}"

    def segment(self, index: int, first_frame: int) -> Segment:
        return Segment(index, first_frame, self.workdir)

    def start(self, resume: bool) -> None:
        """Empty the (locked) work folder, or pick up the finished segments of an interrupted run."""
        state = self.workdir / STATE
        if resume and state.exists():
            old = json.loads(state.read_text())
            if old.get("key") != self.key:
                diff = sorted(k for k in set(old.get("params", {})) | set(self.params)
                              if str(old.get("params", {}).get(k)) != str(self.params.get(k)))
                raise VideoError(f"cannot resume {self.target.name}: settings differ from the interrupted run "
                                 f"({', '.join(diff) or 'version'})", hint="rerun without --resume to start over")
            for seg in old.get("segments", []):
                s = self.segment(seg["index"], seg["first_frame"])
                if s.carrier.exists() and s.sidecar.exists():
                    self.done[seg["index"]] = seg
            # Only a prefix of finished segments counts: decoding restarts after the last of them.
            keep, i = {}, 0
            while i in self.done:
                keep[i] = self.done[i]
                i += 1
            self.done = keep
            for p in self.workdir.iterdir():  # leftovers of segments being written when it stopped
                if p.name not in (STATE, LOCK) and not any(p.name.startswith(f"seg{k:05d}.") for k in keep):
                    p.unlink()
        else:
            for p in self.workdir.iterdir():
                if p.name != LOCK:
                    p.unlink()
        self._save()

    def resumed_frames(self) -> int:
        return sum(s["frames"] for s in self.done.values())

    def segment_done(self, seg: Segment, frames: int) -> None:
        with self._lock:
            self.done[seg.index] = {"index": seg.index, "first_frame": seg.first_frame, "frames": frames}
            self._save()

    def _save(self) -> None:
        tmp = self.workdir / (STATE + ".tmp")
        tmp.write_text(json.dumps({"key": self.key, "params": self.params,
                                   "segments": [self.done[k] for k in sorted(self.done)]}, default=str))
        os.replace(tmp, self.workdir / STATE)

    def segments(self) -> list[Segment]:
        idx = sorted(self.done)
        if idx != list(range(len(idx))):
            raise VideoError(f"{self.target.name}: segments missing ({idx}); rerun without --resume")
        return [self.segment(i, self.done[i]["first_frame"]) for i in idx]

    def commit(self) -> None:
        """Move the finished output into place (atomic) and remove the work folder."""
        os.replace(self.partial, self.target)
        self.lock.release(remove_folder=True)

    def discard(self) -> None:
        self.lock.release(remove_folder=True)

    def keep(self) -> None:
        """Unlock, leaving the finished segments for a resumed run."""
        self.lock.release()
