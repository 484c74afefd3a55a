#!/usr/bin/env bash
# Speed as users run it, on the GPU machine, in one call: the CLI's engine per 4K frame for each
# source's network (bench_grid.py), end to end with the encoders at K = SUPERSAMPLE values
# (bench_e2e), the VapourSynth filter in-process (vs_speed.py) and the GPU tests. Wheels (av,
# pyyaml, tqdm, vapoursynth) come from a stash (device_stash.sh) and go into /tmp/site.
# Logs and JSON into $OUT (or /tmp/bench).
# STEPS: which of them (default 'grid e2e vs gpu_tests').
# usage: [STASH=dir] [STEPS=...] [SUPERSAMPLE='1 1.5'] [FRAMES=120] scripts/device_bench.sh
set -uo pipefail
s=${STASH:-/tmp/train} dest=${OUT:-/tmp/bench}
mkdir -p "$dest"
pip install -q --no-index --no-deps --target /tmp/site "$s"/*.whl > /dev/null 2>&1 || { echo "wheels failed" >&2; exit 1; }
export PYTHONPATH=/tmp/site:$PWD:$PWD/.vsgendrpix PYTHONUNBUFFERED=1
# vsgendrpix is vs_plugin/ under its import name (pip install maps it so)
mkdir -p .vsgendrpix && ln -sfn "$PWD/vs_plugin" .vsgendrpix/vsgendrpix
nvidia-smi -L
steps=" ${STEPS:-grid e2e vs gpu_tests} "
step() { local name=$1; shift; [[ $steps == *" ${name%%_[0-9]*} "* ]] || return 0; echo "== $name"; timeout "${LIMIT:-150}" "$@" > "$dest/$name.log" 2>&1; echo "rc $?"; tail -n 12 "$dest/$name.log"; }
step grid python3 scripts/bench_grid.py 48 4 --sources any,clean
for k in ${SUPERSAMPLE:-1 1.5}; do
  step "e2e_$k" python3 -m gendrpix_video.measure.bench_e2e --inputs 1080p --frames "${FRAMES:-120}" --preset delivery \
    --supersample "$k" --json "$dest/e2e_$k.json"
done
step vs python3 scripts/vs_speed.py --frames 192 --run "" --run grid=fixed,temporal=0 --run span=48
step gpu_tests python3 -m pytest -q -m gpu tests/test_gpu.py tests/test_vs_filter.py -p no:cacheprovider
