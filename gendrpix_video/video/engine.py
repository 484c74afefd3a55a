"""The engine: batches of raw frames -> GPU -> RGB -> model -> YUV -> host, in order.

With the grid following the picture or a temporal filter, a thread estimates each frame's motion
(`motion.GridFollower`) one batch ahead; the filter (`temporal.TemporalFilter`) then runs on the
restored frames in order on the compute stream.

On CUDA three streams overlap the work of consecutive batches: a copy stream uploads batch k+1
from pinned buffers while the compute stream converts colour and runs the model (bf16) on batch
k, and a second copy stream brings batch k-1 back to pinned buffers, which an output thread
hands to the encoders. A ring of slots bounds the memory; events order the streams. On a CPU
the same steps run one after another.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..motion import GridFollower, Motion
from ..padcfg import restore_any_scale
from ..temporal import TemporalFilter
from .colour import Layout, from_rgb, to_rgb
from .decode import Frame

Emit = Callable[[Frame, list[np.ndarray]], None]


@dataclass
class EngineConfig:
    in_layout: Layout
    in_size: tuple[int, int]       # (h, w) of the decoded frames
    in_matrix: int
    in_full: bool
    out_layout: Layout
    out_size: tuple[int, int]      # (H, W) of the output
    out_matrix: int
    out_full: bool
    detail: float | None = None    # None: the model's default_detail
    seed: int = 0
    source: str = "any"            # model.SOURCES: "clean" for clean masters
    batch: int = 4
    grid: str = "fixed"            # "follow": the x8 grid moves with the picture (motion.py)
    temporal: float = 0.0          # temporal filter strength (temporal.py); 0: frames on their own
    supersample: float = 1.0       # the model restores to up to this much more (policy.run_size)
    segment_frames: int = 0        # frames of a segment: positions and the filter start again at each


GRIDS = ("follow", "fixed")


class Engine:
    def __init__(self, model, cfg: EngineConfig, device: torch.device):
        self.model, self.cfg, self.device = model, cfg, device
        if cfg.grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {cfg.grid!r}")
        self.scale = (cfg.out_size[0] / cfg.in_size[0], cfg.out_size[1] / cfg.in_size[1])
        self.follower = GridFollower(self.scale) if cfg.grid == "follow" or cfg.temporal else None
        self.filter = TemporalFilter(cfg.temporal) if cfg.temporal else None  # refuses a bad strength

    def motions(self, frames: list[Frame]) -> list[Motion] | None:
        """Each frame's motion (`motion.GridFollower`, on the CPU from the luma or first plane),
        frames in order; None when neither the grid nor a filter needs it. Every segment starts
        again, so a segment comes out the same from one process, a resumed job or a cluster worker."""
        if self.follower is None:
            return None
        seg = self.cfg.segment_frames
        out = []
        for f in frames:
            if seg and f.index % seg == 0:
                self.follower.reset()
            out.append(self.follower.track(f.planes[0]))
        return out

    def compute(self, planes: list[torch.Tensor], motions: list[Motion] | None = None) -> list[torch.Tensor]:
        """Raw input planes on the device -> raw output planes on the device; `motions` from
        `self.motions` of the same frames, in order (the filter keeps the last frame)."""
        c = self.cfg
        rgb = to_rgb(planes, c.in_layout, c.in_matrix, c.in_full)
        positions = [m.position for m in motions] if motions and c.grid == "follow" else None
        # fp32 in and out: bf16 (8 mantissa bits) would band a 10-bit output.
        out = restore_any_scale(self.model, rgb, c.out_size, c.detail, c.seed, source=c.source,
                                positions=positions, supersample=c.supersample)
        if self.filter is not None and motions:
            out = torch.stack([self._filtered(o, m) for o, m in zip(out, motions)])
        return from_rgb(out, c.out_layout, c.out_matrix, c.out_full)

    def _filtered(self, frame: torch.Tensor, m: Motion) -> torch.Tensor:
        if m.first:
            self.filter.reset()
        return self.filter(frame, m.step_out(self.scale))

    def run(self, batches: Iterable[list[Frame]], emit: Emit) -> None:
        items = self._placed(batches)
        try:
            if self.device.type == "cuda":
                self._run_cuda(items, emit)
            else:
                self._run_cpu(items, emit)
        finally:
            items.close()

    def _placed(self, batches: Iterable[list[Frame]]):
        """(frames, motions) of each batch. With the grid following the picture or a filter, a
        thread estimates the motion of the next batch (milliseconds a frame on the CPU) while this
        one is handed to the model; the batches themselves are read on the caller's thread."""
        if self.follower is None:
            yield from ((frames, None) for frames in batches)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="gendrpix-motion") as pool:
            pending = None
            for frames in batches:
                nxt = (frames, pool.submit(self.motions, frames))  # one worker: frames in order
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = nxt
            if pending is not None:
                yield pending[0], pending[1].result()

    # -- CPU: plain and sequential ----------------------------------------------------------
    def _run_cpu(self, items, emit: Emit) -> None:
        for frames, motions in items:
            planes = [torch.from_numpy(np.stack([f.planes[i] for f in frames])).to(self.device)
                      for i in range(3)]
            outs = [p.cpu().numpy() for p in self.compute(planes, motions)]
            for j, f in enumerate(frames):
                emit(f, [o[j] for o in outs])

    # -- CUDA: pinned buffers, three streams, an output thread ------------------------------
    def _run_cuda(self, items, emit: Emit, depth: int = 3) -> None:
        c, dev = self.cfg, self.device
        n = c.batch
        in_shapes = c.in_layout.plane_shapes(c.in_size[1], c.in_size[0])
        out_shapes = c.out_layout.plane_shapes(c.out_size[1], c.out_size[0])
        up, compute, down = (torch.cuda.Stream(dev) for _ in range(3))

        class Slot:
            def __init__(self):
                self.host_in = [torch.empty((n, *s), dtype=c.in_layout.torch_dtype, pin_memory=True) for s in in_shapes]
                self.dev_in = [torch.empty((n, *s), dtype=c.in_layout.torch_dtype, device=dev) for s in in_shapes]
                self.host_out = [torch.empty((n, *s), dtype=c.out_layout.torch_dtype, pin_memory=True)
                                 for s in out_shapes]
                self.np_in = [t.numpy() for t in self.host_in]
                self.np_out = [t.numpy().view(c.out_layout.dtype) for t in self.host_out]
                self.uploaded, self.computed, self.downloaded = (torch.cuda.Event() for _ in range(3))
                self.free = threading.Event()
                self.free.set()

        slots = [Slot() for _ in range(depth)]
        ready: queue.Queue = queue.Queue()
        failure: list[BaseException] = []

        def output_thread():
            while True:
                item = ready.get()
                if item is None:
                    return
                slot, frames = item
                try:
                    if not failure:
                        slot.downloaded.synchronize()
                        for j, f in enumerate(frames):
                            emit(f, [p[j] for p in slot.np_out])
                except BaseException as e:
                    failure.append(e)
                finally:
                    slot.free.set()

        out = threading.Thread(target=output_thread, name="gendrpix-output", daemon=True)
        out.start()
        try:
            for k, (frames, motions) in enumerate(items):
                slot = slots[k % depth]
                while not slot.free.wait(0.1):
                    if failure:
                        raise failure[0]
                if failure:
                    raise failure[0]
                slot.free.clear()
                m = len(frames)
                for i, arr in enumerate(slot.np_in):
                    for j, f in enumerate(frames):
                        arr[j] = f.planes[i].view(arr.dtype)
                with torch.cuda.stream(up):
                    for h, d in zip(slot.host_in, slot.dev_in):
                        d[:m].copy_(h[:m], non_blocking=True)
                    slot.uploaded.record(up)
                compute.wait_event(slot.uploaded)
                with torch.cuda.stream(compute):
                    planes = self.compute([d[:m] for d in slot.dev_in], motions)
                    slot.computed.record(compute)
                down.wait_event(slot.computed)
                with torch.cuda.stream(down):
                    for p, h in zip(planes, slot.host_out):
                        p.record_stream(down)  # allocated on `compute`, read on `down`
                        h[:m].copy_(p, non_blocking=True)
                    slot.downloaded.record(down)
                ready.put((slot, frames))
        finally:
            ready.put(None)
            out.join()
        if failure:
            raise failure[0]
