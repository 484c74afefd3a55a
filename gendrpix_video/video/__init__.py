"""The `upscale` pipeline: probe -> decode thread -> engine (colour + model on the GPU) ->
parallel segment encoders -> lossless join with the untouched audio/subtitles -> atomic rename.

One concern per module: probe, decode, colour, engine, encode, mux, job, upscale, errors.
"""
