#!/usr/bin/env bash
# Test-only: install (or reuse) the pinned wallet library of the browser tests (ethers, whose
# Wallet backs the EIP-1193 provider the tests inject into Chromium) in the didmpc cache
# (${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/didmpc}/node-browser), from
# package.json + package-lock.json next to this script (`npm ci`: exactly the locked set).
# didmpc itself never serves or loads it. Needs node >= 18 and npm (Debian: apt-get install
# nodejs npm). The only line on stdout is the directory holding node_modules/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${DIDMPC_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/didmpc}"
DIR="$CACHE_DIR/node-browser"
MARKER="$DIR/.didmpc-lock.sha256"
log() { printf '[setup-browser] %s\n' "$*" >&2; }

command -v node >/dev/null 2>&1 || { log "no node on PATH (Debian: apt-get install nodejs npm)"; exit 1; }
command -v npm >/dev/null 2>&1 || { log "no npm on PATH (Debian: apt-get install npm)"; exit 1; }
node -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' ||
  { log "node $(node --version) is too old; need node >= 18"; exit 1; }

want="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
ok() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] && [ -f "$DIR/node_modules/ethers/dist/ethers.umd.min.js" ]; }
if ok; then printf '%s\n' "$DIR"; exit 0; fi

mkdir -p "$CACHE_DIR"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/node-browser.lock"
  flock 9
  if ok; then printf '%s\n' "$DIR"; exit 0; fi
fi
log "installing into $DIR"
rm -rf "$DIR"
mkdir -p "$DIR"
cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
printf '%s\n' "$want" >"$MARKER"
log "ready"
printf '%s\n' "$DIR"
