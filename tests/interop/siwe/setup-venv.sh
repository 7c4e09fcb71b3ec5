#!/usr/bin/env bash
# Create (or reuse) the Python venv for the SIWE interop oracle (PyPI siwe + eth-account).
#
#   venv: ${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/didmpc}/venv-siwe
#   pins: requirements-siwe.txt next to this script (full resolved set, `==`)
#
# All progress goes to stderr; the last (and only) line on stdout is the
# venv's python path.  Reuse is fast: a marker file in the venv holds the hash
# of the requirements file (+ base interpreter version) and a quick import
# check confirms the venv still works.  Concurrent callers are serialised with
# flock when available.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements-siwe.txt"
CACHE_DIR="${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/didmpc}"
VENV="$CACHE_DIR/venv-siwe"
VPY="$VENV/bin/python"
MARKER="$VENV/.didmpc-requirements.sha256"
BASE_PY="${DIDMPC_PYTHON:-python3}"

log() { printf '[setup-venv] %s\n' "$*" >&2; }

command -v "$BASE_PY" >/dev/null 2>&1 || { log "no $BASE_PY on PATH"; exit 1; }
[ -f "$REQ" ] || { log "missing $REQ"; exit 1; }

want_hash="$( { cat "$REQ"; "$BASE_PY" -c 'import sys; print(sys.version_info[:2])'; } | sha256sum | cut -d' ' -f1)"

IMPORT_CHECK='import siwe, eth_account; siwe.SiweMessage'

venv_ok() {
  [ -x "$VPY" ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want_hash" ] &&
    "$VPY" -c "$IMPORT_CHECK" >/dev/null 2>&1
}

if venv_ok; then
  printf '%s\n' "$VPY"
  exit 0
fi

mkdir -p "$CACHE_DIR"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/venv-siwe.lock"
  flock 9
  if venv_ok; then  # someone else built it while we waited
    printf '%s\n' "$VPY"
    exit 0
  fi
fi

log "creating $VENV"
rm -rf "$VENV"
"$BASE_PY" -m venv "$VENV" >&2
# Every package is pinned in REQ, so install exactly that set and nothing else.
"$VPY" -m pip install --disable-pip-version-check --no-input -q --no-deps -r "$REQ" >&2
"$VPY" -m pip check >&2
if ! "$VPY" -c "$IMPORT_CHECK" >/dev/null 2>&1; then
  log "import check failed:"
  "$VPY" -c "$IMPORT_CHECK" >&2 || true
  exit 1
fi
printf '%s\n' "$want_hash" >"$MARKER"
log "ready"
printf '%s\n' "$VPY"
