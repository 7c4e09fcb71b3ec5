#!/usr/bin/env bash
# The main job: `didmpc demo` — an embedded mediator and N parties (default 3) on loopback
# who know only each other's DIDs. The host invites the others, they join, pairwise Noise
# sessions come up through the mediator's relay, and a real MPyC program (secure statistics,
# mpc/programs/secure_stats.py) runs between them; the result and timings are printed.
# Installs what it needs: the Python venv module (Debian: python3-venv) if missing, then the
# pinned MPyC in a cached venv (first run only). Extra arguments go to `didmpc demo`
# (e.g. --parties 5 --rounds 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh --demo
cargo build --release --locked --quiet
exec target/release/didmpc demo "$@"
