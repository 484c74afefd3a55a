"""Video files: probe -> decode thread -> engine (colour + model on the GPU) -> parallel segment
encoders -> lossless join with the untouched audio/subtitles -> atomic rename.

`upscale_file` (pipeline.py) is the one entry for a whole job; `UpscaleSettings` (presets.py) is
what a preset or a front end can say about it. One concern per module: probe, decode, colour,
engine, encode, mux, job, lock (one run per output), preflight (the plan and its limits),
argcheck (option ranges), presets, pipeline, errors.
"""
from __future__ import annotations

import importlib

# Loaded on first use, so modules that need no FFmpeg (argcheck, presets, errors: the bench and
# the option checks) import on a machine without PyAV (a GPU node measuring the model alone).
_EXPORTS = {
    "upscale_file": "pipeline", "Result": "pipeline", "UpscaleSettings": "presets",
    "PresetError": "presets", "Plan": "preflight", "PlanRefused": "preflight",
    "VideoError": "errors", "DamagedInput": "errors", "OutputError": "errors", "JobBusy": "lock",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
