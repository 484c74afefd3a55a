#!/usr/bin/env bash
# Start a long training run on the GPU machine as a background process that outlives this device
# call (setsid), so one run spans several calls and builds its (LR, teacher) bank once (74-106 s a
# chunk otherwise). Keep the machine warm with calls that wait (`scripts/device_wait.sh RUN`, or
# `sleep`) until it ends, then fetch with `scripts/device_fetch.sh RUN`. The machine still goes
# back after 30 minutes held: give --minutes accordingly.
# usage: [DATA=dir] [TEACHER=file] scripts/device_train_bg.sh STAGE RUN MINUTES [extra train args...]
set -euo pipefail
run=$2
mkdir -p "$run"
setsid nohup env -u OUT "$(dirname "$0")/device_train.sh" "$@" > "$run/train.log" 2>&1 < /dev/null &
echo "started in the background: log $run/train.log"
