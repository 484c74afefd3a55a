"""Frame-range segments: a job cut into independent units of work for many processes or machines.

A segment is the frames [first, first + count) of the (selected part of the) input; it starts a
fresh encoder, so it begins with a keyframe of the output and references nothing before it,
exactly as the segments of one process do (same boundaries, same batches, same encoder settings),
so the joined output is the same. `encode_frames` turns one range into one segment file that
appears only complete; `SegmentJob` is the job manifest when segments finish in any order.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import torch

from .decode import Decoder, Frame
from .encode import Segment, encode_segment
from .engine import Engine
from .errors import VideoError
from .job import STATE, Job, workdir_of
from .lock import LOCK, JobLock
from .pipeline import JobPlan, output_frame
from .probe import VideoInfo


@dataclass(frozen=True)
class Range:
    """One unit of work: segment `index` of a job, frames [first, first + count)."""
    index: int
    first: int
    count: int


def frame_times(info: VideoInfo, start: float | None = None, duration: float | None = None) -> list[int]:
    """Presentation timestamps (input ticks) of every frame the job will read, in order.

    From the packets when their timestamps are clean (cheap: no decoding); otherwise (missing or
    repeated timestamps, which the decoder nudges) from a decoding pass, which is exact."""
    tb = info.time_base
    lo = Fraction(start).limit_denominator(1 << 30) if start else None
    hi = ((lo or info.start_time) + Fraction(duration).limit_denominator(1 << 30)) if duration else None
    with av.open(str(info.path)) as c:
        vs = c.streams[info.stream_index]
        pts = [p.pts for p in c.demux(vs) if p.size]
    if pts and None not in pts and len(set(pts)) == len(pts):
        pts.sort()
        return [p for p in pts if (lo is None or p * tb >= lo) and (hi is None or p * tb < hi)]
    with Decoder(info, start=start, duration=duration) as d:
        return [f.pts for f in d]


def plan_ranges(frames: int, segment_frames: int) -> list[Range]:
    """The segments one process would write: a new one every `segment_frames` frames."""
    return [Range(i, first, min(segment_frames, frames - first))
            for i, first in enumerate(range(0, frames, segment_frames))]


def read_range(plan: JobPlan, r: Range, want: list[int], *, strict: bool = False, damage: list | None = None):
    """The frames of range `r` (timestamps `want`), indexed as in the whole job: seek to the
    keyframe before its first frame when the timestamps allow it, else decode from the start and
    pick the range's timestamps. Damage met on the way is added to `damage` (seconds)."""
    depth = max(8, 2 * plan.batch)
    if r.first:
        at = Fraction(want[0]) * plan.info.time_base
        with Decoder(plan.info, start=at, depth=depth, strict=strict, deinterlace=plan.deinterlace) as d:
            got = []
            for f in d:
                if len(got) == r.count:
                    break
                got.append(f)
            seen = list(d.damage)
        if [f.pts for f in got] == want:
            if damage is not None:
                damage += seen
            yield from (Frame(r.first + k, f.pts, f.planes, f.frame) for k, f in enumerate(got))
            return
    # By timestamp from the start, as one process decodes: exact for any stream, slower for late ranges.
    wanted, last, k = set(want), want[-1], 0
    with Decoder(plan.info, start=plan.start, duration=plan.duration, depth=depth, strict=strict,
                 deinterlace=plan.deinterlace) as d:
        try:
            for f in d:
                if f.pts in wanted:
                    yield Frame(r.first + k, f.pts, f.planes, f.frame)
                    k += 1
                if k == len(want) or f.pts >= last:
                    return
        finally:
            if damage is not None:
                damage += d.damage


def encode_frames(plan: JobPlan, r: Range, times: list[int], model, device: torch.device, *,
                  strict: bool = False, damage: list | None = None) -> int:
    """Upscale and encode range `r` (its frames' timestamps `times`) into its segment in the job
    folder; returns the frame count. Damaged input met is added to `damage` (`strict`: raises).

    Written in a folder of its own and moved into place carrier first, sidecar last, so a killed
    or repeated attempt never leaves a segment that looks complete but is not."""
    job_dir = workdir_of(plan.target)
    attempt = job_dir / f"attempt-{r.index:05d}-{uuid.uuid4().hex[:8]}"
    attempt.mkdir()
    try:
        seg = Segment(r.index, r.first, attempt)
        engine = Engine(model, plan.engine, device)
        q: queue.Queue = queue.Queue(maxsize=max(2, 2 * plan.batch))  # bounds frames waiting to encode

        def batches():
            group = []
            for f in read_range(plan, r, times, strict=strict, damage=damage):
                group.append(f)
                if len(group) == plan.batch:
                    yield group
                    group = []
            if group:
                yield group

        def frames():
            while (item := q.get()) is not None:
                yield item

        def put(item) -> None:
            while True:
                try:
                    q.put(item, timeout=0.2)
                    return
                except queue.Full:
                    if encoder.done():  # failed: its error is raised below
                        return

        with ThreadPoolExecutor(1, thread_name_prefix="gendrpix-encode") as pool:
            encoder = pool.submit(encode_segment, seg, plan.enc, frames())
            try:
                with torch.inference_mode():
                    engine.run(batches(), lambda f, planes: put(output_frame(plan, f.pts, planes)))
            finally:
                put(None)
            n = encoder.result()
        if n == 0:
            raise VideoError(f"{plan.src}: no frames in segment {r.index} (frames {r.first}-{r.first + r.count - 1})")
        final = Segment(r.index, r.first, job_dir)
        os.replace(seg.carrier, final.carrier)
        os.replace(seg.sidecar, final.sidecar)
        return n
    finally:
        shutil.rmtree(attempt, ignore_errors=True)


class SegmentJob(Job):
    """The job manifest when segments finish in any order: each is recorded as it completes, and a
    resumed job reuses every complete segment, not only a leading run of them."""

    def __init__(self, target: Path, params: dict, ranges: list[Range], lock: JobLock):
        super().__init__(target, params, lock)
        self.ranges = {r.index: r for r in ranges}

    def start(self, resume: bool) -> None:
        state = self.workdir / STATE
        self.clean_attempts()  # attempts cut off when the driver or a worker died
        if not (resume and state.exists()):
            super().start(False)
            return
        old = json.loads(state.read_text())
        if old.get("key") != self.key:
            super().start(True)  # raises, naming the settings that differ
        # A segment is complete once its sidecar is in place (written last), recorded or not:
        # a worker may finish after its driver died.
        for r in self.ranges.values():
            seg = self.segment(r.index, r.first)
            if seg.carrier.exists() and seg.sidecar.exists():
                try:
                    side = seg.read_sidecar()
                except (OSError, ValueError):
                    continue
                if side.get("first_frame") == r.first and side.get("frames") == r.count:
                    self.done[r.index] = {"index": r.index, "first_frame": r.first, "frames": r.count}
        for p in self.workdir.glob("seg*"):
            if int(p.name[3:8]) not in self.done:
                p.unlink()
        self._save()

    def record(self, r: Range, frames: int) -> None:
        self.segment_done(self.segment(r.index, r.first), frames)

    def clean_attempts(self) -> None:
        """Remove what cancelled attempts left; finished segments stay for a resume."""
        if not self.workdir.exists():
            return
        for p in self.workdir.iterdir():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name not in (STATE, LOCK) and not p.name.startswith("seg"):  # a cut-off join
                p.unlink(missing_ok=True)
            elif p.suffix == ".tmp":
                p.unlink(missing_ok=True)

