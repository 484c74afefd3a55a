"""The grid that follows the picture: motion estimation (motion.py) and restore's positions."""
import dataclasses

import numpy as np
import torch

from gendrpix_video import load_model
from gendrpix_video.configs import SHUFFLE
from gendrpix_video.model import build_model
from gendrpix_video.motion import GridFollower, displacement
from gendrpix_video.padcfg import followed_phases, grid_phases, restore


def texture(h=160, w=200, seed=0) -> np.ndarray:
    """A smooth random picture with edges (values 0-255), periodic so shifts are exact."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    spec = np.fft.rfft2(rng.normal(size=(h, w))) * np.exp(-2 * (np.pi * 2.5) ** 2 * (fy ** 2 + fx ** 2))
    x = np.fft.irfft2(spec, s=(h, w))
    x = np.tanh(3 * x / x.std())  # soft edges where the field crosses zero
    return 128 + 100 * x


def shifted(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """img moved by (dy, dx) pixels: out(p) = img(p - d), by the Fourier shift."""
    h, w = img.shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    return np.fft.irfft2(np.fft.rfft2(img) * np.exp(-2j * np.pi * (fy * dy + fx * dx)), s=(h, w))


def test_displacement_finds_whole_and_sub_pixel_shifts_through_noise():
    img, rng = texture(), np.random.default_rng(1)
    for dy, dx in ((0.25, -0.75), (3.4, 1.0), (-6.0, 2.6)):
        a = img + rng.normal(0, 2, img.shape)
        b = shifted(img, dy, dx) + rng.normal(0, 2, img.shape)
        got = displacement(a[20:-20, 20:-20], b[20:-20, 20:-20])
        assert got is not None and abs(got[0] - dy) < 0.1 and abs(got[1] - dx) < 0.1, (dy, dx, got)


def test_unrelated_flat_or_still_frames_do_not_move_the_grid():
    img, rng = texture(), np.random.default_rng(2)
    assert displacement(img, texture(seed=5)) is None          # a cut
    assert displacement(np.full((64, 64), 9.0), np.full((64, 64), 9.0)) is None  # nothing to match
    f = GridFollower(scale=(4, 4))
    # a still shot under fresh noise every frame: the grid stays where it is
    assert {f(img + rng.normal(0, 4, img.shape)) for _ in range(12)} == {(0.0, 0.0)}


def test_the_follower_sums_a_pan_into_whole_output_pixels():
    img = texture(240, 240)
    f = GridFollower(scale=(4, 4))
    got = [f(shifted(img, -0.25 * t, -0.75 * t)[30:-30, 30:-30]) for t in range(10)]
    for t, (y, x) in enumerate(got):
        assert abs(y + 0.25 * t) <= 0.25 and abs(x + 0.75 * t) <= 0.25, (t, y, x)
        assert (y * 4).is_integer() and (x * 4).is_integer()  # whole output pixels
    f.reset()
    assert f(img) == (0.0, 0.0)


def test_positions_move_the_grid_phases_with_the_content():
    (p, _, q, _), (pn, _, qn, _) = grid_phases(0)
    # content 3 output pixels to the left (x4: -0.75 input pixels) and 1 down: the grid goes with it
    [(pos, neg)] = followed_phases(0, [(0.25, -0.75)], (16, 16), (64, 64))
    assert pos == ((p + 3) % SHUFFLE, SHUFFLE - (p + 3) % SHUFFLE, (q - 1) % SHUFFLE, SHUFFLE - (q - 1) % SHUFFLE)
    assert neg[0] == (pn + 3) % SHUFFLE and neg[2] == (qn - 1) % SHUFFLE
    assert followed_phases(0, [(0.0, 0.0)], (16, 16), (64, 64)) == [grid_phases(0)]


def test_a_batch_with_positions_is_each_frame_restored_on_its_own_phase():
    torch.manual_seed(0)
    net = build_model("tiny")
    with torch.no_grad():  # a network whose output depends on the grid phase
        for prm in net.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
    x = torch.rand(3, 3, 16, 20)
    positions = [(0.0, 0.0), (0.25, -0.75), (-1.0, 0.5)]
    for detail in (0.0, 0.3, 1.0):
        batch = restore(net, x, (64, 80), detail, positions=positions)
        alone = torch.cat([restore(net, x[i:i + 1], (64, 80), detail, positions=[positions[i]]) for i in range(3)])
        assert torch.allclose(batch, alone, atol=1e-5)
        assert torch.equal(restore(net, x[:1], (64, 80), detail, positions=[(0.0, 0.0)]),
                           restore(net, x[:1], (64, 80), detail))
    assert not torch.allclose(alone[1], restore(net, x[1:2], (64, 80), 0.3)[0], atol=1e-3)
    # above 1 PadCFG extrapolates from the fidelity branch, with frame positions as without them
    assert torch.allclose(restore(net, x, (64, 80), 1.5, positions=positions)[:1],
                          restore(net, x[:1], (64, 80), 1.5), atol=1e-5)


def test_with_the_grid_following_a_pan_the_default_models_texture_moves_with_the_picture():
    """Consecutive frames of a pan by one input pixel (4 output pixels, half the x8 grid): the
    output of the second, moved back, should equal the first's; the fixed grid changes it."""
    m = load_model(None, device="cpu")
    img = torch.from_numpy(texture(72, 104, seed=3) / 255).float()
    rgb = torch.stack([img, img.roll(7, 0), img.roll(11, 1)])  # three channels, one picture
    frames = torch.stack([rgb[:, :, 1:], rgb[:, :, :-1]])        # content moves right by 1 px
    size = (4 * 72, 4 * 103)
    fixed = restore(m, frames, size)
    follow = restore(m, frames, size, positions=[(0.0, 0.0), (0.0, 1.0)])

    def change(out):  # frame 1 moved back by 4 output pixels against frame 0, away from the borders
        return (out[1, :, 32:-32, 36:-32] - out[0, :, 32:-32, 32:-36]).abs().mean().item()
    assert change(follow) < 0.5 * change(fixed), (change(follow), change(fixed))


def _pan_clip(path, frames=4, h=48, w=64):
    """An ffv1 clip of a picture moving right by one pixel a frame (whole pixels: exact)."""
    import av
    from fractions import Fraction
    img = texture(h, w + frames, seed=4)
    rgb = np.stack([img, np.roll(img, 9, 0), np.roll(img, 5, 1)], -1).clip(0, 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("ffv1", rate=25)
        v.width, v.height, v.pix_fmt, v.time_base = w, h, "yuv444p", Fraction(1, 25)
        for t in range(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:, frames - t:frames - t + w]), format="rgb24")
            f.pts = t
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    return path


def test_the_cli_follows_the_pan_by_default_and_fixes_the_grid_when_asked(tmp_path, capsys):
    import av
    from video_fixtures import run_upscale
    src = _pan_clip(tmp_path / "pan.mkv")
    common = [src, "--scale", "4", "--codec", "ffv1", "--pix-fmt", "yuv444p", "--device", "cpu"]
    code, _, err = run_upscale(capsys, *common, "-o", tmp_path / "follow.mkv")
    assert code == 0, err
    assert "grid follow" in err                                   # the plan says it
    code, _, err = run_upscale(capsys, *common, "-o", tmp_path / "fixed.mkv", "--grid", "fixed", "--quiet")
    assert code == 0, err

    def change(path):  # each frame against the next moved back by 4 output pixels, borders left out
        with av.open(str(path)) as c:
            y = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)]
        return np.mean([np.abs(b[24:-24, 28:-24] - a[24:-24, 24:-28]).mean() for a, b in zip(y, y[1:])])
    assert change(tmp_path / "follow.mkv") < 0.6 * change(tmp_path / "fixed.mkv")


def test_each_segment_starts_the_grid_again_so_workers_and_one_process_agree():
    """One engine over a clip and a fresh engine per segment (a resumed job, a GPU process or a
    cluster worker) give the same frames: positions start at 0 on each segment's first frame."""
    from gendrpix_video.video.colour import layout
    from gendrpix_video.video.decode import Frame
    from gendrpix_video.video.engine import Engine, EngineConfig
    torch.manual_seed(0)
    net = build_model("tiny")
    with torch.no_grad():  # a network whose output depends on the grid phase
        for prm in net.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
    lay = layout("yuv444p")
    pic = texture(40, 80, seed=6).clip(0, 255).astype(np.uint8)
    frames = [Frame(t, t, [np.ascontiguousarray(pic[:, t:t + 56])] * 3, None) for t in range(6)]
    cfg = EngineConfig(in_layout=lay, in_size=(40, 56), in_matrix=1, in_full=False, out_layout=lay,
                       out_size=(80, 112), out_matrix=1, out_full=False, batch=2, grid="follow", segment_frames=3)

    from video_fixtures import engine_planes, segments_as_one
    dev = torch.device("cpu")
    whole = segments_as_one(lambda: Engine(net, cfg, dev), frames)
    fixed = engine_planes(Engine(net, dataclasses.replace(cfg, grid="fixed"), dev), [frames[0:3], frames[3:6]])
    assert np.array_equal(whole[3], fixed[3]) and not np.array_equal(whole[4], fixed[4])


def test_a_zoom_or_a_turn_about_the_centre_leaves_the_grid_where_it_is():
    """Motion that is no translation: the follower must not wander (a moved grid changes texture)."""
    import torch.nn.functional as F
    img = torch.from_numpy(texture(400, 400, seed=8)).float()[None, None, 50:350, 50:350]
    for name, affine in (("zoom", lambda t: [[1.02 ** -t, 0, 0], [0, 1.02 ** -t, 0]]),
                         ("turn", lambda t: [[np.cos(t / 57.3), -np.sin(t / 57.3), 0],
                                             [np.sin(t / 57.3), np.cos(t / 57.3), 0]])):
        f = GridFollower((4, 4))
        for t in range(10):
            grid = F.affine_grid(torch.tensor([affine(t)], dtype=torch.float32), (1, 1, 300, 300), align_corners=False)
            pos = f(F.grid_sample(img, grid, align_corners=False)[0, 0].numpy())
            assert max(abs(pos[0]), abs(pos[1])) <= 0.25, (name, t, pos)
