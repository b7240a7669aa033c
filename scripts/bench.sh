#!/usr/bin/env bash
# Fan-out benchmark, end to end: build, kernel floor, server, every mode, stop.
#
#   scripts/bench.sh                    # the whole table (about 15 minutes)
#   COUNTS="1000 2000" scripts/bench.sh # a subset
#   APPEND=1 COUNTS="19000" ...         # add rows to the existing results
#
# Writes benches/results.csv, benches/results.txt (the raw key=value lines)
# and benches/fanout.png (scripts/chart.py). Every fan-out figure is reported
# beside wsfloor's writes per CPU-second measured at the same client count in
# the same run. Client counts up to 2,000 tick every 10 ms; larger ones tick
# once a second (the 19,000-connection target is stated for a 1 s tick).
# wsfloor holds both ends of every socket in one process, so under this
# machine's 20,000-descriptor limit it measures at most 9,000 sockets: larger
# counts are compared with the floor at 9,000 (the floor_sockets column).
# Each count also runs the bare broadcaster (`rippy-load broadcast`, see
# bare() below; BARE=0 skips it): the bare_* columns are what a server that
# only writes reaches at that count and tick, latency included.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-"100 500 1000 2000 5000 10000 19000"}
DURATION=${DURATION:-10}
FLOOR_ROUNDS=${FLOOR_ROUNDS:-500}
shared=${SHARED:-../shared}

cargo build --release --bin rippy
cargo build --release -p rippy-load
cargo build --release --manifest-path "$shared/bench/wsfloor/Cargo.toml"
floor_bin="$shared/bench/wsfloor/target/release/wsfloor"
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
# shellcheck source=scripts/server.sh
. scripts/server.sh
bare_pid=""
trap 'stop_server; [ -z "$bare_pid" ] || kill "$bare_pid" 2>/dev/null; rm -rf "$work"' EXIT

# The bare broadcaster at $1 clients and a $2 ms tick: `rippy-load
# broadcast`, a server that does nothing but the writes (one per client
# per tick, from one thread per core, as rippy's hubs), read by the same
# client as rippy. Its p99 is what the machine allows any server.
bare() {
  "$bin_load" broadcast --listen 127.0.0.1:18090 --clients "$1" --tick-ms "$2" \
    --senders "$(nproc)" 2>"$work/bare.log" &
  bare_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/bare.log" 2>/dev/null && break; sleep 0.05; done
  "$bin_load" ws --raw --key - --url http://127.0.0.1:18090 --clients "$1" \
    --duration "$DURATION" --server-pid "$bare_pid" --threads 1
  kill "$bare_pid" 2>/dev/null || true
  wait "$bare_pid" 2>/dev/null || true
  bare_pid=""
}
bin_load=target/release/rippy-load

field() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

mkdir -p benches
results=benches/results.txt
if [ -z "${APPEND:-}" ]; then
  : > "$results"
  echo "clients,tick,floor_sockets,floor_writes_per_cpu_s,deliveries_per_cpu_s,ratio,ticks_per_s_per_client,gaps,p50_ms,p99_ms,max_ms,rss_per_conn_kib,bare_deliveries_per_cpu_s,bare_ticks_per_s_per_client,bare_p50_ms,bare_p99_ms" > benches/results.csv
fi
for n in $COUNTS; do
  tick=10ms tick_ms=10
  [ "$n" -gt 2000 ] && tick=1s tick_ms=1000
  floor_n=$(( n > 9000 ? 9000 : n ))
  floor=$("$floor_bin" "$floor_n" "$FLOOR_ROUNDS")
  echo "floor $floor" | tee -a "$results"
  start_server "$tick"
  line=$(target/release/rippy-load ws --url http://127.0.0.1:18081 --key "$key" --clients "$n" \
         --duration "$DURATION" --server-pid "$server_pid" --threads 1)
  stop_server
  echo "tick=$tick $line" | tee -a "$results"
  bare_line=""
  if [ "${BARE:-1}" != 0 ]; then
    # Not in a subshell: the trap must see $bare_pid if the run is cut short.
    bare "$n" "$tick_ms" > "$work/bare.out"
    bare_line=$(cat "$work/bare.out")
    echo "bare tick=$tick $bare_line" | tee -a "$results"
  fi
  fw=$(field writes_per_cpu_s "$floor")
  dps=$(field deliveries_per_cpu_s "$line")
  ratio=$(python3 -c "print(f'{$dps / $fw:.2f}')")
  echo "$n,$tick,$floor_n,$fw,$dps,$ratio,$(field ticks_per_s_per_client "$line"),$(field gaps "$line"),$(field p50_ms "$line"),$(field p99_ms "$line"),$(field max_ms "$line"),$(field rss_per_conn_kib "$line"),$(field deliveries_per_cpu_s "$bare_line"),$(field ticks_per_s_per_client "$bare_line"),$(field p50_ms "$bare_line"),$(field p99_ms "$bare_line")" >> benches/results.csv
done

[ -n "${SKIP_MODES:-}" ] && { column -s, -t < benches/results.csv; exit 0; }
start_server 10ms
for mode in "token --connections 64" "token --connections 64 --path /healthz" "handshake --concurrency 32"; do
  # shellcheck disable=SC2086
  line=$(target/release/rippy-load $mode --url http://127.0.0.1:18081 --key "$key" --duration "$DURATION" --server-pid "$server_pid")
  echo "$line" | tee -a "$results"
done
stop_server
# The handshakes again with a core each (split_handshakes in scripts/server.sh).
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  split_handshakes
  echo "cores=split $split_line" | tee -a "$results"
fi

# Churn at full scale: 10,000 connect/disconnect cycles; then the counters
# must be back at 0 (the test in tests/app runs 1,300 on the same code path).
start_server 10ms
# A warm-up pass first: allocator arenas and pools grow once; RSS is then
# compared before and after the measured 10,000 cycles.
target/release/rippy-load churn --url http://127.0.0.1:18081 --key "$key" --cycles 3000 >/dev/null
line=$(target/release/rippy-load churn --url http://127.0.0.1:18081 --key "$key" --cycles 10000 --server-pid "$server_pid")
left=$(curl -s http://127.0.0.1:18081/metrics | grep -E '^(rippy_processes\{entry="app:ws_handler"\}|rippy_ws_connections|rippy_ticker_subscribers) ' | awk '{s+=$2} END {print s+0}')
echo "$line left_after_churn=$left" | tee -a "$results"

# Graceful shutdown with 1,000 open sockets: SIGTERM, then time to exit.
target/release/rippy-load ws --url http://127.0.0.1:18081 --key "$key" --clients 1000 --duration 30 --warmup 0 >/dev/null &
load_pid=$!
for _ in $(seq 200); do
  [ "$(curl -s http://127.0.0.1:18081/metrics | awk '/^rippy_ws_connections /{print $2}')" = "1000" ] && break
  sleep 0.1
done
t0=$(date +%s.%N)
kill -TERM "$server_pid"
wait "$server_pid"; code=$?
t1=$(date +%s.%N)
server_pid=""
kill "$load_pid" 2>/dev/null || true
echo "mode=shutdown sockets=1000 exit_code=$code seconds=$(python3 -c "print(f'{$t1 - $t0:.2f}')")" | tee -a "$results"

column -s, -t < benches/results.csv
python3 scripts/chart.py benches/results.csv benches/fanout.png
