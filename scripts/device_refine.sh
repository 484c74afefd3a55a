#!/usr/bin/env bash
# Refiner banks and training runs on the GPU machine (training/refine_fit.py), in one call: BANKS
# bank processes side by side on the CPU cores (seeds 0.., N crops each, SOURCE's network at its
# default detail), then one training process per line of SPEC ("NAME train args...", '#'
# comments), all on the GPU at once (a 32-channel refiner leaves an H200 mostly idle), each for
# MINUTES. The refiners, their reports and logs come back in $OUT/refine.tar (kilobytes each).
# TEACHER (a name or .safetensors): the banks hold its output too (`bank --teacher`), for runs
# with --teacher-weight. DEVICE=cuda: the network and the teacher of each bank run on the GPU
# (the crops are degraded on the CPU cores, milliseconds each); on the CPU the teacher takes
# about 1 s a 128-px crop at x4.
# usage: [BANKS=4] [N=2000] [CROP=192] [TEACHER=name] [DEVICE=cpu] [STASH=/tmp/refine] scripts/device_refine.sh DATA SOURCE MINUTES SPEC
set -uo pipefail
data=$1 source=$2 minutes=$3 spec=$4
dest=${STASH:-/tmp/refine}
mkdir -p "$dest"
export PYTHONUNBUFFERED=1
banks=()
for i in $(seq 0 $((${BANKS:-4} - 1))); do
  banks+=("$dest/bank$i.npz")
  [ -f "$dest/bank$i.npz" ] && continue
  OMP_NUM_THREADS=$(( $(nproc) / ${BANKS:-4} )) python3 -m gendrpix_video.training.refine_fit bank --data "$data" \
    --source "$source" --n "${N:-2000}" --crop "${CROP:-192}" --seed "$i" ${TEACHER:+--teacher "$TEACHER"} \
    --device "${DEVICE:-cpu}" --out "$dest/bank$i.npz" > "$dest/bank$i.log" 2>&1 &
done
wait
ls -la "$dest"/bank*.npz || exit 1
joined=$(IFS=,; echo "${banks[*]}")
while read -r name args; do
  [[ -z $name || $name == \#* ]] && continue
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=2 python3 -m gendrpix_video.training.refine_fit train --bank "$joined" --device cuda \
    --minutes "$minutes" --out "$dest/$name.safetensors" $args > "$dest/$name.log" 2>&1 &
  echo "$name: $args"
done < "$spec"
wait
for f in "$dest"/*.log; do echo "== $f"; tail -n 2 "$f"; done
[ -n "${OUT:-}" ] && (cd "$dest" && tar cf "$OUT/refine.tar" ./*.safetensors ./*.log)
