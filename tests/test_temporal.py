"""The temporal filter: invented texture is blended away where consecutive frames agree; what
really changes (a subject moving on its own, a cut, what enters at the border) passes unchanged."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gendrpix_video.temporal import TemporalFilter, check_strength, moved


def scene(h=96, w=128, seed=0) -> torch.Tensor:
    """A smooth RGB picture in [0.1, 0.9] (no edges sharper than a few pixels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1) * 0.8 + 0.1


def texture(shape, seed, amp=2 / 255) -> torch.Tensor:
    """Fine texture of `amp` (2 levels): what the network draws differently on each frame."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 - 1) * amp


def test_a_still_shot_keeps_its_picture_and_loses_the_shimmer():
    base = scene()
    frames = [base + texture(base.shape, t) for t in range(8)]
    f = TemporalFilter(0.7)
    out = [f(x) for x in frames]
    assert torch.equal(out[0], frames[0])                      # nothing before the first frame
    change_in = np.mean([(b - a).abs().mean().item() for a, b in zip(frames, frames[1:])])
    change_out = np.mean([(b - a).abs().mean().item() for a, b in zip(out[2:], out[3:])])
    assert change_out < 0.5 * change_in
    assert (out[-1] - base).abs().mean() < (frames[-1] - base).abs().mean()  # closer to the picture


def test_a_pan_is_matched_by_its_step():
    big = scene(128, 192, seed=1)
    d = (2, 5)  # content moves down 2 and right 5 output pixels a frame
    frames = [big[..., 32 - t * d[0]:128 - t * d[0], 40 - t * d[1]:168 - t * d[1]] for t in range(4)]
    frames = [x + texture(x.shape, 10 + t) for t, x in enumerate(frames)]
    f, unmoved = TemporalFilter(0.7), TemporalFilter(0.7)
    out = [f(x, d) for x in frames]
    still = [unmoved(x, None) for x in frames]

    def shimmer(seq):  # each frame against the one before moved by the pan, inside
        return np.mean([(b[..., 8:, 8:] - a[..., 8 - d[0]:-d[0], 8 - d[1]:-d[1]]).abs().mean().item()
                        for a, b in zip(seq, seq[1:])])
    assert shimmer(out) < 0.7 * shimmer(frames)
    assert shimmer(still) > 0.9 * shimmer(frames)             # without the step nothing matches
    # The rows and columns that entered at the border have no moved previous frame: at most the
    # still match blends them, where the previous frame there agrees with them.
    for edge in ((..., slice(0, d[0]), slice(None)), (..., slice(None), slice(0, d[1]))):
        assert (out[3][edge] - frames[3][edge]).abs().max() < 6 / 255


def test_a_subject_moving_on_its_own_leaves_no_trail():
    """A bright square crossing a still background: where it was a frame ago the background is
    shown, not a ghost of the square."""
    base = scene(seed=2)
    frames = []
    for t in range(5):
        x = base.clone()
        x[..., 30:60, 10 + 12 * t:40 + 12 * t] = 0.95
        frames.append(x + texture(x.shape, 20 + t))
    f = TemporalFilter(0.9)
    out = [f(x) for x in frames]
    trail = (..., slice(30, 60), slice(10 + 12 * 3, 10 + 12 * 4))  # the square at t=3, gone at t=4
    assert (out[4][trail] - frames[4][trail]).abs().max() < 0.01
    assert (out[4][trail] - 0.95).abs().min() > 0.02


def test_a_cut_passes_unchanged_and_reset_forgets():
    a, b = scene(seed=3), scene(seed=4)
    f = TemporalFilter(0.7)
    f(a)
    assert (f(b) - b).abs().max() < 6 / 255   # blended only where the two happen to agree
    f.reset()
    c = a + texture(a.shape, 5)
    assert torch.equal(f(c), c)


def test_strength_zero_is_the_frame_itself_and_out_of_range_is_refused():
    f = TemporalFilter(0)
    x, y = scene(seed=5), scene(seed=5) + 0.001
    f(x)
    assert torch.equal(f(y), y)
    for bad in (-0.1, 0.96, 1.0):
        with pytest.raises(ValueError, match="temporal strength must be between 0 and 0.95"):
            check_strength(bad)


def test_moved_is_a_shift_with_its_inside_mask():
    x = scene(seed=6)
    out, inside = moved(x, (3.0, -4.0))
    assert torch.allclose(out[..., 3:, :-4], x[..., :-3, 4:], atol=1e-5)
    assert inside[..., :3, :].sum() == 0 and inside[..., :, -4:].sum() == 0
    assert inside[..., 3:, :-4].min() == 1


def test_engine_filters_across_batches_and_starts_again_at_each_segment():
    """One engine over a clip and a fresh engine per segment give the same frames with the filter
    on (the filter starts again on each segment's first frame, as the grid's positions do), and
    the filter changes the frames after a segment's first."""
    from gendrpix_video import build_model
    from gendrpix_video.video.colour import layout
    from gendrpix_video.video.decode import Frame
    from gendrpix_video.video.engine import Engine, EngineConfig
    torch.manual_seed(0)
    net = build_model("tiny")
    with torch.no_grad():
        for prm in net.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
    lay = layout("yuv444p")
    rng = np.random.default_rng(7)
    pic = (scene(40, 80, seed=7)[0, 0].numpy() * 255).astype(np.uint8)
    frames = [Frame(t, t, [np.ascontiguousarray(np.clip(pic[:, t:t + 56] + rng.integers(-3, 4, (40, 56)), 0, 255)
                                                .astype(np.uint8))] * 3, None) for t in range(6)]
    cfg = EngineConfig(in_layout=lay, in_size=(40, 56), in_matrix=1, in_full=False, out_layout=lay,
                       out_size=(80, 112), out_matrix=1, out_full=False, batch=2, grid="fixed", temporal=0.7,
                       segment_frames=3)

    from video_fixtures import engine_planes, segments_as_one
    dev = torch.device("cpu")
    whole = segments_as_one(lambda: Engine(net, cfg, dev), frames)
    off = engine_planes(Engine(net, dataclasses.replace(cfg, temporal=0.0), dev), [frames[0:3], frames[3:6]])
    assert np.array_equal(whole[3], off[3]) and not np.array_equal(whole[4], off[4])
    with pytest.raises(ValueError, match="temporal strength"):
        Engine(net, dataclasses.replace(cfg, temporal=1.5), dev)
