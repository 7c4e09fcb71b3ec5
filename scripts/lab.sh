#!/usr/bin/env bash
# The WAN lab (issue 12): MPyC programs x party counts x network scenarios x transports (plain TCP
# through port forwards, WireGuard hub and spoke, didmpc relayed and direct) in network namespaces behind
# emulated NATs, with a userspace WAN emulator (delay, jitter, loss, rate). Scenarios:
# lab/scenarios.toml. Writes target/lab/results.{csv,jsonl,md,png} (+ steps.json, topologies.jsonl,
# logs/ of failed runs). Needs root.
#   scripts/lab.sh [--quick] [--matrix NAME] [--profile release|dev] [--out DIR] [-- RUN_ARGS...]
#     --quick        the quick matrix (3 parties, 20/80 ms, port-restricted + symmetric; ~3-5 min)
#     --profile dev  use the debug build (CI: reuses what `cargo test` built)
#     RUN_ARGS       passed to `didmpc-lab run` (e.g. --only plain,didmpc)
set -euo pipefail
cd "$(dirname "$0")/.."
all_args="$*"
matrix=full
profile=release
out=target/lab
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) matrix=quick ;;
    --matrix) matrix="$2"; shift ;;
    --profile) profile="$2"; shift ;;
    --out) out="$2"; shift ;;
    --) shift; break ;;
    *) echo "usage: $0 [--quick] [--matrix NAME] [--profile release|dev] [--out DIR] [-- RUN_ARGS...]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "the WAN lab builds network namespaces: run it as root" >&2; exit 1; }
t0=$(date +%s)

echo "== system packages" >&2
scripts/setup-system.sh --lab
echo "== MPyC venv" >&2
PY="$(mpc/setup-venv.sh)"
echo "== build ($profile)" >&2
cargo build --locked --profile "$profile" -p didmpc -p didmpc-lab --bins
target="${CARGO_TARGET_DIR:-target}"
case "$profile" in dev|test) bin="$target/debug" ;; *) bin="$target/$profile" ;; esac

echo "== matrix $matrix" >&2
"$bin/didmpc-lab" run --matrix "$matrix" --out "$out" --didmpc "$bin/didmpc" --python "$PY" \
  --command "scripts/lab.sh${all_args:+ $all_args}" "$@"
echo "== done in $(( $(date +%s) - t0 )) s: $out/results.md, $out/results.png" >&2
