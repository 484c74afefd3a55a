"""Inspect an input before any work: streams, colour, rotation, interlace, alpha, and the
one-line reasons a file cannot be used (missing, empty, not a video, truncated, ...)."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from .colour import Colour, Layout, layout
from .errors import VideoError

# First bytes of containers we know: a file that starts like one but will not open is damaged.
_MAGIC = [(0, b"\x1a\x45\xdf\xa3"), (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),
          (0, b"RIFF"), (0, b"OggS"), (0, b"nut/"), (0, b"\x00\x00\x01\xba"), (0, b"FLV"), (0, b"\x47")]

# FFmpeg's field orders: (what VideoInfo.interlaced says, the field shown first for bwdif's
# parity: the frame it makes keeps that field and rebuilds the other).
FIELD_ORDERS = {2: ("top field first", "tff"), 3: ("bottom field first", "bff"),
                4: ("top coded first, bottom shown first", "bff"), 5: ("bottom coded first, top shown first", "tff")}
PARITY = dict(FIELD_ORDERS.values())


@dataclass
class VideoInfo:
    path: Path
    format_name: str
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str                  # as decoded
    work_fmt: str                 # what the decode thread hands on (native, or converted once)
    layout: Layout
    colour: Colour
    time_base: Fraction
    rate: Fraction                # average frame rate (for timestamps of frames that lack one)
    frames: int                   # an estimate: 0 when unknown
    duration: float               # seconds, 0 when unknown
    start_time: Fraction          # first frame's time
    interlaced: str | None        # None, or the field order ("top field first", ...)
    alpha: bool
    display_matrix: tuple[int, ...] | None
    sample_aspect_ratio: Fraction | None
    copy_streams: list[int] = field(default_factory=list)   # audio/subtitle/attachment indices
    copy_codecs: list[str] = field(default_factory=list)
    dropped_streams: list[str] = field(default_factory=list)
    has_chapters: bool = False

    @property
    def rotation(self) -> float | None:
        if not self.display_matrix:
            return None
        import math
        a, b = self.display_matrix[0] / 65536, self.display_matrix[1] / 65536
        return round(-math.degrees(math.atan2(b, a)), 3) % 360


def looks_like_container(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[o:o + len(m)] == m for o, m in _MAGIC)


def work_format(pix_fmt: str) -> str:
    """The format the engine receives: native planar YUV/GBR as is; other RGB, grey or
    semi-planar YUV converted once in the decode thread; paletted, Bayer, 1-bit, XYZ or float
    are refused (VideoError)."""
    if layout(pix_fmt) is not None:
        return pix_fmt
    try:
        f = av.VideoFormat(pix_fmt)
    except Exception:
        raise VideoError(f"unsupported pixel format {pix_fmt}")
    bits = max((c.bits for c in f.components), default=0)
    bad = (f.has_palette or f.is_bayer or f.is_bit_stream or pix_fmt.startswith("xyz") or bits > 16
           or "f32" in pix_fmt or "f16" in pix_fmt or "hw" in pix_fmt or bits == 0)
    if bad:
        raise VideoError(f"unsupported pixel format {pix_fmt}",
                         hint="supported: planar/semi-planar YUV, RGB and grey at 8-16 bits")
    deep = bits > 8
    if f.is_rgb or pix_fmt.startswith(("gray", "ya", "gbr")):
        return "gbrp16le" if deep else "gbrp"
    if pix_fmt.startswith(("nv12", "nv21", "p010", "p012", "p016", "yuv420")):
        return "yuv420p16le" if deep else "yuv420p"
    if pix_fmt.startswith(("nv16", "nv61", "p210", "p216", "yuyv", "uyvy", "yvyu", "y210", "yuv422")):
        return "yuv422p16le" if deep else "yuv422p"
    return "yuv444p16le" if deep else "yuv444p"


def _fraction(x, default=Fraction(0)) -> Fraction:
    try:
        return Fraction(x) if x else default
    except (TypeError, ValueError, ZeroDivisionError):
        return default


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except PermissionError:
        raise VideoError(f"{path}: permission denied")
    except av.error.FFmpegError as e:
        if looks_like_container(path):
            raise VideoError(f"{path}: damaged or truncated video file ({e.strerror})")
        raise VideoError(f"{path}: not a video file ({e.strerror})")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read what the pipeline needs to know, decoding the first frame; raise VideoError."""
    path = Path(path)
    c = _open(path)
    try:
        videos = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            kinds = ", ".join(sorted({s.type for s in c.streams})) or "no streams"
            raise VideoError(f"{path}: no video stream (has {kinds})")
        vs = videos[0]
        first = None
        try:
            vs.thread_type = "AUTO"
            for frame in c.decode(vs):
                first = frame
                break
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: damaged or truncated: cannot decode video ({e.strerror})")
        if first is None:
            raise VideoError(f"{path}: damaged or truncated: no video frame could be decoded")
        cc = vs.codec_context
        pix_fmt = first.format.name
        work = work_format(pix_fmt)
        alpha = any(getattr(comp, "is_alpha", False) for comp in first.format.components)
        # Frame tags win over stream tags (some demuxers only fill one of them).
        colour = Colour(first.color_primaries or cc.color_primaries or 2, first.color_trc or cc.color_trc or 2,
                        first.colorspace if first.colorspace not in (None, 2) else (cc.colorspace or 2),
                        first.color_range or cc.color_range or 0)
        if pix_fmt.startswith("yuvj"):
            colour = Colour(colour.primaries, colour.trc, colour.matrix, 2)
        field_order = FIELD_ORDERS.get(getattr(cc, "field_order", 0) or 0, (None,))[0]
        if first.interlaced_frame and not field_order:
            field_order = "interlaced"
        dm = None
        side = getattr(cc, "coded_side_data", None) or {}
        if "display_matrix" in side and len(side["display_matrix"]) == 36:
            dm = struct.unpack("<9i", side["display_matrix"])
            if dm == (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30):
                dm = None
        tb = _fraction(vs.time_base, Fraction(1, 90000))
        rate = _fraction(vs.average_rate) or _fraction(vs.guessed_rate) or Fraction(25)
        duration = 0.0
        if vs.duration:
            duration = float(vs.duration * tb)
        elif c.duration:
            duration = c.duration / 1e6
        frames = vs.frames or (int(round(duration * rate)) if duration else 0)  # an estimate, for progress
        start = Fraction(first.pts) * tb if first.pts is not None else Fraction(0)
        copy, dropped, codecs = [], [], []
        chapters = bool(c.chapters())
        for s in c.streams:
            if s is vs:
                continue
            if s.type in ("audio", "subtitle", "attachment"):
                copy.append(s.index)
                if s.type != "attachment" and s.codec_context is not None:
                    codecs.append(s.codec_context.name)
            elif s.type == "data" and chapters:
                pass  # a QuickTime chapter track: rewritten from the chapters themselves
            else:
                dropped.append(f"#{s.index} ({s.type})")
        sar = _fraction(vs.sample_aspect_ratio, None) if vs.sample_aspect_ratio else None
        return VideoInfo(
            path=path, format_name=c.format.name, stream_index=vs.index, codec=cc.name, width=first.width,
            height=first.height, pix_fmt=pix_fmt, work_fmt=work, layout=layout(work), colour=colour,
            time_base=tb, rate=rate, frames=int(frames or 0), duration=duration, start_time=start,
            interlaced=field_order, alpha=alpha, display_matrix=dm, sample_aspect_ratio=sar,
            copy_streams=copy, copy_codecs=codecs, dropped_streams=dropped, has_chapters=chapters)
    finally:
        c.close()
