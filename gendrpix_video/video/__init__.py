"""Video files: probe -> decode thread -> engine (colour + model on the GPU) -> parallel segment
encoders -> lossless join with the untouched audio/subtitles -> atomic rename.

`upscale_file` (pipeline.py) is the one entry for a whole job; `UpscaleSettings` (presets.py) is
what a preset or a front end can say about it. One concern per module: probe, decode, colour,
engine, encode, mux, job, lock (one run per output), preflight (the plan and its limits),
argcheck (option ranges), presets, pipeline, errors.
"""
from .errors import DamagedInput, OutputError, VideoError
from .lock import JobBusy
from .pipeline import Result, upscale_file
from .preflight import Plan, PlanRefused
from .presets import PresetError, UpscaleSettings

__all__ = ["upscale_file", "UpscaleSettings", "Result", "Plan", "VideoError", "PresetError", "PlanRefused",
           "JobBusy", "DamagedInput", "OutputError"]
