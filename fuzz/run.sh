#!/usr/bin/env bash
# Builds every did-core fuzz target and runs each for FUZZ_SECONDS (default 20),
# starting from fuzz/seeds/<target> plus whatever fuzz/corpus/<target> already holds.
# Exits non-zero if any target crashes (the reproducer lands in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh                    # all targets, 20 s each
#   FUZZ_SECONDS=300 fuzz/run.sh unpack did_document
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_SANITIZER  address | none (default none: did-core is `forbid(unsafe_code)`, so the
#                   bugs to find are panics, which libFuzzer catches without a sanitizer;
#                   `address` also checks the dependencies' unsafe code, at about half the speed)
#   FUZZ_MAX_LEN    largest input libFuzzer generates, in bytes (default 16384)
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.1
ALL_TARGETS=(did_parse did_document did_peer message oob_url unpack mediator_router
    session_frame session_handshake session_packets siwe_parse mpc_descriptor vc_jwt discover_features
    relay_frame mesh_frame inbox lobby_request udp_datagram)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
max_len="${FUZZ_MAX_LEN:-16384}"
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

# cargo-fuzz passes nightly-only flags (-Z, sanitizer-coverage); the stable toolchain
# accepts them when RUSTC_BOOTSTRAP is set, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked "cargo-fuzz@${CARGO_FUZZ_VERSION}"
fi
installed="$(cargo fuzz --version 2>/dev/null | head -n1)"
if [[ "$installed" != "cargo-fuzz ${CARGO_FUZZ_VERSION}" ]]; then
    echo "note: found ${installed:-an unknown cargo-fuzz}, tested with ${CARGO_FUZZ_VERSION}" >&2
fi

build_flags=(--fuzz-dir "$here" -O --debug-assertions --sanitizer "$sanitizer")
echo "== building (sanitizer: $sanitizer)"
cargo fuzz build "${build_flags[@]}"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    mkdir -p "$corpus"
    echo "== fuzzing $t for ${seconds}s"
    status=ok
    if ! cargo fuzz run "${build_flags[@]}" "$t" "$corpus" "$here/seeds/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$logs/$t" 2>&1; then
        status=CRASHED
        failed+=("$t")
        tail -n 60 "$logs/$t"
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t" | tail -n1)"
    summary+=("$(printf '%-17s %-8s %12s execs  corpus %s files' "$t" "$status" "${execs:-?}" \
        "$(find "$corpus" -type f | wc -l)")")
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashed: ${failed[*]} (reproducers in $here/artifacts/)" >&2
    exit 1
fi
