#!/usr/bin/env bash
# Copy carried training inputs out of the repo copy on the GPU machine into a folder that outlives
# the call (default /tmp/train), and join split files: with the repo at ~36 MB, the 33.6 MB teacher
# does not fit one call's 64 MiB carry, so it travels as parts over two calls
# (scripts/device_pack.py fills the calls and splits what does not fit).
# A file NAME.part.xx is appended to NAME; the join is complete once the last part has come.
# usage: [STASH=dir] scripts/device_stash.sh PATH...
set -euo pipefail
dest=${STASH:-/tmp/train}
mkdir -p "$dest"
for src in "$@"; do
  name=$(basename "$src")
  if [[ $name == *.part.* ]]; then
    # parts arrive in name order (aa, ab, ...), one call or several; never append one twice
    [ -e "$dest/.joined.$name" ] || { cat "$src" >> "$dest/${name%.part.*}"; touch "$dest/.joined.$name"; }
  else
    cp -r "$src" "$dest/"
  fi
done
ls -la "$dest"
