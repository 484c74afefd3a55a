#!/usr/bin/env bash
# Bring a run's results back from the GPU machine: fp16 weights split under the 16 MiB file limit
# of $OUT (rejoin with `cat model_fp16.part.* > model_fp16.safetensors`), loss curve, state.
# usage: scripts/device_fetch.sh RUN
set -euo pipefail
run=$1
[ -n "${OUT:-}" ] && [ -f "$run/model.safetensors" ] || { echo "nothing to fetch in $run" >&2; exit 1; }
python3 - "$run" <<'PY'
import sys, torch
from gendrpix_video import load_weights, save_weights
m = load_weights(f"{sys.argv[1]}/model.safetensors")
save_weights(m, f"{sys.argv[1]}/model_fp16.safetensors", dtype=torch.float16)
PY
split -b 15M "$run/model_fp16.safetensors" "$OUT/model_fp16.part."
cp "$run/loss.png" "$run/state.json" "$OUT/"
