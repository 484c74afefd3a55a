#!/usr/bin/env bash
# Wait (at most SECONDS, default 540) for a background training run to end, print its log's tail,
# and fetch its results into $OUT when it has ended (device_fetch.sh).
# WAIT_FOR: the --out of the runs to wait for (a regular expression; default RUN alone).
# usage: [WAIT_FOR=re] scripts/device_wait.sh RUN [SECONDS]
set -uo pipefail
run=$1 limit=${2:-540}
# ('[t]' keeps the pattern from matching a command line that merely quotes it)
running() { pgrep -f "[t]raining.train .*--out ${WAIT_FOR:-$run( |$)}" > /dev/null; }
for _ in $(seq 1 $((limit / 5))); do
  running || break
  sleep 5
done
tail -n 20 "$run/train.log"
if running; then
  echo "still running"
else
  "$(dirname "$0")/device_fetch.sh" "$run"
fi
