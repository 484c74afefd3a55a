"""GPU colour maths (run on the CPU here): matrices, ranges, bit depths, subsampling."""
import pytest
import torch

from gendrpix_video.video.colour import KR_KB, from_rgb, layout, resolve_matrix, to_rgb


def planes_for(lay, n=2, h=8, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand((n, 3, h, w), generator=g)
    return rgb


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p10le", "yuv444p", "yuv420p12le",
                                     "yuv444p16le", "gbrp", "gbrp16le"])
@pytest.mark.parametrize("matrix", [1, 6, 9])
@pytest.mark.parametrize("full", [False, True])
def test_round_trip_444_and_rgb_exact_within_a_step(pix_fmt, matrix, full):
    lay = layout(pix_fmt)
    rgb = planes_for(lay)
    if lay.log2_cw or lay.log2_ch:  # flat colour survives chroma subsampling and upsampling
        rgb = rgb[..., :1, :1].expand_as(rgb).contiguous()
    planes = from_rgb(rgb, lay, matrix, full)
    assert planes[0].dtype == (torch.uint8 if lay.bits == 8 else torch.int16)
    back = to_rgb(planes, lay, matrix, full)
    yuv_clip = (rgb - back).abs().max().item()
    # Out-of-gamut YUV does not arise from RGB input, so only quantisation is lost.
    assert yuv_clip < 4 / (1 << lay.bits), yuv_clip
    again = from_rgb(back, lay, matrix, full)
    for a, b in zip(planes, again):  # a second pass changes no code value by more than one
        assert (a.to(torch.int32) - b.to(torch.int32)).abs().max() <= 1


def test_known_code_values_bt709_limited_8bit():
    lay = layout("yuv444p")
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert [int(p) for p in from_rgb(white, lay, 1, False)] == [235, 128, 128]
    assert [int(p) for p in from_rgb(black, lay, 1, False)] == [16, 128, 128]
    red = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    y, cb, cr = (int(p) for p in from_rgb(red, lay, 1, False))
    assert (y, cb, cr) == (63, 102, 240)  # BT.709 red, limited range


def test_ten_bit_full_range_codes():
    lay = layout("yuv420p10le")
    planes = from_rgb(torch.ones(1, 3, 2, 2), lay, 9, True)
    assert int(planes[0][0, 0, 0]) == 1023 and int(planes[1][0, 0, 0]) == 512
    planes = from_rgb(torch.ones(1, 3, 2, 2), lay, 9, False)
    assert int(planes[0][0, 0, 0]) == 940 and int(planes[1][0, 0, 0]) == 512


def test_sixteen_bit_values_above_int16_survive():
    lay = layout("yuv444p16le")
    planes = from_rgb(torch.ones(1, 3, 1, 1), lay, 1, True)
    assert (int(planes[0]) & 0xFFFF) == 65535
    assert to_rgb(planes, lay, 1, True)[0, :, 0, 0].tolist() == pytest.approx([1, 1, 1], abs=1e-4)


def test_matrix_guess_and_layouts():
    assert resolve_matrix(2, 480) == 6 and resolve_matrix(2, 1080) == 1 and resolve_matrix(9, 480) == 9
    assert set(KR_KB) >= {1, 5, 6, 9}
    assert layout("yuva420p").alpha and layout("yuvj420p").full_range_only
    assert layout("nv12") is None and layout("rgb24") is None and layout("yuv420p10be") is None
    assert layout("yuv420p10le").plane_shapes(5, 3) == [(3, 5), (2, 3), (2, 3)]
