#!/usr/bin/env bash
# Scale-out rows (issue 15), each against its baseline in the same run:
#   1. the kernel floor and one node at CLIENTS clients (10 ms tick);
#   2. NODES nodes (examples/cluster: Redis feed, PostgreSQL keys) with
#      CLIENTS clients each, one load generator per node, at once;
#   3. failover: KILLS times, SIGKILL the lease holder while a client on
#      another node watches; the longest pause between two ticks it saw;
#   4. (HOLD_NODES > 0) connections held across HOLD_NODES nodes at a 1 s
#      tick, HOLD_PER_NODE clients each, every client on its node directly.
#
#   scripts/cluster_bench.sh                               # 1-3
#   HOLD_NODES=6 HOLD_PER_NODE=16500 SKIP_FANOUT=1 KILLS=0 scripts/cluster_bench.sh
#
# Needs redis-server, postgresql (and haproxy for the proxy the cluster also
# starts). Raw lines go to benches/cluster_results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-1000}
NODES=${NODES:-3}
KILLS=${KILLS:-10}
DURATION=${DURATION:-10}
HOLD_NODES=${HOLD_NODES:-0}
HOLD_PER_NODE=${HOLD_PER_NODE:-16000}
shared=${SHARED:-../shared}

cargo build --release --bin rippy
cargo build --release -p rippy-load
cargo build --release --manifest-path "$shared/bench/wsfloor/Cargo.toml"
floor_bin="$shared/bench/wsfloor/target/release/wsfloor"
load=target/release/rippy-load
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
# shellcheck source=scripts/server.sh
. scripts/server.sh
# shellcheck source=examples/cluster/cluster.sh
. examples/cluster/cluster.sh
trap 'stop_server; cluster_stop; rm -rf "$work"' EXIT
field() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }
results=benches/cluster_results.txt
echo "# $(date -u +%FT%TZ) CLIENTS=$CLIENTS NODES=$NODES KILLS=$KILLS HOLD_NODES=$HOLD_NODES" >> "$results"

if [ -z "${SKIP_FANOUT:-}" ]; then
  floor=$("$floor_bin" "$CLIENTS" 500)
  echo "floor $floor" | tee -a "$results"
  start_server 10ms
  single=$("$load" ws --url http://127.0.0.1:18081 --key "$key" --clients "$CLIENTS" \
           --duration "$DURATION" --server-pid "$server_pid")
  stop_server
  echo "single $single" | tee -a "$results"
  cluster_start "$NODES" 10ms
  loaders=()
  for ((i = 0; i < NODES; i++)); do
    "$load" ws --url "http://127.0.0.1:$((NODE_PORT + i))" --key "$key" --clients "$CLIENTS" \
      --duration "$DURATION" --server-pid "${node_pids[i]}" > "$work/load$i.txt" &
    loaders+=($!)
  done
  wait "${loaders[@]}"
  single_dps=$(field deliveries_per_cpu_s "$single")
  for ((i = 0; i < NODES; i++)); do
    line=$(cat "$work/load$i.txt")
    dps=$(field deliveries_per_cpu_s "$line")
    echo "node$i $line vs_single=$(python3 -c "print(f'{$dps / $single_dps:.2f}')")" | tee -a "$results"
  done
  cluster_stop
fi

if [ "$KILLS" -gt 0 ]; then
  cluster_start "$NODES" 10ms
  pauses=()
  for ((k = 0; k < KILLS; k++)); do
    leader=""
    for _ in $(seq 100); do leader=$(cluster_leader) && break; sleep 0.05; done
    watcher=$(( (leader + 1) % NODES ))
    "$load" watch --url "http://127.0.0.1:$((NODE_PORT + watcher))" --key "$key" --duration 5 > "$work/watch.txt" &
    watch_pid=$!
    sleep 1
    cluster_node_kill "$leader"
    wait "$watch_pid"
    line=$(cat "$work/watch.txt")
    echo "kill=$k leader=$leader $line" | tee -a "$results"
    pauses+=("$(field longest_pause_ms "$line")")
    cluster_node_start "$leader"
  done
  python3 - "${pauses[@]}" <<'PY' | tee -a "$results"
import statistics, sys
p = sorted(int(x) for x in sys.argv[1:])
print(f"failover kills={len(p)} median_ms={statistics.median(p):.0f} max_ms={max(p)} all_ms={p}")
PY
  cluster_stop
fi

if [ "$HOLD_NODES" -gt 0 ]; then
  cluster_start "$HOLD_NODES" 1s
  loaders=()
  for ((i = 0; i < HOLD_NODES; i++)); do
    "$load" ws --url "http://127.0.0.1:$((NODE_PORT + i))" --key "$key" --clients "$HOLD_PER_NODE" \
      --duration "$DURATION" --warmup 20 --connect-concurrency 100 --server-pid "${node_pids[i]}" > "$work/hold$i.txt" &
    loaders+=($!)
  done
  wait "${loaders[@]}"
  total=0
  for ((i = 0; i < HOLD_NODES; i++)); do
    line=$(cat "$work/hold$i.txt")
    echo "hold node$i $line" | tee -a "$results"
    total=$((total + $(field connected "$line")))
  done
  echo "hold nodes=$HOLD_NODES connected_total=$total" | tee -a "$results"
  cluster_stop
fi
