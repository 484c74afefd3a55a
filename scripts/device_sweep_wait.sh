#!/usr/bin/env bash
# Wait (at most SECONDS, default 540) for every run of a sweep (device_sweep.sh) to end, print
# each run's last lines, and fetch RUN into $OUT in the same call (device_fetch.sh): a machine
# goes back 30 s after a call and takes every run with it, so the run most likely to ship comes
# home before anything else is started (scoring, the next run).
# The process pattern names the sweep folder only: a pattern that this command line itself holds
# would match the waiting shell and wait out the whole limit.
# usage: [SWEEP=dir] scripts/device_sweep_wait.sh RUN [SECONDS]
set -uo pipefail
sweep=${SWEEP:-/tmp/sweep} run=$1 limit=${2:-540}
running() { pgrep -f "[t]raining.train .*--out $sweep/" > /dev/null; }
for _ in $(seq 1 $((limit / 5))); do
  running || break
  sleep 5
done
for log in "$sweep"/*/train.log; do echo "== $log"; tail -n 3 "$log"; done
if running; then
  echo "still running"
else
  "$(dirname "$0")/device_fetch.sh" "$sweep/$run"
fi
