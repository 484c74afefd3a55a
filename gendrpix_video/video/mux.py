"""Join the encoded segments losslessly and copy everything else from the input untouched:
audio and subtitle packets byte for byte, attachments, chapters, container and stream metadata,
rotation. Video packets get back their exact input timestamps from the segment sidecars."""
from __future__ import annotations

import heapq
from fractions import Fraction
from pathlib import Path

import av

from .encode import Segment
from .errors import VideoError
from .probe import VideoInfo

# Keys each muxer writes itself: copying them would describe the old file, not the new one.
_STALE = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "_statistics_tags",
          "number_of_frames", "number_of_bytes", "bps", "_statistics_writing_app", "_statistics_writing_date_utc"}


def _copy_metadata(src: dict, dst: dict) -> None:
    for k, v in src.items():
        if k.lower() not in _STALE and not k.lower().startswith("duration"):
            dst[k] = v


def _durations(sides: list[dict], last: int) -> dict[int, int]:
    """Each frame lasts until the next one starts (exact for variable frame rate)."""
    pts = sorted(p[0] for side in sides for p in side["packets"] if p[0] is not None)
    return {a: b - a for a, b in zip(pts, pts[1:])} | ({pts[-1]: last} if pts else {})


def _video_packets(segments: list[Segment], stream, shift: int, tb: Fraction, step: int):
    """Packets of all segments in order, with their exact timestamps and increasing dts."""
    last_dts = None
    sides = [seg.read_sidecar() for seg in segments]
    durations = _durations(sides, step)
    for seg, side in zip(segments, sides):
        stamps = side["packets"]
        with av.open(str(seg.carrier)) as c:
            pkts = (p for p in c.demux(c.streams.video[0]) if p.size)
            n = 0
            for pkt, (pts, dts, dur, _key) in zip(pkts, stamps):
                n += 1
                dur = durations.get(pts, dur)
                pts = None if pts is None else pts - shift
                dts = pts if dts is None else dts - shift
                # Each segment's encoder starts its dts afresh; keep dts increasing and <= pts.
                if last_dts is not None and dts <= last_dts:
                    dts = last_dts + 1
                if pts is not None and dts > pts:
                    raise VideoError(f"segment {seg.index}: cannot join: decode time after presentation time")
                last_dts = dts
                pkt.pts, pkt.dts, pkt.duration, pkt.time_base = pts, dts, dur, tb
                pkt.stream = stream
                yield Fraction(dts) * tb, 0, pkt
            if n != len(stamps):
                raise VideoError(f"segment {seg.index} is damaged ({n} packets, {len(stamps)} expected); "
                                 "rerun without --resume")


def _other_packets(inp, mapping: dict, t0: Fraction | None, t1: Fraction | None, shift_s: Fraction):
    if not mapping:
        return
    for pkt in inp.demux([inp.streams[i] for i in mapping]):
        if pkt.size == 0 and pkt.pts is None:
            continue  # demuxer flush packet
        src, dst = pkt.stream, mapping[pkt.stream.index]
        tb = src.time_base
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is not None and (t0 is not None or t1 is not None):
            t = Fraction(ts) * tb
            if (t0 is not None and t < t0) or (t1 is not None and t >= t1):
                continue
        if shift_s:
            d = round(shift_s / tb)
            pkt.pts = None if pkt.pts is None else pkt.pts - d
            pkt.dts = None if pkt.dts is None else pkt.dts - d
        key = pkt.dts if pkt.dts is not None else pkt.pts
        pkt.stream = dst
        yield (Fraction(key) * tb if key is not None else Fraction(-1 << 40)), 1, pkt


def join(path: Path, fmt: str, info: VideoInfo, segments: list[Segment], *, shift: int = 0,
         window: tuple[Fraction | None, Fraction | None] = (None, None)) -> None:
    """Write `path` (format `fmt`): the segments' video plus the input's other streams.

    `shift` (input ticks) moves every timestamp back, for a trimmed clip that should start at 0;
    `window` (seconds) keeps the other streams' packets that fall inside the trimmed part.
    """
    if not segments:
        raise VideoError("nothing to write: no frames were encoded")
    carriers = [av.open(str(s.carrier)) for s in segments[:1]]
    template = carriers[0].streams.video[0]
    extradata = template.codec_context.extradata
    for seg in segments[1:]:  # lossless joining needs one set of codec headers for all segments
        with av.open(str(seg.carrier)) as c:
            if c.streams.video[0].codec_context.extradata != extradata:
                raise VideoError(f"segment {seg.index} was encoded with other settings; rerun without --resume")
    opts = {"movflags": "+write_colr"} if fmt in ("mp4", "mov") else {}
    out = av.open(str(path), "w", format=fmt, options=opts)
    inp = av.open(str(info.path))
    try:
        iv = inp.streams[info.stream_index]
        try:
            ov = out.add_stream_from_template(template, opaque=True)
        except ValueError:
            raise VideoError(f"the {fmt} container cannot hold {template.codec_context.name} video",
                             hint="use an .mkv output")
        ov.time_base = info.time_base
        _copy_metadata(iv.metadata, ov.metadata)
        ov.disposition = iv.disposition
        if info.display_matrix:
            ov.set_display_matrix(list(info.display_matrix))
        mapping = {}
        for idx in info.copy_streams:
            s = inp.streams[idx]
            try:
                o = out.add_stream_from_template(s)
            except ValueError:
                name = s.codec_context.name if s.codec_context else s.type
                raise VideoError(f"cannot copy {s.type} stream #{idx} ({name}) into {fmt}",
                                 hint="use an .mkv output")
            _copy_metadata(s.metadata, o.metadata)
            try:
                o.disposition = s.disposition
            except Exception:
                pass
            if s.type != "attachment":
                mapping[idx] = o
        _copy_metadata(inp.metadata, out.metadata)
        shift_s = Fraction(shift) * info.time_base
        chapters = []
        for ch in inp.chapters():
            ctb = Fraction(ch["time_base"])
            start, end = Fraction(ch["start"]) * ctb - shift_s, Fraction(ch["end"]) * ctb - shift_s
            if end <= 0 or (window[1] is not None and start >= window[1] - shift_s):
                continue
            chapters.append({**ch, "start": max(0, round(start / ctb)), "end": round(end / ctb)})
        if chapters:
            out.set_chapters(chapters)
        step = max(1, round(1 / (info.rate * info.time_base))) if info.rate else 0
        merged = heapq.merge(_video_packets(segments, ov, shift, info.time_base, step),
                             _other_packets(inp, mapping, *window, shift_s), key=lambda t: (t[0], t[1]))
        for _t, _k, pkt in merged:
            out.mux(pkt)
        out.close()
    except BaseException:
        try:
            out.close()
        except Exception:
            pass
        raise
    finally:
        inp.close()
        for c in carriers:
            c.close()

