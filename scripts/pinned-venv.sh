#!/usr/bin/env bash
# Create (or reuse) a pinned Python venv in the didmpc cache.
#
#   usage: scripts/pinned-venv.sh NAME REQUIREMENTS IMPORT_CHECK
#   venv:  ${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/didmpc}/venv-NAME
#   pins:  REQUIREMENTS holds the full resolved set (`==`), installed with --no-deps
#   base interpreter: $DIDMPC_PYTHON, default python3 (needs the venv module; on
#   Debian/Ubuntu: apt-get install python3-venv)
#
# Progress goes to stderr; the only line on stdout is the venv's python path, so
# callers can do  PY="$(scripts/pinned-venv.sh ...)".  Reuse is cheap: a marker file
# in the venv holds the hash of the requirements file plus the base interpreter's
# version, and IMPORT_CHECK (Python code) confirms the venv still works.
# Concurrent callers are serialised with flock when it is available.
set -euo pipefail

NAME="$1"
REQ="$2"
IMPORT_CHECK="$3"
CACHE_DIR="${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/didmpc}"
VENV="$CACHE_DIR/venv-$NAME"
VPY="$VENV/bin/python"
MARKER="$VENV/.didmpc-requirements.sha256"
BASE_PY="${DIDMPC_PYTHON:-python3}"

log() { printf '[setup-venv-%s] %s\n' "$NAME" "$*" >&2; }

command -v "$BASE_PY" >/dev/null 2>&1 || { log "no $BASE_PY on PATH"; exit 1; }
[ -f "$REQ" ] || { log "missing $REQ"; exit 1; }

want_hash="$( { cat "$REQ"; "$BASE_PY" -c 'import sys; print(sys.version_info[:2])'; } | sha256sum | cut -d' ' -f1)"

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
  exec 9>"$CACHE_DIR/venv-$NAME.lock"
  flock 9
  if venv_ok; then  # someone else built it while we waited
    printf '%s\n' "$VPY"
    exit 0
  fi
fi

if ! "$BASE_PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  log "'$BASE_PY -m venv' is not usable (the venv/ensurepip modules are missing)."
  log "On Debian/Ubuntu install it with:  apt-get install python3-venv"
  exit 1
fi

log "creating $VENV"
rm -rf "$VENV"
if ! "$BASE_PY" -m venv "$VENV" >&2; then
  log "'$BASE_PY -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"
  rm -rf "$VENV"
  exit 1
fi
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
