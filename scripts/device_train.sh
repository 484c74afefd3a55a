#!/usr/bin/env bash
# One training chunk on the GPU machine (device tool): resumes from RUN/ckpt.safetensors on that
# machine's disk, or from --init weights when the machine is fresh.
# usage: [DATA=dir] [TEACHER=file] [CONFIG=name] [NPROC=n] scripts/device_train.sh STAGE RUN MINUTES [args...]
# NPROC > 1 runs one process per GPU under torchrun (batch per step: NPROC x --batch).
# DATA and TEACHER default to the carried data/photos and .carry/teacher_x4plus.safetensors; the
# two together exceed one call's carry limit, so a session stashes them outside the repo first
# (scripts/device_stash.sh, the teacher in parts over two calls).
set -uo pipefail
stage=$1 run=$2 minutes=$3; shift 3
export PYTHONUNBUFFERED=1
mkdir -p "$run"
launch=(python3 -m)
[ "${NPROC:-1}" -gt 1 ] && launch=(python3 -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m)
"${launch[@]}" gendrpix_video.training.train --stage "$stage" --config "${CONFIG:-small}" --data "${DATA:-data/photos}" \
  --teacher "${TEACHER:-.carry/teacher_x4plus.safetensors}" --out "$run" --minutes "$minutes" "$@" 2>&1 | grep --line-buffered -v Warning
# Bring back what must be kept (weights, curve, state) when run through the device tool.
if [ -n "${OUT:-}" ]; then "$(dirname "$0")/device_fetch.sh" "$run"; fi
