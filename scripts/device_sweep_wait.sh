#!/usr/bin/env bash
# Wait (at most SECONDS, default 540) for every run of a sweep (device_sweep.sh) to end and fetch
# RUN into $OUT in the same call (device_wait.sh), then print each run's last lines: a machine
# goes back 30 s after a call and takes every run with it, so the run most likely to ship comes
# home before anything else is started (scoring, the next run).
# The 30 s run from the end of one call to the start of the next, and a sweep longer than one
# call (10 minutes) needs several: a slow reply between them lost a 19-minute sweep. Where the
# budget allows, fit start, training (--minutes 8.4) and this wait into one command instead:
#   scripts/device_sweep.sh SPEC 8.4 ... && sleep 60 && scripts/device_sweep_wait.sh RUN 500
# Write every follow-up call (score, fetch, the next round from these runs' weights) before the
# first one starts: reading one round's scores before sending the next call gave the machine back
# with the runs on its disk. Weights a later round starts from travel carried (device_pack.py).
# The process pattern names the sweep folder only: a pattern that this command line itself holds
# would match the waiting shell and wait out the whole limit.
# usage: [SWEEP=dir] scripts/device_sweep_wait.sh RUN [SECONDS]
set -uo pipefail
sweep=${SWEEP:-/tmp/sweep}
WAIT_FOR="$sweep/" "$(dirname "$0")/device_wait.sh" "$sweep/$1" "${2:-540}"
rc=$?
for log in "$sweep"/*/train.log; do echo "== $log"; tail -n 3 "$log"; done
exit $rc
