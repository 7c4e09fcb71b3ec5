#!/usr/bin/env bash
# The main job: `didmpc demo` — an embedded mediator and N parties (default 3) on loopback
# who know only each other's DIDs. The host invites the others, they join, pairwise Noise
# sessions come up through the mediator's relay, and a real MPyC program (secure statistics,
# mpc/programs/secure_stats.py) runs between them; the result and timings are printed.
# Works from any directory. Installs what it needs: the Python venv module (Debian:
# python3-venv) if missing; the binary then makes the pinned MPyC venv in the didmpc cache
# ($DIDMPC_CACHE_DIR, else ~/.cache/didmpc) on first use. Extra arguments go to
# `didmpc demo` (e.g. --parties 5 --rounds 2). DIDMPC_BIN=PATH runs that binary instead of
# building one (the test suite uses it).
set -euo pipefail
here="$PWD"
cd "$(dirname "$0")/.."
scripts/setup-system.sh --demo
if [ -z "${DIDMPC_BIN:-}" ]; then
  cargo build --release --locked --quiet
  # Where cargo put it: CARGO_TARGET_DIR or a cargo config may move the target directory.
  target="$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  DIDMPC_BIN="$target/release/didmpc"
fi
cd "$here"  # the demo needs nothing from the source tree
exec "$DIDMPC_BIN" demo "$@"
