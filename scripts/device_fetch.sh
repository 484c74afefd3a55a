#!/usr/bin/env bash
# Bring runs' results back from the GPU machine: fp16 weights, loss curve, state and log of each RUN
# in one tar split under $OUT's 16 MiB file limit, so three runs' weights (33 MiB each) take 7 of
# its 8 files. Rejoin and unpack here with `cat runs.tar.part.* | tar xf -` (paths as on the machine).
# usage: scripts/device_fetch.sh RUN...
set -euo pipefail
[ -n "${OUT:-}" ] || { echo "device_fetch: OUT is not set" >&2; exit 1; }
files=()
for run in "$@"; do
  [ -f "$run/model.safetensors" ] || { echo "device_fetch: nothing to fetch in $run" >&2; continue; }
  python3 - "$run" <<'PY'
import sys, torch
from gendrpix_video import load_weights, save_weights
m = load_weights(f"{sys.argv[1]}/model.safetensors")
save_weights(m, f"{sys.argv[1]}/model_fp16.safetensors", dtype=torch.float16)
PY
  for f in model_fp16.safetensors loss.png state.json train.log; do
    [ -f "$run/$f" ] && files+=("$run/$f")
  done
done
[ ${#files[@]} -gt 0 ] || exit 1
tar cf - "${files[@]}" | split -b 15M - "$OUT/runs.tar.part."
ls -la "$OUT"
