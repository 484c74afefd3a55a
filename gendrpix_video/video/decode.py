"""The decode thread: PyAV with threaded decoding feeding a bounded queue of frames.

It hands on frames in their native planar layout (or converted once to one, see
probe.work_format) with exact input timestamps, and notices a file that ends early.

Damage in the middle of a file (a packet the decoder rejects, a frame it marks corrupt) is
decoded past as FFmpeg does: the frames that exist keep their exact timestamps, and the damaged
time ranges are collected in `Decoder.damage` for the job's summary. `strict=True` stops at the
first damage instead (`DamagedInput`).

`deinterlace=True` runs FFmpeg's bwdif on the decoded frames, one frame out per frame in (each
frame's missing field rebuilt from its neighbours), each keeping its input timestamp; a part of
the clip (`start`) is decoded from a frame before it, so its first frame has the neighbour a
whole-file run gives it.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .errors import DamagedInput, VideoError, warn
from .probe import PARITY, VideoInfo

_END = object()


@dataclass
class Frame:
    """One decoded input frame: its index in the clip, its timestamp and its raw planes."""
    index: int
    pts: int                      # in the input stream's time base
    planes: list[np.ndarray]      # views of the frame's planes (valid while `frame` lives)
    frame: av.VideoFrame          # keeps the buffers alive


def planes_of(frame: av.VideoFrame, dtype: np.dtype, count: int = 3) -> list[np.ndarray]:
    """Zero-copy numpy views (h x w) of the first `count` planes, without line padding."""
    out = []
    for p in list(frame.planes)[:count]:
        a = np.frombuffer(p, dtype=dtype)
        out.append(a.reshape(p.height, p.line_size // dtype.itemsize)[:, : p.width])
    return out


class Deinterlacer:
    """FFmpeg's bwdif (`mode=send_frame`: one frame out per frame in), through a PyAV filter graph
    made for the first frame. The filter holds a frame back to see the next one: `push` returns
    the frames that came out, `flush` the rest at the end; each keeps its input's timestamp
    (the filter counts in half ticks, so timestamps are taken from the frames in, in order).
    `parity`: "tff", "bff" or "auto" (each frame's own flag; decoders often leave it unset, which
    bwdif reads as bottom first, so the stream's field order is the better guide)."""

    def __init__(self, time_base: Fraction, parity: str = "auto"):
        self.time_base = time_base
        self.parity = parity
        self.graph: av.filter.Graph | None = None
        self.pts: deque[int] = deque()  # of the frames pushed and not yet out

    def _configure(self, frame: av.VideoFrame) -> None:
        try:
            g = av.filter.Graph()
            src = g.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                               time_base=self.time_base)
            bwdif = g.add("bwdif", f"mode=send_frame:parity={self.parity}:deint=all")
            src.link_to(bwdif)
            bwdif.link_to(g.add("buffersink"))
            g.configure()
        except av.error.FFmpegError as e:
            raise VideoError(f"cannot deinterlace {frame.format.name} video ({e.strerror}); "
                             "use --deinterlace off") from None
        self.graph = g

    def push(self, frame: av.VideoFrame, pts: int) -> list[tuple[int, av.VideoFrame]]:
        if self.graph is None:
            self._configure(frame)
        frame.pts, frame.time_base = pts, self.time_base
        self.pts.append(pts)
        self.graph.push(frame)
        return self._pull()

    def flush(self) -> list[tuple[int, av.VideoFrame]]:
        if self.graph is None:
            return []
        self.graph.push(None)
        return self._pull()

    def _pull(self) -> list[tuple[int, av.VideoFrame]]:
        out = []
        while self.pts:
            try:
                frame = self.graph.pull()
            except (BlockingIOError, av.error.EOFError):
                break
            out.append((self.pts.popleft(), frame))
        return out


class Decoder:
    """Iterate decoded frames from a background thread; at most `depth` frames wait in memory.

    `start`/`duration` (seconds) select a part of the clip.
    """

    def __init__(self, info: VideoInfo, *, start: float | None = None, duration: float | None = None,
                 depth: int = 8, threads: int = 0, strict: bool = False, deinterlace: bool = False):
        self.info = info
        self.strict = strict
        self.deinterlace = deinterlace
        self.damage: list[tuple[Fraction, Fraction]] = []  # damaged time ranges (seconds), in order
        self.start, self.duration = start, duration
        self._q: queue.Queue = queue.Queue(maxsize=max(2, depth))
        self._stop = threading.Event()
        self._threads = threads
        self.first_pts: int | None = None     # of the first frame handed on (for trimming)
        self.end_time: Fraction | None = None  # where a trimmed selection ends (seconds)
        self._thread = threading.Thread(target=self._run, name="gendrpix-decode", daemon=True)
        self._thread.start()

    # -- the thread ---------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            self._decode()
            self._put(_END)
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def _decode(self) -> None:
        info = self.info
        tb = info.time_base
        step = max(1, round(1 / (info.rate * tb))) if info.rate else 1  # one frame, in ticks
        with av.open(str(info.path)) as c:
            vs = c.streams[info.stream_index]
            vs.thread_type = "AUTO"
            if self._threads:
                vs.thread_count = self._threads
            lo = hi = None
            if self.start:
                lo = Fraction(self.start).limit_denominator(1 << 30)
                # bwdif reads the frame before: start decoding at least two frames earlier
                pre = 2 * step * tb if self.deinterlace else 0
                c.seek(int((lo - pre) / tb), stream=vs, backward=True)
            if self.duration:
                hi = (lo or info.start_time) + Fraction(self.duration).limit_denominator(1 << 30)
                self.end_time = hi
            dtype = info.layout.dtype
            index, last, warned, seen_end = 0, None, False, Fraction(0)
            reformat = info.work_fmt != info.pix_fmt
            streams = [s for s in c.streams if s.index == vs.index or s.index in info.copy_streams]
            deint = Deinterlacer(tb, PARITY.get(info.interlaced or "", "auto")) if self.deinterlace else None

            def hand_on(pts: int, frame: av.VideoFrame, reformat: bool = reformat) -> bool:
                """Put one frame in the queue; False once the selection has ended or on stop."""
                nonlocal index
                t = Fraction(pts) * tb
                if lo is not None and t < lo:
                    return True
                if hi is not None and t >= hi:
                    return False
                if reformat:  # once, on the CPU: formats the GPU path does not take
                    frame = frame.reformat(format=info.work_fmt)
                if self.first_pts is None:
                    self.first_pts = pts
                if not self._put(Frame(index, pts, planes_of(frame, dtype), frame)):
                    return False
                index += 1
                return True

            try:
                # demux() ends with an empty packet per stream, which drains the decoder.
                for packet in c.demux(streams):
                    if self._stop.is_set():
                        return
                    if packet.pts is not None and packet.time_base is not None:
                        seen_end = max(seen_end, Fraction(packet.pts + (packet.duration or 0)) * packet.time_base)
                    if packet.stream.index != vs.index:
                        continue
                    try:
                        frames = vs.decode(packet)
                    except av.error.EOFError:
                        raise
                    except av.error.FFmpegError as e:
                        self._damaged(packet, index, e.strerror or str(e))
                        continue
                    for frame in frames:
                        if frame.is_corrupt:  # concealed by the decoder: kept, and reported
                            self._damaged(frame, index, "corrupt frame")
                        pts = frame.pts
                        if pts is None:  # raw streams: continue from the last one
                            pts = 0 if last is None else last + step
                        elif last is not None and pts <= last:
                            if not warned:
                                warn(f"{info.path.name}: non-increasing timestamps at frame {index}; nudged")
                                warned = True
                            pts = last + 1
                        last = pts
                        if deint is None:
                            if not hand_on(pts, frame):
                                return
                            continue
                        if reformat:  # bwdif takes the planar formats the rest of the path works in
                            frame = frame.reformat(format=info.work_fmt)
                        for item in deint.push(frame, pts):
                            if not hand_on(*item, reformat=False):
                                return
            except av.error.EOFError:
                pass
            except av.error.FFmpegError as e:
                raise VideoError(f"{info.path}: damaged or truncated at frame {index} ({e.strerror})")
            for item in (deint.flush() if deint else []):
                if not hand_on(*item, reformat=False):
                    return
            if index == 0:
                raise VideoError(f"{info.path}: no video frames in the selected range")
            # A file that stops well short of the length its header promises was cut off.
            if hi is None and c.duration and info.duration:
                expected = Fraction(c.duration, 1_000_000) + Fraction(c.start_time or 0, 1_000_000)
                slack = max(Fraction(1, 4), 3 / (info.rate or 25))
                if seen_end + slack < expected:
                    raise VideoError(f"{info.path}: truncated: data ends at {float(seen_end):.2f}s of "
                                     f"{float(expected):.2f}s")
            if info.frames and vs.frames and index < vs.frames and lo is None and hi is None and not self.damage:
                raise VideoError(f"{info.path}: truncated: {index} of {vs.frames} frames decodable")

    def _damaged(self, item, index: int, why: str) -> None:
        """Record damage at a packet or frame (merging neighbours); stop there when strict."""
        tb = self.info.time_base
        pts = item.pts if item.pts is not None else 0
        t0 = Fraction(pts) * tb
        t1 = t0 + Fraction(getattr(item, "duration", None) or 0) * tb
        if self.strict:
            raise DamagedInput(f"{self.info.path}: damaged at {float(t0):.3f}s (frame {index}): {why}",
                               hint="--strict stops at damage; finished segments are kept for --resume; "
                                    "without --strict it decodes past the damage")
        last = self.damage[-1] if self.damage else None
        step = 1 / self.info.rate if self.info.rate else Fraction(0)
        if last is not None and t0 <= last[1] + 2 * step:
            self.damage[-1] = (min(last[0], t0), max(last[1], t1))
        else:
            self.damage.append((t0, max(t0, t1)))

    # -- the consumer -------------------------------------------------------------------------
    def __iter__(self):
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock the thread if it waits on a full queue
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sample_frames(info: VideoInfo, count: int, *, start: float | None = None,
                  duration: float | None = None, max_decoded: int = 300) -> list[np.ndarray]:
    """Up to `count` frames (H x W x 3 uint8 RGB) spread evenly over the selected part of the clip,
    for a look at what the footage is (`damage.guess_source`). Each is found by a seek and a
    decode forward, at most `max_decoded` frames of decoding each; a part that will not seek or
    decode is skipped (damaged input gives fewer frames, never an error). A clip of unknown length
    gives its first frames, some seconds apart."""
    t0 = float(start or 0) + float(info.start_time)
    span = float(duration) if duration else max(0.0, info.duration - float(start or 0))
    rate = float(info.rate) if info.rate else 25.0
    if span > 0:
        times = [t0 + (k + 0.5) * span / count for k in range(count)]
    else:
        times = [t0 + k * 2.0 for k in range(count)]
    tb = info.time_base
    out: list[np.ndarray] = []
    seen: set = set()
    try:
        with av.open(str(info.path)) as c:
            vs = c.streams[info.stream_index]
            vs.thread_type = "AUTO"
            for t in times:
                last = None
                try:
                    c.seek(int(Fraction(t).limit_denominator(1 << 30) / tb), stream=vs, backward=True)
                    for n, frame in enumerate(c.decode(vs)):
                        last = frame
                        if frame.pts is None or float(frame.pts * tb) >= t - 0.5 / rate or n >= max_decoded:
                            break
                except av.error.FFmpegError:
                    pass
                # The frame at t, or the last one before it (a file shorter than its header says).
                if last is not None and (last.pts is None or last.pts not in seen):
                    seen.add(last.pts)
                    out.append(last.to_ndarray(format="rgb24"))
    except av.error.FFmpegError:
        pass
    return out
