#!/usr/bin/env bash
# One mediator served by three instances on one Redis behind HAProxy, on this machine:
#
#   mediator/cluster/run.sh            # Redis :6390, instances :7081-7083, HAProxy :7080
#   DIDMPC=target/release/didmpc PUBLIC_URL=https://m.example.com mediator/cluster/run.sh
#
# Parties use the public URL (default http://127.0.0.1:7080). State (the shared keystore, the
# HAProxy config, Redis' directory) lives in $CLUSTER_DIR (default ./mediator-cluster).
# Ctrl-C stops everything. Needs redis-server and haproxy (scripts/setup-system.sh --cluster).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
didmpc="${DIDMPC:-didmpc}"
dir="${CLUSTER_DIR:-$PWD/mediator-cluster}"
redis_port="${REDIS_PORT:-6390}"
lb_port="${LB_PORT:-7080}"
ports=(${INSTANCE_PORTS:-7081 7082 7083})
public="${PUBLIC_URL:-http://127.0.0.1:$lb_port}"
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$dir/redis"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on :$1" >&2; exit 1; }

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --save "" >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"

# The instances share one identity: the same keystore ($dir/mediator.db.keys).
for p in "${ports[@]}"; do
  "$didmpc" mediator serve --config "$here/instance.toml" --listen "127.0.0.1:$p" --db "$dir/mediator.db" \
    --store "redis://127.0.0.1:$redis_port/0" --public-url "$public" >"$dir/instance-$p.log" 2>&1 &
  pids+=($!)
  wait_port "$p"
done

servers=""
for i in "${!ports[@]}"; do servers+="  server i$i 127.0.0.1:${ports[$i]} check inter 1s fall 2 rise 1"$'\n'; done
sed -e "s|@LB_PORT@|$lb_port|" -e "/@SERVERS@/{r /dev/stdin" -e "d}" "$here/haproxy.cfg" <<<"$servers" >"$dir/haproxy.cfg"
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
pids+=($!)
wait_port "$lb_port"

echo "mediator cluster: $public (instances ${ports[*]}, Redis :$redis_port); logs in $dir"
curl -fsS "http://127.0.0.1:$lb_port/invitation" >/dev/null 2>&1 && echo "invitation: http://127.0.0.1:$lb_port/invitation"
wait -n "${pids[@]}"
echo "a process of the cluster exited; stopping" >&2
