"""The VapourSynth filter `vsgendrpix.gendrpix` in-process, with real VapourSynth and the tiny config on CPU."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

REPO = Path(__file__).resolve().parents[1]


import vsgendrpix  # noqa: E402  (pip install -e . maps vs_plugin/ to vsgendrpix)
gendrpix = vsgendrpix.gendrpix
core = vs.core


@pytest.fixture(scope="module")
def model():
    """The tiny config on CPU in fp32, with a non-zero output layer so the network changes pixels."""
    from gendrpix_video import build_model

    torch.manual_seed(0)
    m = build_model("tiny", device="cpu")
    with torch.no_grad():
        torch.nn.init.normal_(m.unet.conv_out.weight, std=0.01)
    return m.eval()


def _content(clip: vs.VideoNode) -> vs.VideoNode:
    """Give every frame of a float RGB clip its own pattern (deterministic)."""

    def paint(n, f):
        fo = f.copy()
        h, w = fo.height, fo.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for p in range(3):
            plane = 0.5 + 0.4 * np.sin(xx * (0.2 + 0.05 * p) + n) * np.cos(yy * 0.3 - 0.5 * n)
            np.copyto(np.asarray(fo[p]), plane.astype(np.asarray(fo[p]).dtype))
        return fo

    return core.std.ModifyFrame(clip, clip, paint)


def _src(fmt=vs.RGBS, w=64, h=48, length=7, **kw) -> vs.VideoNode:
    clip = core.std.BlankClip(format=fmt, width=w, height=h, length=length, fpsnum=24000, fpsden=1001, **kw)
    return _content(clip)


FRAMEWISE = dict(grid="fixed", temporal=0)  # every frame on its own: batch k is the core's restore


def _planes(frame: vs.VideoFrame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(3)]).copy()


# ----------------------------------------------------------------------------- size, format, props


@pytest.mark.parametrize("fmt", [vs.RGBS, vs.RGBH])
def test_size_format_frames_and_props(model, fmt):
    src = _src(fmt, length=5)
    src = core.std.SetFrameProps(
        src, _Matrix=1, _Primaries=1, _Transfer=1, _Range=0, _SARNum=1, _SARDen=1,
        _FieldBased=0, user_tag="hello", user_list=[1, 2, 3],
    )
    out = gendrpix(src, height=96, model=model, batch_size=2)
    assert (out.width, out.height, out.num_frames) == (128, 96, 5)
    assert out.format.id == fmt
    assert out.fps == src.fps
    for n in range(out.num_frames):
        f, s = out.get_frame(n), src.get_frame(n)
        assert dict(f.props) == dict(s.props)
        a = _planes(f)
        assert a.dtype == (np.float16 if fmt == vs.RGBH else np.float32)
        assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
        # the network is near bicubic: the picture is still the source's
        ref = torch.nn.functional.interpolate(torch.from_numpy(_planes(s)).float()[None], size=(96, 128),
                                              mode="bicubic", align_corners=False)[0].numpy()
        assert np.abs(a.astype(np.float32) - ref).mean() < 0.1


def test_output_equals_core_restore_of_the_batch(model):
    from gendrpix_video import restore

    src = _src(length=5)
    out = gendrpix(src, height=96, model=model, batch_size=3, detail=0.7, seed=5, **FRAMEWISE)
    frames = torch.from_numpy(np.stack([_planes(f) for f in src.frames()]))
    batches = (frames[0:3], frames[3:5])  # the filter's batches: [0, 3) and [3, 5)
    expected = torch.cat([restore(model, b, size=(96, 128), detail=0.7, seed=5) for b in batches])
    for n in range(5):
        assert np.array_equal(_planes(out.get_frame(n)), expected[n].numpy()), n


def test_supersample_is_the_core_s_restore_any_scale(model):
    """supersample=1.5: the model restores each batch to 1.5 x the output and shrinks it, as the
    core's restore_any_scale does (the CLI's --supersample)."""
    from gendrpix_video.padcfg import restore_any_scale

    src = _src(length=2)
    out = gendrpix(src, scale=2, model=model, batch_size=2, detail=1.0, supersample=1.5, **FRAMEWISE)
    plain = gendrpix(src, scale=2, model=model, batch_size=2, detail=1.0, **FRAMEWISE)
    frames = torch.from_numpy(np.stack([_planes(f) for f in src.frames()]))
    expected = restore_any_scale(model, frames, (96, 128), 1.0, supersample=1.5)
    assert np.array_equal(_planes(out.get_frame(1)), expected[1].numpy())
    assert not np.array_equal(_planes(out.get_frame(1)), _planes(plain.get_frame(1)))


@pytest.mark.parametrize(
    "kw, size, sar",
    [
        (dict(scale=2), (128, 96), Fraction(1, 1)),
        (dict(scale=1.5), (96, 72), Fraction(1, 1)),
        (dict(height=96), (128, 96), Fraction(1, 1)),
        (dict(width=160), (160, 120), Fraction(1, 1)),
        (dict(height=100), (134, 100), Fraction(64 * 100, 134 * 48)),  # odd aspect: even width
        (dict(width=100, height=96), (100, 96), Fraction(32, 25)),  # anamorphic: SAR follows
        ({}, (128, 96), Fraction(1, 1)),  # default 2x
    ],
)
def test_output_size_options_and_sar(model, kw, size, sar):
    src = core.std.SetFrameProps(_src(length=2), _SARNum=1, _SARDen=1)
    out = gendrpix(src, model=model, **kw)
    assert (out.width, out.height) == size
    props = out.get_frame(1).props
    assert Fraction(props["_SARNum"], props["_SARDen"]) == sar


def test_variable_frame_rate_durations_kept(model):
    a = _src(length=3)
    b = _content(core.std.BlankClip(format=vs.RGBS, width=64, height=48, length=3, fpsnum=30))
    src = a + b  # 24000/1001 then 30 fps: variable frame rate (fps 0/1)
    assert src.fps == 0
    out = gendrpix(src, scale=2, model=model, batch_size=4)
    assert out.fps == 0 and out.num_frames == 6
    for n in range(6):
        p, q = out.get_frame(n).props, src.get_frame(n).props
        assert (p["_DurationNum"], p["_DurationDen"]) == (q["_DurationNum"], q["_DurationDen"])


def test_detail_two_branches(model):
    src = _src(length=2)
    one = _planes(gendrpix(src, scale=2, model=model, detail=1.0).get_frame(1))
    half = _planes(gendrpix(src, scale=2, model=model, detail=0.5).get_frame(1))
    assert one.shape == half.shape and not np.array_equal(one, half)


def test_no_detail_is_the_model_s_default(model, monkeypatch):
    src = _src(length=2)
    monkeypatch.setattr(model, "default_detail", 0.5)
    default = _planes(gendrpix(src, scale=2, model=model).get_frame(1))
    half = _planes(gendrpix(src, scale=2, model=model, detail=0.5).get_frame(1))
    one = _planes(gendrpix(src, scale=2, model=model, detail=1.0).get_frame(1))
    assert np.array_equal(default, half) and not np.array_equal(default, one)


# ----------------------------------------------------------------------------- order independence


def test_each_batch_always_runs_on_the_same_worker(model, monkeypatch):
    """cuDNN autotunes per thread on CUDA: a batch pinned to one worker runs the same kernels every time."""
    import threading

    import vsgendrpix._filter as F

    src = _src(length=11)
    first_pixel = {float(src.get_frame(n)[0][0, 0]): n for n in range(11)}
    assert len(first_pixel) == 11
    seen: dict[int, set[str]] = {}
    infer = F._Runner._infer

    def spy(self, x, positions=None):
        for v in x[:, 0, 0, 0].tolist():
            seen.setdefault(first_pixel[v] // 3, set()).add(threading.current_thread().name)
        return infer(self, x, positions)

    monkeypatch.setattr(F._Runner, "_infer", spy)
    out = gendrpix(src, height=96, model=model, batch_size=3, num_streams=2, seed=7, **FRAMEWISE)
    for n in [10, 0, 4, 9, 1, 7]:          # every batch, out of order
        out.get_frame(n)
    for n in range(11):                    # and all of them again, in order
        out.get_frame(n)
    assert sorted(seen) == [0, 1, 2, 3]
    for k, names in seen.items():
        assert names == {f"gendrpix{k % 2}_0"}, (k, names)


def test_the_next_run_starts_before_it_is_asked_for_and_each_run_is_restored_once(model, monkeypatch):
    """In-order playback asks for fewer frames at once than a run holds: asking for a run's frames
    starts the next run in the background; played forwards or backwards, each run is restored once."""
    import threading
    import time

    import vsgendrpix._filter as F

    runs: list[tuple[int, str]] = []
    real = F._Runner._run

    def spy(self, k, frames):
        runs.append((k, threading.current_thread().name))
        return real(self, k, frames)

    monkeypatch.setattr(F._Runner, "_run", spy)
    src = _src(length=20)
    kw = dict(height=96, model=model, batch_size=2, span=4, num_streams=2)
    out = gendrpix(src, **kw)
    out.get_frame(0)
    deadline = time.monotonic() + 30
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    by = dict(runs)
    assert sorted(by) == [0, 1], runs
    assert not by[0].startswith("gendrpix-ahead") and by[1].startswith("gendrpix-ahead"), runs
    for n in range(20):
        out.get_frame(n)
    assert sorted(k for k, _ in runs) == [0, 1, 2, 3, 4]
    runs.clear()
    out = gendrpix(src, **kw)
    for n in reversed(range(20)):
        out.get_frame(n)
    assert sorted(k for k, _ in runs) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("settings", [{}, FRAMEWISE])
def test_out_of_order_requests_are_bit_exact(model, settings):
    """The defaults (runs of frames, the grid following and the temporal filter through each)
    and frame by frame: any request order, concurrent or not, gives the same frames."""
    src = _src(length=11)
    kw = dict(height=96, model=model, batch_size=3, num_streams=2, seed=7, span=4, **settings)
    ref = [_planes(f) for f in gendrpix(src, **kw).frames()]  # in order
    assert not np.array_equal(ref[0], ref[1])

    order = list(range(11))
    random.Random(1).shuffle(order)
    # one instance, all frames requested at once in shuffled order (concurrent callbacks)
    out = gendrpix(src, **kw)
    futures = {n: out.get_frame_async(n) for n in order}
    for n in order:
        assert np.array_equal(_planes(futures[n].result()), ref[n]), n
    # a fresh instance, one frame at a time backwards, each frame twice
    out = gendrpix(src, **kw)
    for n in reversed(range(11)):
        for _ in range(2):
            assert np.array_equal(_planes(out.get_frame(n)), ref[n]), n

    # the same runs (6 frames) cut into other batches: the same up to float rounding
    for b in (1, 2, 6):
        other = gendrpix(src, **{**kw, "batch_size": b, "span": 6})
        for n in order:
            np.testing.assert_allclose(_planes(other.get_frame(n)), ref[n], atol=1e-4)


def test_source_clean_uses_the_clean_contexts():
    """On a model with clean-source contexts (changed from the any-source ones), source="clean"
    is the core's clean restore and differs from the default."""
    from gendrpix_video import build_model, restore

    torch.manual_seed(0)
    m = build_model("tiny-source", device="cpu")
    with torch.no_grad():
        torch.nn.init.normal_(m.unet.conv_out.weight, std=0.01)
        m.c_pos_clean.add_(torch.randn_like(m.c_pos_clean))
    m.eval().invalidate()
    src = _src(length=2)
    clean = gendrpix(src, scale=2, model=m, detail=1.0, batch_size=2, source="clean", **FRAMEWISE)
    frames = torch.from_numpy(np.stack([_planes(f) for f in src.frames()]))
    expected = restore(m, frames, size=(96, 128), detail=1.0, source="clean")
    default = _planes(gendrpix(src, scale=2, model=m, detail=1.0, batch_size=2, source="any").get_frame(1))
    assert np.array_equal(_planes(clean.get_frame(1)), expected[1].numpy())
    assert not np.array_equal(_planes(clean.get_frame(1)), default)


def _from_frames(frames: list[np.ndarray]) -> vs.VideoNode:
    """An RGBS clip of H x W x 3 uint8 frames."""
    h, w = frames[0].shape[:2]
    blank = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=len(frames))

    def paint(n, f):
        fo = f.copy()
        for p in range(3):
            np.copyto(np.asarray(fo[p]), frames[n][..., p].astype(np.float32) / 255)
        return fo

    return core.std.ModifyFrame(blank, blank, paint)


def test_source_auto_is_the_default_and_decides_once_per_clip(tiny_source_model):
    """source="auto" (the default) restores a clean photo clip with the clean network and the same
    clip made noisy with the network that removes damage, as the detector says of their frames."""
    from video_fixtures import photo_frames

    from gendrpix_video import load_model
    from gendrpix_video.damage import guess_source

    m = load_model(tiny_source_model, device="cpu")
    for damaged, want in ((False, "clean"), (True, "any")):
        frames = photo_frames(damaged, frames=3)
        assert guess_source(frames, m.sources).source == want
        clip = _from_frames(frames)
        auto = gendrpix(clip, scale=2, model=m, batch_size=3)
        told = gendrpix(clip, scale=2, model=m, batch_size=3, source=want)
        other = gendrpix(clip, scale=2, model=m, batch_size=3, source="any" if want == "clean" else "clean")
        assert np.array_equal(_planes(auto.get_frame(2)), _planes(told.get_frame(2)))
        assert not np.array_equal(_planes(auto.get_frame(2)), _planes(other.get_frame(2)))


def _pan(length=8, w=64, h=48) -> vs.VideoNode:
    """A float RGB clip of one picture moving right by one pixel a frame."""
    rng = np.random.default_rng(0)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w + length)[None, :]
    pic = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(h, w + length))) * np.exp(-40 * (fy ** 2 + fx ** 2)),
                        s=(h, w + length))
    pic = (0.5 + 0.4 * np.tanh(2 * pic / pic.std())).astype(np.float32)

    def paint(n, f):
        fo = f.copy()
        for p in range(3):
            np.copyto(np.asarray(fo[p]), np.roll(pic, p, 0)[:, length - n:length - n + w])
        return fo
    clip = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=length, fpsnum=25, fpsden=1)
    return core.std.ModifyFrame(clip, clip, paint)


def _batched(model, frames: np.ndarray, batch: int, positions=None) -> torch.Tensor:
    """The core's restore of frames, `batch` at a time, as the filter sends them."""
    from gendrpix_video import restore

    return torch.cat([restore(model, torch.from_numpy(frames[i:i + batch]), size=(96, 128),
                              positions=positions[i:i + batch] if positions else None)
                      for i in range(0, len(frames), batch)])


def test_grid_follow_moves_the_grid_with_the_picture_within_each_run(model):
    """grid="follow": each run of `span` frames is the core's restore with the positions
    GridFollower gives from the run's first frame (which sits at 0, as with the grid fixed),
    restored `batch_size` frames at a time; any request order, same frames."""
    from gendrpix_video.motion import GridFollower

    src = _pan()
    kw = dict(scale=2, model=model, batch_size=2, num_streams=2, span=4, temporal=0)
    follow = [_planes(f) for f in gendrpix(src, grid="follow", **kw).frames()]
    fixed = [_planes(f) for f in gendrpix(src, grid="fixed", **kw).frames()]
    frames = np.stack([_planes(f) for f in src.frames()])
    for k in (0, 4):
        run = frames[k:k + 4]
        tracker = GridFollower((2.0, 2.0))
        luma = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), run, axes=([0], [1]))
        positions = [tracker(y) for y in luma]
        assert positions[0] == (0.0, 0.0) and positions[3][1] > 2.5  # three pixels to the right
        want = _batched(model, run, 2, positions).numpy()
        for j in range(4):
            np.testing.assert_array_equal(follow[k + j], want[j])
        assert np.array_equal(follow[k], fixed[k]) and not np.array_equal(follow[k + 2], fixed[k + 2])
    out = gendrpix(src, grid="follow", **kw)
    for n in (7, 2, 5, 0, 6, 1, 3, 4):
        assert np.array_equal(_planes(out.get_frame(n)), follow[n]), n


@pytest.mark.parametrize("batch_size, span, grid", [(1, 1, "fixed"), (3, 3, "fixed"), (2, 3, "follow")])
def test_temporal_filters_each_run_led_in_by_the_frames_before_it(model, batch_size, span, grid):
    """temporal=0.7: each run (span rounded up to a multiple of batch_size) is the core's restore
    and TemporalFilter over the two frames before it (copies of frame 0 before the start) and the
    run, those two dropped; with the grid following, from the first of those two. Any request
    order gives the same frames, and it differs from the frame-by-frame output."""
    from gendrpix_video.motion import GridFollower
    from gendrpix_video.temporal import TemporalFilter

    src = _pan()
    kw = dict(scale=2, model=model, batch_size=batch_size, num_streams=2, span=span, grid=grid)
    unit = -(-span // batch_size) * batch_size
    steady = [_planes(f) for f in gendrpix(src, temporal=0.7, **kw).frames()]
    plain = [_planes(f) for f in gendrpix(src, scale=2, model=model, **FRAMEWISE).frames()]
    frames = np.stack([_planes(f) for f in src.frames()])
    for k in range(0, 8, unit):
        idx = [max(0, t) for t in range(k - 2, min(k + unit, 8))]
        tracker, filt = GridFollower((2.0, 2.0)), TemporalFilter(0.7)
        luma = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), frames[idx], axes=([0], [1]))
        motions = [tracker.track(y) for y in luma]
        ys = _batched(model, frames[idx], batch_size, [m.position for m in motions] if grid == "follow" else None)
        want = [filt(y, m.step_out((2.0, 2.0))).numpy()
                for y, m in zip(ys, motions)][2:]
        for j, w in enumerate(want):
            np.testing.assert_allclose(steady[k + j], w, atol=1e-6)
    np.testing.assert_allclose(steady[0], plain[0], atol=1e-6)   # before it, only copies of itself
    assert all(not np.array_equal(steady[n], plain[n]) for n in range(2, 8))
    out = gendrpix(src, temporal=0.7, **kw)
    for n in (7, 2, 5, 0, 6, 1, 3, 4):
        assert np.array_equal(_planes(out.get_frame(n)), steady[n]), n


def test_seed_changes_output(model):
    src = _src(length=1)
    a = _planes(gendrpix(src, scale=2, model=model, seed=0).get_frame(0))
    b = _planes(gendrpix(src, scale=2, model=model, seed=3).get_frame(0))
    assert not np.array_equal(a, b)


def test_nothing_printed_to_stdout(model, capfd):
    out = gendrpix(_src(length=3), scale=2, model=model, batch_size=2)
    for f in out.frames():
        pass
    assert capfd.readouterr().out == ""


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "fmt, w, h, call",
    [
        (vs.YUV420P8, 1920, 1080, 'core.resize.Bicubic(clip, format=vs.RGBH, matrix_in_s="709")'),
        (vs.YUV420P10, 1280, 720, 'core.resize.Bicubic(clip, format=vs.RGBH, matrix_in_s="709")'),
        (vs.YUV422P8, 720, 480, 'core.resize.Bicubic(clip, format=vs.RGBH, matrix_in_s="170m")'),
        (vs.RGB24, 64, 48, "core.resize.Bicubic(clip, format=vs.RGBH)"),
        (vs.RGB48, 64, 48, "core.resize.Bicubic(clip, format=vs.RGBH)"),
        (vs.GRAYS, 64, 48, "core.resize.Bicubic(clip, format=vs.RGBH)"),
    ],
)
def test_wrong_format_refused_with_resize_call(model, fmt, w, h, call):
    clip = core.std.BlankClip(format=fmt, width=w, height=h, length=1)
    with pytest.raises(vs.Error) as e:
        gendrpix(clip, scale=2, model=model)
    msg = str(e.value)
    name = vs.core.get_video_format(fmt).name
    assert msg == f"gendrpix: input must be RGBH or RGBS, got {name}; convert with {call}"
    # the suggested call works and the result is accepted
    fixed = eval(call, {"core": core, "vs": vs, "clip": clip})
    assert fixed.format.id == vs.RGBH
    assert gendrpix(fixed, scale=1, model=model).format.id == vs.RGBH


def test_not_a_clip_and_variable_clips_refused(model):
    a = _src(length=1)
    with pytest.raises(vs.Error, match="gendrpix: clip must be a vapoursynth.VideoNode"):
        gendrpix("video.mkv", model=model)
    with pytest.raises(vs.Error, match="gendrpix: clip must be a vapoursynth.VideoNode"):
        gendrpix(core.std.BlankAudio(), model=model)
    var_size = core.std.Splice([a, core.std.BlankClip(a, width=32)], mismatch=True)
    with pytest.raises(vs.Error, match="variable frame size"):
        gendrpix(var_size, model=model)
    var_fmt = core.std.Splice([a, core.std.BlankClip(a, format=vs.RGBH)], mismatch=True)
    with pytest.raises(vs.Error, match="variable format"):
        gendrpix(var_fmt, model=model)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(scale=0), "scale must be a positive number"),
        (dict(scale=float("inf")), "scale must be a positive number"),
        (dict(scale=2, height=96), "either scale or width/height"),
        (dict(width=0), "width must be a positive integer"),
        (dict(height=96.0), "height must be a positive integer"),
        (dict(scale=16), r"scale of 16x16; the model supports 1x to 4x"),
        (dict(scale=0.5), r"scale of 0.5x0.5; the model supports 1x to 4x"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(num_streams=-1), "num_streams must be an integer >= 1"),
        (dict(num_streams=True), "num_streams must be an integer >= 1"),
        (dict(detail=float("nan")), "detail must be a finite number >= 0"),
        (dict(detail=-1), "detail must be a finite number >= 0"),
        (dict(seed="1"), "seed must be an integer"),
        (dict(dtype="int8"), "dtype must be"),
        (dict(dtype=torch.float16), "model is torch.float32 but dtype=torch.float16"),
        (dict(device_index=-1), "device_index must be a non-negative integer"),
        (dict(source="dirty"), "source must be one of 'auto', 'any', 'clean', got 'dirty'"),
        (dict(source=None), "source must be one of 'auto', 'any', 'clean', got None"),
        (dict(grid="moving"), "grid must be 'fixed' or 'follow', got 'moving'"),
        (dict(temporal=1.0), "temporal must be a number between 0 and 0.95, got 1.0"),
        (dict(supersample=2.5), "supersample must be a number from 1 to 2, got 2.5"),
        (dict(supersample="2"), "supersample must be a number from 1 to 2, got '2'"),
        (dict(temporal="strong"), "temporal must be a number between 0 and 0.95, got 'strong'"),
        (dict(span=0), "span must be an integer >= 1, got 0"),
        (dict(span=2.5), "span must be an integer >= 1, got 2.5"),
        (dict(source="clean"), r"source='clean': model of config tiny has no network for clean sources "
                               r"\(it has: any\); use source='any'"),
    ],
)
def test_bad_parameters(model, kw, match):
    with pytest.raises(vs.Error, match=match):
        gendrpix(_src(length=1), model=model, **kw)


def test_source_a_model_file_lacks_names_the_file(tiny_model):
    with pytest.raises(vs.Error, match=r"gendrpix: source='clean': model tiny \(tiny\) has no network for clean "
                                       r"sources \(it has: any\)"):
        gendrpix(_src(length=1), model=str(tiny_model), source="clean")


def test_bad_model_values():
    src = _src(length=1)
    with pytest.raises(vs.Error, match="gendrpix: cannot load model"):
        gendrpix(src, model="/nonexistent/weights.safetensors")
    with pytest.raises(vs.Error, match="gendrpix: model must be None, a weights name/path"):
        gendrpix(src, model=torch.nn.Conv2d(3, 3, 1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_but_missing():
    with pytest.raises(vs.Error, match=r"gendrpix: device_index=0 requests CUDA, but CUDA is not available"):
        gendrpix(_src(length=1), device_index=0)


@pytest.mark.gpu
def test_cuda_streams_match_the_cpu_in_any_request_order(model):
    """CUDA fp32 with two streams, frames asked for in order and shuffled: the CPU's result up to
    TF32 rounding (3.4e-4 measured on an H200)."""
    from gendrpix_video import build_model

    mc = build_model("tiny", device="cuda")
    mc.load_state_dict(model.state_dict())
    mc.eval()
    src = _src(length=11)
    ref = [_planes(f) for f in gendrpix(src, height=96, model=model, batch_size=3).frames()]
    kw = dict(height=96, model=mc, batch_size=3, num_streams=2)
    in_order = [_planes(f) for f in gendrpix(src, **kw).frames()]
    assert max(np.abs(a - b).max() for a, b in zip(in_order, ref)) < 2e-3
    order = list(range(11))
    random.Random(0).shuffle(order)
    out = gendrpix(src, **kw)
    futures = {n: out.get_frame_async(n) for n in order}
    assert max(np.abs(_planes(futures[n].result()) - in_order[n]).max() for n in order) < 2e-3


# ----------------------------------------------------------------------------- a real file


def test_bestsource_file_converted_and_upscaled(model, tmp_path):
    assert hasattr(core, "bs"), "vapoursynth-bestsource (the test extra) is not installed"
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            img = np.zeros((48, 64, 3), np.uint8)
            img[..., 0] = 20 * i
            img[:, (5 * i) % 64:, 1] = 200
            img[::2, :, 2] = 120
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

    src = core.bs.VideoSource(source=str(path), cachemode=0)
    assert (src.format.id, src.num_frames) == (vs.YUV420P8, 10)
    with pytest.raises(vs.Error, match=r'matrix_in_s="170m"'):
        gendrpix(src, model=model)
    rgb = core.resize.Bicubic(src, format=vs.RGBH, matrix_in_s="170m")
    out = gendrpix(rgb, height=96, model=model, batch_size=4, num_streams=2)
    assert (out.width, out.height, out.num_frames, out.format.id) == (128, 96, 10, vs.RGBH)
    yuv = core.resize.Bicubic(out, format=vs.YUV420P8, matrix_s="170m")
    for n in (9, 0, 5):
        f = out.get_frame(n)
        assert dict(f.props) == dict(rgb.get_frame(n).props)
        red = np.asarray(f[0]).astype(np.float32).mean()
        assert abs(red - 20 * n / 255) < 0.06  # still the source's picture
        assert yuv.get_frame(n).width == 128


def test_inference_error_becomes_vs_error(model, monkeypatch):
    import sys

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(sys.modules["vsgendrpix._filter"], "restore_any_scale", broken)
    out = gendrpix(_src(length=3), scale=2, model=model, batch_size=2, **FRAMEWISE)
    with pytest.raises(vs.Error, match=r"gendrpix: inference failed on frames 2-2: RuntimeError: CUDA out of memory"):
        out.get_frame(2)
