"""Small synthetic clips for the video pipeline tests, written with PyAV.

Every clip is tiny (a dozen 64x48 frames) so the whole suite runs on a CPU.
"""
from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Irregular timestamps (ms) so variable frame rate is exercised by default.
VFR_PTS = [0, 40, 80, 150, 190, 300, 340, 380, 420, 500, 540, 580]
CFR_PTS = [i * 40 for i in range(12)]

ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, "
    "Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


def _picture(i: int, w: int, h: int) -> np.ndarray:
    """A moving gradient with some texture: deterministic, compresses, shows colour errors."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = (x * 255 / max(w - 1, 1) + i * 9) % 256
    g = (y * 255 / max(h - 1, 1) + i * 5) % 256
    b = 128 + 100 * np.sin((x + y + i * 3) / 5)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def make_clip(
    path: str | os.PathLike,
    *,
    codec: str = "ffv1",
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = (64, 48),
    pts_ms: list[int] = VFR_PTS,
    audio: str | None = "flac",
    subtitle: str | None = "auto",
    chapters: bool = True,
    colour: tuple[int, int, int, int] | None = (1, 1, 1, 1),  # primaries, trc, matrix, range (bt709 tv)
    rotation: float | None = None,
    interlaced: bool = False,
    metadata: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a short clip: video (+audio, +subtitles, +chapters) with the given timestamps."""
    path = Path(path)
    w, h = size
    out = av.open(str(path), "w")
    out.metadata.update(metadata or {"title": "test clip", "comment": "made by video_fixtures"})
    v = out.add_stream(codec, rate=25, options=options or {})
    v.width, v.height, v.pix_fmt = w, h, pix_fmt
    v.time_base = Fraction(1, 1000)
    v.codec_context.time_base = Fraction(1, 1000)
    if colour:
        cc = v.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
    if interlaced:
        v.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        v.codec_context.field_order = 2  # tt
    if rotation is not None:
        v.set_display_rotation(rotation)
    a = None
    if audio:
        a = out.add_stream(audio, rate=48000)
        a.layout = "stereo"
        if audio == "pcm_s16le":
            a.format = "s16"
    s = None
    if subtitle == "auto":
        subtitle = "mov_text" if path.suffix in (".mp4", ".mov") else "ass"
    if subtitle:
        if subtitle == "ass":  # the ASS header travels as extradata
            s = out.add_stream(subtitle)
            s.codec_context.extradata = ASS_HEADER.encode()
        else:  # packets are written as they are: no subtitle encoder is opened
            s = out.add_mux_stream(subtitle)
        s.time_base = Fraction(1, 1000)
        s.metadata["language"] = "eng"
    if chapters:
        out.set_chapters([
            {"id": 1, "start": 0, "end": 300, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
            {"id": 2, "start": 300, "end": 620, "time_base": Fraction(1, 1000), "metadata": {"title": "Two"}},
        ])
    for i, p in enumerate(pts_ms):
        frame = av.VideoFrame.from_ndarray(_picture(i, w, h), format="rgb24").reformat(
            format=pix_fmt, dst_colorspace=(colour[2] if colour else None) or 1,
            dst_color_range=(colour[3] if colour else None) or 1)
        frame.pts, frame.time_base = p, Fraction(1, 1000)
        out.mux(v.encode(frame))
    out.mux(v.encode(None))
    if a is not None:
        rng = np.random.default_rng(0)
        n = 0
        for _ in range(int(0.62 * 48000 / 1024) + 1):
            fmt = "s16" if audio == "pcm_s16le" else ("s16" if audio == "flac" else "fltp")
            data = (rng.standard_normal((2, 1024)) * 0.1).astype(np.float32)
            if fmt == "s16":
                data = (data * 32767).astype(np.int16).T.reshape(1, -1)
            af = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
            af.sample_rate, af.pts = 48000, n
            n += 1024
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    if s is not None:
        for k, (start, end, text) in enumerate([(0, 200, "Hello"), (250, 450, "World")]):
            if subtitle == "ass":
                payload = f"{k},0,Default,,0,0,0,,{text}".encode()
            elif subtitle == "mov_text":
                payload = len(text).to_bytes(2, "big") + text.encode()
            else:
                payload = text.encode()
            pkt = av.Packet(payload)
            pkt.stream = s
            pkt.pts = pkt.dts = start
            pkt.duration = end - start
            pkt.time_base = Fraction(1, 1000)
            out.mux(pkt)
    out.close()
    return path


def damage_clip(clean: Path, out: Path, packets_range=slice(20, 23)) -> Path:
    """A copy of `clean` with the last two thirds of some video packets overwritten: damage that
    a decoder meets in the middle of the file."""
    with av.open(str(clean)) as c:
        video = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(clean.read_bytes())
    for pos, size in video[packets_range]:
        data[pos + size // 3: pos + size] = b"\x55" * (size - size // 3)
    out.write_bytes(bytes(data))
    return out


def file_fingerprint(path: str | os.PathLike) -> tuple[str, int, int]:
    p = Path(path)
    st = p.stat()
    return hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def video_pts(path) -> list[Fraction]:
    """Presentation times (exact fractions of a second) of every decoded video frame."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Fraction(f.pts) * s.time_base for f in c.decode(s)]


def packets(path, kind: str) -> list[tuple[bytes, Fraction | None]]:
    """(payload, pts seconds) of every packet of the first stream of a kind."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        s = streams[0]
        out = []
        for p in c.demux(s):
            if p.size:
                out.append((bytes(p), None if p.pts is None else Fraction(p.pts) * s.time_base))
        return out


# -- helpers shared by tests/test_video_*.py (the fixtures are in conftest.py) -------------
def run_upscale(capsys, *argv) -> tuple[int, str, str]:
    """Run `gendrpix-video upscale` in this process: (exit code, stdout, stderr)."""
    from gendrpix_video.cli.upscale import main
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def decoded_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


def text_packets(path) -> list[tuple[bytes, Fraction | None]]:
    """Subtitle packets that carry text (the MP4 muxer adds zero-length filler samples)."""
    return [p for p in packets(path, "subtitle") if p[0] not in (b"\x00\x00", b"")]


def engine_planes(engine, batches) -> list[np.ndarray]:
    """The first output plane of every frame `engine` (video.engine.Engine) emits for `batches`."""
    out = []
    engine.run(batches, lambda f, planes: out.append(np.array(planes[0])))
    return out


def segments_as_one(make_engine, frames) -> list[np.ndarray]:
    """Six frames in segments of three: one engine over all of them (batches of 2, 1, 2, 1) must
    give what a fresh engine per segment gives (a resumed job, a GPU process, a cluster worker);
    returns the one engine's first planes."""
    batches = [frames[0:2], frames[2:3], frames[3:5], frames[5:6]]
    whole = engine_planes(make_engine(), batches)
    parts = engine_planes(make_engine(), batches[:2]) + engine_planes(make_engine(), batches[2:])
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts))
    return whole


def photo_frames(damaged: bool, frames: int = 6, w: int = 128, h: int = 96) -> list[np.ndarray]:
    """A real photo (scikit-image's cat) panning, x4 downscaled: h x w x 3 uint8 frames of a clean
    master, or with `damaged` the same frames with sensor noise (the file then adds the codec's
    own damage: see `photo_clip`)."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(frames):
        hr = photo[..., 20:20 + 4 * h, 8 * i:8 * i + 4 * w]
        x = F.interpolate(hr, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        if damaged:
            x = x + torch.randn(x.shape, generator=g) * 6 / 255
        out.append((x.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return out


def photo_clip(path: str | os.PathLike, damaged: bool, **kw) -> Path:
    """`photo_frames` in a file: lossless FFV1 (a clean master), or noisy and x264 at CRF 40
    (low-bitrate footage)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264" if damaged else "ffv1", rate=25)
        s.pix_fmt = "yuv420p" if damaged else "yuv444p"
        if damaged:
            s.options = {"crf": "40", "preset": "medium"}
        frames = photo_frames(damaged, **kw)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path
