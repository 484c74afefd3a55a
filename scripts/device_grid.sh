#!/usr/bin/env bash
# Score a sweep's runs on the GPU machine (training/grid.py), one run per GPU in parallel: each run's
# final weights and snapshots, alone and averaged with BASE, at each detail. Waits (at most WAIT
# seconds, default 540) for the sweep's training to end first. JSON per run into $OUT (or SWEEP),
# the Markdown tables to stdout.
# usage: [SWEEP=dir] [WAIT=s] [WEIGHTS=1,0.5,0.3] [DETAILS=1,1.5,2] [SNAPS='glob'] scripts/device_grid.sh BASE NIQE_PARAMS [DATA]
set -uo pipefail
base=$1 niqe=$2 data=${3:-data/photos} sweep=${SWEEP:-/tmp/sweep}
dest=${OUT:-$sweep}
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
# '[g]' keeps the pattern from matching a command line that merely quotes it (this call's own shell)
training() { pgrep -f "[g]endrpix_video.training.train .*--out $sweep/" > /dev/null; }
while training && [ "$SECONDS" -lt "${WAIT:-540}" ]; do sleep 5; done
training && { echo "device_grid: training in $sweep still running after ${WAIT:-540} s" >&2; exit 1; }
i=0
for run in "$sweep"/*/; do
  name=$(basename "$run")
  # shellcheck disable=SC2086
  models=$(ls $run/snapshots/${SNAPS:-*.safetensors} "$run/model.safetensors" 2>/dev/null)
  [ -n "$models" ] || continue
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$((i % gpus)) OMP_NUM_THREADS=4 python3 -m gendrpix_video.training.grid \
    --base "$base" --models $models --weights "${WEIGHTS:-1,0.5,0.3}" --details "${DETAILS:-1,1.5,2}" \
    --niqe-model "$niqe" --data "$data" --out "$dest/grid_$name.json" > "$sweep/grid_$name.md" 2> "$sweep/grid_$name.log" &
  i=$((i + 1))
done
wait
for f in "$sweep"/grid_*.md; do echo "## $(basename "$f" .md)"; cat "$f"; tail -n 1 "${f%.md}.log"; done
