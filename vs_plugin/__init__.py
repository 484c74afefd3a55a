"""VapourSynth filter for gendrpix-video (import name ``vsgendrpix``).

    import vapoursynth as vs
    from vsgendrpix import gendrpix
    core = vs.core
    clip = core.resize.Bicubic(src, format=vs.RGBH, matrix_in_s="709")
    clip = gendrpix(clip, height=2160, batch_size=4, num_streams=2, device_index=0)

See docs/vapoursynth.md for the parameter reference.
"""

from ._filter import gendrpix

__all__ = ["gendrpix"]
