#!/usr/bin/env bash
# The whole test suite, as CI runs it (DIDMPC_FUZZ=1 also runs every fuzz target briefly). Installs what it needs (Rust components,
# system packages, the pinned Python venvs) and fails loudly when something cannot run. Needs root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

step "toolchain"
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true
command -v python3 >/dev/null || { echo "python3 is required (the interop tests run PyPI didcomm)"; exit 1; }

step "system packages (nftables, iproute2, ethtool, wireguard-go/-tools, openssl, python3-venv, nodejs, npm, chromium, chromium-driver)"
scripts/setup-system.sh --tests
# The NAT lab tests build network namespaces: they need root and fail loudly without it.
[ "$(id -u)" = 0 ] || { echo "the test suite needs root (the NAT lab builds network namespaces)"; exit 1; }

step "python venvs and npm packages (didcomm, siwe + eth-account, didkit, @digitalbazaar/vc oracles; ethers for the browser tests' wallet; pinned MPyC)"
tests/interop/python/setup-venv.sh >/dev/null
tests/interop/siwe/setup-venv.sh >/dev/null
tests/interop/didkit/setup-venv.sh >/dev/null
tests/interop/dbvc/setup.sh >/dev/null
tests/browser/setup.sh >/dev/null
# The lobby's browser tests fail (never skip) when Chromium cannot run: check it here first.
profile="$(mktemp -d)"
/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --user-data-dir="$profile" --dump-dom about:blank >/dev/null 2>&1 ||
  { rm -rf "$profile"; echo "headless Chromium does not run here (the lobby browser tests need it)"; exit 1; }
rm -rf "$profile"
mpc/setup-venv.sh >/dev/null

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked --no-fail-fast

# The WAN lab's quick matrix (issue 12): every transport on emulated 20/80 ms links behind NATs,
# each run's MPC result checked against plain TCP's. Reuses the debug binaries the tests built.
step "WAN lab, quick matrix"
scripts/lab.sh --quick --profile dev

# The fuzz targets build with instrumentation (a long first build); run them on request.
if [ "${DIDMPC_FUZZ:-0}" = 1 ]; then
  step "fuzz run"
  FUZZ_SECONDS="${FUZZ_SECONDS:-20}" fuzz/run.sh
fi

step "all passed"
