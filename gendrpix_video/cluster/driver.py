"""One upscale job over many GPUs and machines, on Ray: the driver.

`upscale_files` starts one worker actor per GPU (or CPU) of the cluster (worker.SegmentWorker),
which load the model while it checks every input and locks its output with the library's own
steps (check_job, JobLock) and plans it (plan_job; the pre-flight plan measured on a worker). It
cuts each file into frame-range segments, sends them to the workers as they free up, records each
finished segment in its job's manifest and joins a file (finish_job) once all its segments are
in. Inputs and outputs live on a path every node sees.

Ray is imported here and in worker.py only, when a scale-out run starts: `pip install
gendrpix-video[cluster]`. Faults: a segment whose worker or node died goes to another worker
(MAX_RETRIES) and the worker is replaced; an error in the job itself (a damaged input, storage a
node cannot reach) fails that file only.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

from ..loading import model_sources, resolve, shipped_models
from ..model import DEFAULT_DETAIL
from ..policy import resolve_detail
from ..video.argcheck import check_numbers
from ..video.errors import DamagedInput, VideoError, translate
from ..video.job import workdir_of
from ..video.lock import JobBusy, JobLock
from ..video.pipeline import JobPlan, OnPlan, Result, check_job, choose_source, finish_job, model_id, plan_job
from ..video.preflight import PlanRefused
from ..video.presets import UpscaleSettings
from ..video.segments import SegmentJob, frame_times, plan_ranges
from ..weights import WeightsError, read_header
from .worker import SegmentWorker

# Ray's own extras cost start-up time and write outside the job; a farm can turn them back on.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
MAX_RETRIES = 4  # reruns of a segment whose worker or node died
MAX_CONCURRENCY = 16  # an actor's threads; the driver sends each at most segments_per_worker

Progress = Callable[[int, int | None], None]


@dataclass
class NodeStats:
    """One node's share: several segments may run on it at once (several a GPU), so its rate is
    its frames over the span from its first segment's start to its last one's end."""
    tasks: int = 0
    frames: int = 0
    start: float | None = None  # the node's own monotonic clock
    end: float | None = None

    def add(self, frames: int, start: float, end: float) -> None:
        self.tasks += 1
        self.frames += frames
        self.start = start if self.start is None else min(self.start, start)
        self.end = end if self.end is None else max(self.end, end)

    @property
    def seconds(self) -> float:
        return self.end - self.start if self.tasks else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Report:
    results: list[Result]
    nodes: dict[str, NodeStats] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if any(r.error for r in self.results) else 0


@dataclass
class _File:
    """One input on its way through the cluster."""
    result: Result
    plan: JobPlan
    job: SegmentJob
    times: list[int]
    todo: set[int]
    t0: float = 0.0
    plan_ref: object = None
    running: int = 0         # its segments on workers now
    keep: bool = False       # failed: keep its finished segments (damage under --strict)
    damage: list[tuple[float, float]] = field(default_factory=list)


def model_identity(name: str | os.PathLike | None) -> tuple[str, str, SimpleNamespace]:
    """(what workers load, model id for the manifest, a stand-in with the model's metadata, sources
    and default detail) from the weights file's header: the driver never loads the weights itself."""
    try:
        path = resolve(name)
        meta = read_header(path).get("__metadata__", {})
    except (WeightsError, OSError) as e:
        raise VideoError(f"--model: {e}") from None
    stand_in = SimpleNamespace(metadata={"source": str(path), "sources": json.loads(meta.get("sources", "{}"))},
                               config=SimpleNamespace(name=meta.get("config_name", "?")),
                               default_detail=float(json.loads(meta.get("default_detail", str(DEFAULT_DETAIL)))),
                               sources=model_sources(meta))
    # A shipped name travels as a name: the package may sit at another path on another node.
    load = str(name) if (name is None or str(name) in shipped_models()) else str(Path(name).resolve())
    return (None if name is None else load), model_id(stand_in), stand_in


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """One clear line for a wrong or dead address, before Ray's own retries and log lines."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise VideoError(f"--cluster: {address!r} is not an address", hint="HOST:PORT of the head node, or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise VideoError(f"--cluster: cannot reach the Ray cluster at {address} ({e.strerror or e})",
                         hint="is `ray start --head` running there? see docs/cluster.md")


def connect(address: str | None, workers: int | str | None, device: str):
    """Ray, connected: to the cluster at `address`, or a local instance with `workers` GPUs (CPU
    workers with device cpu). Returns the ray module."""
    try:
        import ray
    except ImportError:
        raise VideoError("--gpus and --cluster need Ray", hint="pip install 'gendrpix-video[cluster]'") from None
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    quiet = {"log_to_driver": False, "logging_level": "error"}
    if address:
        if address not in ("auto", "local"):
            check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise VideoError(f"--cluster: cannot connect to the Ray cluster at {address}: {first}") from None
        return ray
    if device == "cpu":
        n = (os.cpu_count() or 1) if workers in (None, "all") else int(workers)
        ray.init(num_cpus=n, num_gpus=0, include_dashboard=False, **quiet)
    else:
        import torch
        have = torch.cuda.device_count()
        if have == 0:
            raise VideoError("--gpus: no CUDA GPU is visible", hint="--device cpu runs CPU workers")
        n = have if workers in (None, "all") else int(workers)
        if n > have:
            raise VideoError(f"--gpus {n}: only {have} CUDA GPU(s) visible")
        ray.init(num_gpus=n, include_dashboard=False, **quiet)
    return ray


def _reason(ray, e: BaseException, src: Path, what: str) -> str:
    """One line for a failed task (`what`: "segment 3", "the plan"): the job's own error as it
    is, others with the node they ran on, Ray's own in a few words."""
    cause = getattr(e, "cause", None)
    node = f"node {e.ip}: " if getattr(e, "ip", None) else ""
    if isinstance(cause, VideoError):
        return str(cause)
    if cause is not None:
        known = translate(cause, where=str(src))
        if known is not None:
            return f"{node}{known}"
        return f"{node}{src}: {what}: {type(cause).__name__}: {' '.join(str(cause).split())}"
    if isinstance(e, (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        return f"{src}: {what} failed {MAX_RETRIES + 1} times: its worker or node died each time"
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{node}{src}: {what}: {type(e).__name__}: {first}"


def status_of(e: BaseException | None) -> str:
    """The summary's word for a file that stopped, as a single-process run says it."""
    if isinstance(e, DamagedInput):
        return "damaged"
    if isinstance(e, PlanRefused):
        return "refused"
    if isinstance(e, JobBusy):
        return "busy"
    return "failed"


def merge_damage(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Damaged ranges from many segments (overlapping where their decoding overlapped), merged."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def worker_count(ray, device: str) -> int:
    """Devices the cluster offers: its GPUs, or its CPUs for CPU tasks."""
    return max(1, int(ray.cluster_resources().get("GPU" if device == "cuda" else "CPU", 1)))


def segments_per_worker(plan: JobPlan) -> int:
    """Segments a worker runs at once (in its threads): as many as one process runs encoders in
    parallel, since a segment has one encoder and the CPU encoders, not the GPU, set the pace at
    4K (BENCHMARKS.md)."""
    return max(1, plan.workers)


@dataclass
class _Slot:
    """One worker actor (cluster/worker.py): usable once its model answered `warm`."""
    actor: object
    ready: object            # the ref of its warm() call, None once answered
    live: bool = False
    busy: int = 0


class _Workers:
    """The job's actors, one per GPU (or CPU), replaced when one dies (up to MAX_RETRIES times
    the cluster's size; a replacement waits for room, so a lost node's share moves to the rest)."""

    def __init__(self, ray, load_name: str | None, device: str, n: int):
        self.ray = ray
        res = {"num_gpus": 1} if device == "cuda" else {"num_cpus": 1}
        # SPREAD: every node gets its share from the start (the default packs the driver's own node first).
        self.cls = ray.remote(SegmentWorker).options(
            **res, max_concurrency=MAX_CONCURRENCY, max_restarts=0, max_task_retries=0,
            scheduling_strategy="SPREAD")
        self.args = (load_name, device)
        self.spares = MAX_RETRIES * n
        self.error: str | None = None  # why a worker could not start, for "no worker left"
        self.slots = [self._spawn() for _ in range(n)]

    def _spawn(self) -> _Slot:
        a = self.cls.remote(*self.args)
        return _Slot(a, a.warm.remote())

    def lost(self, s: _Slot, kill: bool = False) -> None:
        """`s` died (its process or node), or is unusable (`kill`: end it first): drop it and start
        another while spares last."""
        if s in self.slots:
            if kill:
                self.ray.kill(s.actor, no_restart=True)
            self.slots.remove(s)
            if self.spares > 0:
                self.spares -= 1
                self.slots.append(self._spawn())

    def warming(self) -> dict:
        return {s.ready: s for s in self.slots if s.ready is not None}

    def answered(self, s: _Slot) -> None:
        """Its warm() call came back: live, or lost with the error raised."""
        ref, s.ready = s.ready, None
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            self.lost(s)
            return
        except self.ray.exceptions.RayError as e:  # its model did not load there (a path, a GPU)
            cause = getattr(e, "cause", None)
            self.error = str(cause) if isinstance(cause, VideoError) else f"{type(cause or e).__name__}: {cause or e}"
            self.lost(s, kill=True)
            return
        s.live = True

    def plan(self, *args):
        """The pre-flight plan on a worker (waiting for its model), on another if that one dies."""
        for _ in range(MAX_RETRIES + 1):
            if not self.slots:
                break
            s = next((x for x in self.slots if x.live), None) or self.slots[0]
            try:
                return self.ray.get(s.actor.plan.remote(*args))
            except self.ray.exceptions.RayActorError:
                self.lost(s)
        raise VideoError(f"the plan failed {MAX_RETRIES + 1} times: its worker or node died each time")

    def kill(self) -> None:
        for s in self.slots:
            self.ray.kill(s.actor, no_restart=True)


def upscale_files(inputs: list[str | os.PathLike], dst: str | os.PathLike | None, settings: UpscaleSettings, *,
                  model: str | os.PathLike | None = None, device: str | None = None, address: str | None = None,
                  workers: int | str | None = None, resume: bool = False, overwrite: bool = False,
                  start: float | None = None, duration: float | None = None, progress: Progress | None = None,
                  on_error: Callable[[str], None] | None = None, on_plan: OnPlan | None = None,
                  max_memory: float | None = None, max_minutes: float | None = None,
                  strict: bool = False) -> Report:
    """Upscale `inputs` over a Ray cluster (`address`) or `workers` local GPUs (CPU workers with
    device "cpu"), as `upscale_file` would one by one: same outputs, same errors, the same job
    lock, pre-flight plan (`on_plan`, `max_memory`, `max_minutes`; the time over all workers) and
    damage handling (`strict`). Failed inputs are reported in the results (and to `on_error` as
    they happen); the others finish. Ctrl-C cancels the work, keeping finished segments for
    `resume`."""
    check_numbers(start=start, duration=duration, max_memory=max_memory, max_minutes=max_minutes)
    if device not in (None, "cpu", "cuda"):
        raise VideoError(f"--device {device}: a scale-out run takes cpu or cuda (Ray picks the GPU of each worker)")
    load_name, mid, stand_in = model_identity(model)
    t_start = time.monotonic()
    report = Report([])
    ray = connect(address, workers, device or ("cuda" if address is None else None))
    if device is None:  # the cluster's GPUs when it has any (the driver's machine may have none)
        device = "cuda" if address is None or ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    parallel = worker_count(ray, device)
    files: list[_File] = []
    locks: list[JobLock] = []
    pending: dict = {}  # segment call -> (file, range, slot)
    pool = None
    try:
        # Workers start and load the model while the inputs are checked and planned.
        pool = _Workers(ray, load_name, device, parallel)
        # Check and plan every input first: a bad one is reported and the others go ahead. Paths
        # travel absolute: a worker's working folder is not the driver's.
        if dst is not None:
            dst = os.path.abspath(dst)
        for src in [Path(os.path.abspath(p)) for p in inputs]:
            r = Result(src)
            report.results.append(r)
            lock = None
            try:
                info = check_job(src, dst, settings, r, resume=resume, overwrite=overwrite)
                if info is None:
                    continue
                lock = JobLock(workdir_of(r.target), str(r.target))
                lock.acquire()
                locks.append(lock)
                # The driver decides "auto" once per file, so every worker restores it alike.
                fs, how = choose_source(info, settings, stand_in.sources, start=start, duration=duration)
                plan = plan_job(src, r.target, info, fs, model_id=mid,
                                detail=resolve_detail(stand_in, fs.detail, fs.source),
                                device=f"ray:{device}", start=start, duration=duration, source_guess=how)
                times = frame_times(info, start, duration)
                if not times:
                    raise VideoError(f"{src}: no video frames in the selected range")
                plan.frames = len(times)
                share = segments_per_worker(plan)
                try:
                    r.plan = pool.plan(plan, max_memory, max_minutes, parallel * share, share)
                except ray.exceptions.RayError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, VideoError):
                        raise cause from None
                    raise VideoError(_reason(ray, e, src, "the plan")) from None
                if on_plan:
                    on_plan(r.plan)
                ranges = plan_ranges(len(times), plan.segment_frames)
                job = SegmentJob(r.target, plan.params, ranges, lock)
                job.start(resume)
                r.resumed = job.resumed_frames()
                r.frames = r.resumed
                todo = {x.index for x in ranges if x.index not in job.done}
                files.append(_File(r, plan, job, times, todo))
            except (KeyboardInterrupt, Exception) as e:
                if lock is not None:  # nothing of this run's is in the folder yet
                    lock.release(remove_folder=lock.created)
                if isinstance(e, KeyboardInterrupt):
                    raise
                known = e if isinstance(e, VideoError) else translate(e, where=str(src))
                if known is None:
                    raise
                _fail(r, str(known), on_error, status_of(known))

        total = sum(len(f.times) for f in files)
        done_frames = sum(f.job.resumed_frames() for f in files)
        if progress:
            progress(done_frames, total)
        # Largest first: the long files set the end of the job, so they start first.
        queue: deque = deque()
        for f in sorted(files, key=lambda f: -len(f.times) * f.plan.enc.width * f.plan.enc.height):
            f.t0 = time.monotonic()
            f.plan_ref = ray.put(f.plan)
            queue.extend((f, rg) for rg in f.job.ranges.values() if rg.index in f.todo)
        for f in files:
            if not f.todo:
                _finish(f, on_error)
        per_slot = max((segments_per_worker(f.plan) for f in files), default=1)
        tries: dict[tuple[int, int], int] = {}

        while queue or pending:
            for s in pool.slots:
                while s.live and s.busy < per_slot and queue:
                    f, rg = queue.popleft()
                    if f.result.error:
                        continue
                    ref = s.actor.run.remote(f.plan_ref, rg, f.times[rg.first: rg.first + rg.count], strict)
                    pending[ref] = (f, rg, s)
                    s.busy += 1
                    f.running += 1
            warming = pool.warming()
            if not pending and not warming:
                for f, _ in queue:
                    if not f.result.error:
                        why = f" (last: {' '.join(pool.error.split())})" if pool.error else ""
                        _fail(f.result, f"{f.plan.src}: no worker left on the cluster{why}", on_error)
                        _drop(f)
                break
            ready, _ = ray.wait([*pending, *warming], num_returns=len(pending) + len(warming), timeout=0.5)
            for ref in ready:
                if ref in warming:
                    pool.answered(warming[ref])
                    continue
                f, rg, s = pending.pop(ref)
                s.busy -= 1
                f.running -= 1
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:
                    cause = getattr(e, "cause", None)
                    died = isinstance(e, ray.exceptions.RayActorError)
                    # A GPU error may be the GPU's, not the job's: try the segment again, on a
                    # fresh worker (a CUDA error can leave the worker's context unusable).
                    gpu_error = device == "cuda" and isinstance(cause, RuntimeError)
                    if died or gpu_error:
                        pool.lost(s, kill=gpu_error)
                    key = (id(f), rg.index)
                    if f.result.error:
                        pass  # failed already: only the clean-up below
                    elif (died or gpu_error) and tries.get(key, 0) < MAX_RETRIES:
                        tries[key] = tries.get(key, 0) + 1
                        queue.appendleft((f, rg))
                    else:
                        _fail(f.result, _reason(ray, e, f.plan.src, f"segment {rg.index}"), on_error,
                              status_of(cause))
                        f.keep = isinstance(cause, DamagedInput)
                    if f.result.error and not f.running:
                        _drop(f)
                    continue
                if f.result.error:  # a segment of a failed file, finished after the failure
                    if not f.running:
                        _drop(f)
                    continue
                f.job.record(rg, out["frames"])
                f.todo.discard(rg.index)
                f.result.frames += out["frames"]
                f.damage += out["damage"]
                report.nodes.setdefault(out["node"], NodeStats()).add(out["frames"], out["start"], out["end"])
                done_frames += out["frames"]
                if progress:
                    progress(done_frames, total)
                if not f.todo:
                    _finish(f, on_error)
    except KeyboardInterrupt:
        report.interrupted = True
        refs = list(pending)
        if pool is not None:
            pool.kill()
        if refs:  # wait until the workers are gone before cleaning up after them
            ray.wait(refs, num_returns=len(refs), timeout=15)
        for f in files:
            f.job.clean_attempts()
        for r in report.results:  # every input not finished (or failed) before the interrupt
            if not r.error and r.status == "ok" and not r.size:
                r.status, r.error = "interrupted", "interrupted"
    finally:
        for lock in locks:  # unfinished jobs: unlocked, their finished segments kept for --resume
            lock.release()
        ray.shutdown()
        report.seconds = time.monotonic() - t_start
    return report


def _fail(r: Result, message: str, on_error, status: str = "failed") -> None:
    r.error, r.status = message, status
    if on_error:
        on_error(message)


def _drop(f: _File) -> None:
    """A failed file, once none of its segments runs: remove its work folder, or (`f.keep`, damage
    under --strict) leave the finished segments for --resume, as one process does."""
    if f.keep:
        f.job.clean_attempts()
        f.job.keep()
    else:
        f.job.discard()


def _finish(f: _File, on_error) -> None:
    p = f.plan
    end = None
    if p.duration:
        lo = Fraction(p.start).limit_denominator(1 << 30) if p.start else p.info.start_time
        end = lo + Fraction(p.duration).limit_denominator(1 << 30)
    f.result.damage = merge_damage(f.damage)
    try:
        finish_job(p, f.job, f.times[0], end)
    except KeyboardInterrupt:
        raise  # the segments stay for --resume
    except BaseException as e:
        f.job.discard()
        known = translate(e, where=str(p.target))
        if known is None:
            raise
        _fail(f.result, str(known), on_error)
        return
    f.result.status = "ok"
    f.result.size = p.target.stat().st_size
    f.result.seconds = time.monotonic() - f.t0
