"""Encoders: per-codec settings, and a pool that encodes closed-GOP segments in parallel.

Each segment is a fresh encoder instance, so it starts with a keyframe and references nothing
before it: segments encode on separate threads (PyAV releases the GIL while encoding) and join
losslessly (mux.py). Each finished segment is a checkpoint for --resume.

A segment is written as a Matroska "carrier" (packets and codec parameters) plus a JSON sidecar
with the exact timestamps of every packet in the input's time base (Matroska rounds to 1 ms).
"""
from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from .colour import Colour, layout
from .errors import VideoError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr unless told not to

CODECS = ("libx264", "libx265", "libsvtav1", "prores_ks", "ffv1", "h264_nvenc", "hevc_nvenc", "av1_nvenc")
CRF_CODECS = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (0, 63),
              "h264_nvenc": (0, 51), "hevc_nvenc": (0, 51), "av1_nvenc": (0, 63)}
_NVENC_FMT = {"yuv420p10le": "p010le", "yuv444p10le": "yuv444p16le"}

_nvenc_cache: dict[str, bool] = {}


def nvenc_available(codec: str = "hevc_nvenc") -> bool:
    """True when this machine can open the NVENC encoder (driver and GPU support it)."""
    if codec not in _nvenc_cache:
        try:
            cc = av.CodecContext.create(codec, "w")
            cc.width, cc.height, cc.pix_fmt, cc.time_base = 256, 256, "yuv420p", Fraction(1, 25)
            cc.open()
            _nvenc_cache[codec] = True
        except Exception:
            _nvenc_cache[codec] = False
    return _nvenc_cache[codec]


def supported_pix_fmts(codec: str) -> list[str]:
    try:
        fmts = av.codec.Codec(codec, "w").video_formats or []
    except Exception:
        return []
    names = [f.name for f in fmts]
    if codec.endswith("_nvenc"):  # planar names we convert to the semi-planar ones NVENC takes
        names += [k for k, v in _NVENC_FMT.items() if v in names]
    return names


def check_encoder(codec: str, pix_fmt: str) -> None:
    """Raise VideoError (naming the setting) when the encoder or its pixel format is unusable."""
    if codec not in CODECS:
        raise VideoError(f"codec: unknown encoder {codec!r}", hint="one of " + ", ".join(CODECS))
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        raise VideoError(f"codec: encoder {codec} is not available in this FFmpeg build")
    if codec.endswith("_nvenc") and not nvenc_available(codec):
        raise VideoError(f"codec: {codec} needs an NVIDIA GPU with NVENC, which this machine lacks")
    lay = layout(pix_fmt)
    if lay is None or lay.family != "yuv" or lay.alpha or lay.bits not in (8, 10, 12):
        raise VideoError(f"pix_fmt: {pix_fmt!r} is not an output format",
                         hint="planar YUV 8/10/12-bit, e.g. yuv420p, yuv420p10le, yuv422p10le")
    if pix_fmt not in supported_pix_fmts(codec):
        ok = [f for f in supported_pix_fmts(codec) if layout(f) and layout(f).family == "yuv"]
        raise VideoError(f"pix_fmt: {codec} cannot encode {pix_fmt}", hint="it takes " + ", ".join(ok))


@dataclass
class EncodeSettings:
    codec: str
    pix_fmt: str
    width: int
    height: int
    time_base: Fraction
    rate: Fraction
    colour: Colour
    crf: float | None = None
    speed: str | None = None            # the encoder's own preset (x264 "veryfast", SVT "9", ...)
    options: dict[str, str] = field(default_factory=dict)
    threads: int = 0                    # per encoder; 0 lets the encoder decide
    sample_aspect_ratio: Fraction | None = None

    def av_options(self) -> dict[str, str]:
        """FFmpeg options for this codec: our defaults, then the preset's `options` on top."""
        c, o, t = self.codec, {}, self.threads
        crf = None if self.crf is None else (str(int(self.crf)) if float(self.crf).is_integer() else str(self.crf))
        if c == "libx264":
            o.update(preset=self.speed or "veryfast", crf=crf or "18")
        elif c == "libx265":
            params = ["log-level=error"] + ([f"pools={t}"] if t else [])
            o.update({"preset": self.speed or "fast", "crf": crf or "18", "x265-params": ":".join(params)})
        elif c == "libsvtav1":
            o.update(preset=str(self.speed or 8), crf=crf or "24")
            if t:
                o["svtav1-params"] = f"lp={t}"
        elif c == "prores_ks":
            lay = layout(self.pix_fmt)
            o.update(profile=self.speed or ("4444" if lay and lay.log2_cw == 0 else "hq"), vendor="apl0")
        elif c == "ffv1":
            want = 24 if self.width * self.height >= 1920 * 1080 else (4 if self.width >= 640 else 1)
            o.update(level="3", slicecrc="1", g="1", slices=str(ffv1_slices(self.width, self.height, self.pix_fmt, want)),
                     coder="range_def")
        elif c.endswith("_nvenc"):
            o.update(preset=self.speed or "p5", rc="vbr", cq=crf or "19", b="0")
        o.update({k: str(v) for k, v in self.options.items()})
        return o

    def encoder_pix_fmt(self) -> str:
        return _NVENC_FMT.get(self.pix_fmt, self.pix_fmt) if self.codec.endswith("_nvenc") else self.pix_fmt


@functools.lru_cache(maxsize=32)
def ffv1_slices(width: int, height: int, pix_fmt: str, want: int) -> int:
    """`want` FFV1 slices, or the nearest count FFmpeg accepts for this frame: level 3 takes only
    slice grids that divide the frame to its liking (384x288 refuses 1, 639x480 takes 6, 9 or 24)."""
    counts = [want] + sorted((4, 6, 9, 12, 16, 24, 1), key=lambda n: (abs(n - want), n))
    for n in dict.fromkeys(counts):
        ctx = av.CodecContext.create("ffv1", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, pix_fmt, Fraction(1, 25)
        ctx.options = {"level": "3", "slicecrc": "1", "g": "1", "slices": str(n), "coder": "range_def"}
        try:
            ctx.open()
            return n
        except (av.FFmpegError, ValueError):
            continue
    return want  # none opens: the encoder's own error says why


def open_carrier(path: Path, s: EncodeSettings) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
    out = av.open(str(path), "w", format="matroska")
    try:
        st = out.add_stream(s.codec, rate=s.rate if s.rate else None, options=s.av_options())
        st.width, st.height, st.pix_fmt = s.width, s.height, s.encoder_pix_fmt()
        st.time_base = s.time_base
        cc = st.codec_context
        cc.time_base = s.time_base
        cc.color_primaries, cc.color_trc = s.colour.primaries, s.colour.trc
        cc.colorspace, cc.color_range = s.colour.matrix, s.colour.range
        if s.sample_aspect_ratio:
            cc.sample_aspect_ratio = s.sample_aspect_ratio
        if s.threads and not s.codec.endswith("_nvenc"):
            cc.thread_count = s.threads
        out.start_encoding()
    except av.error.FFmpegError as e:
        out.close()
        opts = ", ".join(f"{k}={v}" for k, v in s.av_options().items())
        raise VideoError(f"cannot open encoder {s.codec} ({opts}): {e.strerror}",
                         hint="check the preset's speed, crf and options")
    except BaseException:
        out.close()
        raise
    return out, st


@dataclass
class Segment:
    """Where one segment lives: the carrier file and the sidecar that marks it complete."""
    index: int
    first_frame: int
    workdir: Path

    @property
    def carrier(self) -> Path:
        return self.workdir / f"seg{self.index:05d}.mkv"

    @property
    def sidecar(self) -> Path:
        return self.workdir / f"seg{self.index:05d}.json"

    def read_sidecar(self) -> dict:
        return json.loads(self.sidecar.read_text())


def encode_segment(seg: Segment, s: EncodeSettings, frames) -> int:
    """Encode an iterable of av.VideoFrame into `seg`; returns the frame count. Written under
    temporary names and renamed, so a half-written segment never looks complete."""
    tmp = seg.carrier.with_suffix(".mkv.tmp")
    out, st = open_carrier(tmp, s)
    stamps, n = [], 0
    try:
        def write(packets):
            for p in packets:
                stamps.append([p.pts, p.dts, p.duration or 0, int(p.is_keyframe)])
                out.mux(p)
        for frame in frames:
            write(st.encode(frame))
            n += 1
        write(st.encode(None))
        out.close()
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, seg.carrier)
    side = {"index": seg.index, "first_frame": seg.first_frame, "frames": n,
            "time_base": str(s.time_base), "packets": stamps}
    tmp_side = seg.sidecar.with_suffix(".json.tmp")
    tmp_side.write_text(json.dumps(side))
    os.replace(tmp_side, seg.sidecar)
    return n


class _SegmentFeed:
    """Frames for one segment, from the engine's thread to an encoder thread."""

    def __init__(self, pool: "EncoderPool", seg: Segment):
        self.pool, self.seg = pool, seg
        self.q: queue.Queue = queue.Queue()
        self.future: Future | None = None
        self.closed = False  # every frame of the segment is in the queue

    def put(self, frame: av.VideoFrame) -> None:
        # The pool-wide budget bounds memory however far the model runs ahead of the encoders.
        while not self.pool._budget.acquire(timeout=0.2):
            self.pool.check()
        self.q.put(frame)

    def close(self) -> None:
        self.closed = True
        self.q.put(None)

    def __iter__(self):
        while True:
            f = self.q.get()
            if self.pool._stop.is_set():  # never finish (and so never mark complete) a cut segment
                raise InterruptedError("encoding stopped")
            if f is None:
                return
            self.pool._budget.release()
            yield f


class EncoderPool:
    """`workers` encoders running at once; at most `max_frames` frames waiting for them."""

    def __init__(self, settings: EncodeSettings, workers: int, max_frames: int, on_done=None):
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gendrpix-encode")
        self._budget = threading.BoundedSemaphore(max(1, max_frames))
        self._stop = threading.Event()
        self._feeds: list[_SegmentFeed] = []
        self._on_done = on_done
        # (segment index, start, end) on time.monotonic() of each finished segment: how busy
        # the encoders were (bench --e2e)
        self.spans: list[tuple[int, float, float]] = []

    def begin(self, seg: Segment) -> _SegmentFeed:
        self.check()
        feed = _SegmentFeed(self, seg)
        feed.future = self._pool.submit(self._work, feed)
        self._feeds.append(feed)
        return feed

    def _work(self, feed: _SegmentFeed) -> int:
        start = time.monotonic()
        try:
            n = encode_segment(feed.seg, self.settings, feed)
        finally:
            self._drain(feed)
        self.spans.append((feed.seg.index, start, time.monotonic()))
        if self._stop.is_set():
            raise InterruptedError("stopped")
        if self._on_done:
            self._on_done(feed.seg, n)
        return n

    def _drain(self, feed: _SegmentFeed) -> None:
        while True:  # give back the budget of frames nobody will encode
            try:
                f = feed.q.get_nowait()
            except queue.Empty:
                return
            if f is not None:
                self._budget.release()

    def check(self) -> None:
        """Raise the first encoder error now rather than after the whole clip."""
        for feed in self._feeds:
            if feed.future.done() and feed.future.exception() is not None:
                raise feed.future.exception()
        self._feeds = [f for f in self._feeds if not f.future.done()]

    def finish(self) -> None:
        try:
            for feed in list(self._feeds):
                feed.future.result()
        finally:
            self._pool.shutdown(wait=True)

    def abort(self, keep_closed: bool = False) -> None:
        """Stop encoding. `keep_closed`: segments that have all their frames finish first (a run
        stopped at damaged input keeps them for --resume)."""
        if keep_closed:
            for feed in self._feeds:
                if feed.closed:
                    try:
                        feed.future.result()
                    except Exception:  # noqa: BLE001 - an unfinished segment is simply not kept
                        pass
        self._stop.set()
        for feed in self._feeds:
            feed.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for feed in self._feeds:
            self._drain(feed)
