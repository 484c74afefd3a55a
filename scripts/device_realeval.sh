#!/usr/bin/env bash
# Score models on the real-input set on the GPU machine (training/realeval.py): teachers and the
# model rows as given, NIQE on the machine's cores. Inputs come from a stash (device_stash.sh):
# STASH/realinput.npz, STASH/niqe_pris_params.npz and the teachers' .safetensors files.
# Results (real.json, pd.png, crops.png) into $OUT/NAME (or /tmp/real/NAME), tables to stdout.
# usage: [STASH=dir] [TEACHERS='a,b'] scripts/device_realeval.sh NAME [eval-real args...]
set -uo pipefail
name=$1; shift
s=${STASH:-/tmp/train}
dest=${OUT:-/tmp/real}/$name
teachers=${TEACHERS:-none}
[ "$teachers" = none ] || teachers=$(echo "$teachers" | tr ',' '\n' | sed "s|^|$s/|; s|$|.safetensors|" | paste -sd,)
PYTHONUNBUFFERED=1 python3 -m gendrpix_video.training.realeval --set "$s/realinput.npz" \
  --niqe-model "$s/niqe_pris_params.npz" --teachers "$teachers" --device "${DEVICE:-cuda}" --out "$dest" "$@" \
  2> "/tmp/realeval_$name.log"  # partial.json in the out folder after each chain
rc=$?
tail -n 3 "/tmp/realeval_$name.log"
exit $rc
