#!/usr/bin/env bash
# Create (or reuse) the Python venv with MPyC for didmpc: venv-mpyc in the didmpc cache
# (${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/didmpc}), pinned by
# requirements-mpyc.txt next to this script; base interpreter $DIDMPC_PYTHON, default
# python3 (>= 3.10, with the venv module: apt-get install python3-venv).
# The only line on stdout is the venv's python path:  PY="$(mpc/setup-venv.sh)".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE_PY="${DIDMPC_PYTHON:-python3}"
command -v "$BASE_PY" >/dev/null 2>&1 || { echo "[setup-venv-mpyc] no $BASE_PY on PATH" >&2; exit 1; }
if ! "$BASE_PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "[setup-venv-mpyc] $BASE_PY is $("$BASE_PY" -V 2>&1); mpyc 0.11 needs Python >= 3.10" >&2
  exit 1
fi
# Importing mpyc.runtime also runs mpyc's argument parsing and runtime setup, so it is a
# real smoke test of the install.
exec "$HERE/../scripts/pinned-venv.sh" mpyc "$HERE/requirements-mpyc.txt" \
  'import mpyc, mpyc.runtime; assert mpyc.__version__ == "0.11", mpyc.__version__'
