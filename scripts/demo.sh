#!/usr/bin/env bash
# The main job so far: a mediator on loopback and two parties behind it who know only
# each other's DIDs. Alice sends Bob DIDComm v2 messages through the mediator; Bob
# reads them from his queue, then live over a WebSocket.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=target/release/didmpc
work=$(mktemp -d)
cleanup() { kill "${mediator_pid:-}" "${follow_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$bin --home "$work/mediator" mediator serve --listen "127.0.0.1:$port" > "$work/mediator.log" 2>&1 &
mediator_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
echo "mediator: $(curl -sf "http://127.0.0.1:$port/did" | cut -c1-60)… on 127.0.0.1:$port"

alice=$($bin --home "$work/alice" init --mediator "http://127.0.0.1:$port" 2>/dev/null)
bob=$($bin --home "$work/bob" init --mediator "http://127.0.0.1:$port" 2>/dev/null)
echo "alice:    ${alice:0:60}…"
echo "bob:      ${bob:0:60}…"
echo
$bin --home "$work/alice" send --to "$bob" --text "Hello Bob, this went through the mediator, encrypted end to end."
$bin --home "$work/alice" send --to "$bob" --text "It waited in your queue until you came online."
echo
echo "bob's inbox:"
$bin --home "$work/bob" inbox | sed "s|^$alice|alice|"
echo
echo "bob follows his inbox live; alice sends again:"
$bin --home "$work/bob" inbox --follow > "$work/live.txt" 2>/dev/null &
follow_pid=$!
sleep 1
$bin --home "$work/alice" send --to "$bob" --text "And this one arrived live over the WebSocket." 2>/dev/null
for _ in $(seq 50); do [ -s "$work/live.txt" ] && break; sleep 0.1; done
sed "s|^$alice|alice|" "$work/live.txt"
