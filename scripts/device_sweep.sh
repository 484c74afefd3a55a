#!/usr/bin/env bash
# Several single-GPU training runs side by side on one multi-GPU machine, one per line of SPEC
# ("NAME train args...", '#' comments), line i on GPU i (mod the GPU count), each in the background
# like device_train_bg.sh: a hyper-parameter sweep costs the wall time of one run. PER_GPU runs may
# share a GPU (one process leaves much of an H200 idle). Runs land in SWEEP/NAME (default
# /tmp/sweep); score them with scripts/device_grid.sh.
# Arguments after MINUTES go to every run, before the line's own (which win where both set one).
# usage: [SWEEP=dir] [PER_GPU=1] [STAGE=2] [DATA=dir] [TEACHER=file] [CONFIG=name] scripts/device_sweep.sh SPEC MINUTES [args...]
set -euo pipefail
spec=$1 minutes=$2 sweep=${SWEEP:-/tmp/sweep}
shift 2
here=$(dirname "$0")
mkdir -p "$sweep"
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
per=${PER_GPU:-1} slots=$((gpus * ${PER_GPU:-1}))
i=0
while read -r name args; do
  [[ -z $name || $name == \#* ]] && continue
  [ "$i" -lt "$slots" ] || { echo "device_sweep: more runs than $slots slots ($gpus GPUs x PER_GPU $per); '$name' and later not started" >&2; break; }
  # The CPU cores are shared: keep each process's thread pool to its share.
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$((i % gpus)) OMP_NUM_THREADS=$(( $(nproc) / slots > 0 ? $(nproc) / slots : 1 )) \
    "$here/device_train_bg.sh" "${STAGE:-2}" "$sweep/$name" "$minutes" "$@" $args
  echo "$name on GPU $((i % gpus)): $args"
  i=$((i + 1))
done < "$spec"
