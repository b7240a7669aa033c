#!/usr/bin/env bash
# Soak: MINUTES (default 30) of churn (connect, tick, leave, half of them by
# cutting TCP) beside STEADY (default 500) clients that stay, against one
# server at a 10 ms tick. Every minute: the server's RSS, its handler
# processes and open sockets, into benches/soak.csv; then benches/soak.png.
#
#   scripts/soak.sh                 # 30 minutes
#   MINUTES=5 scripts/soak.sh       # a short one
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30}
STEADY=${STEADY:-500}
# shellcheck source=scripts/server.sh
. scripts/server.sh
release_bins
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; stop_server; rm -rf "$work"' EXIT
metric() { curl -s http://127.0.0.1:18081/metrics | awk -v m="$1" '$1 == m {print $2}'; }
sample() {
  local rss handlers sockets
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")
  handlers=$(metric 'rippy_processes{entry="app:ws_handler"}')
  sockets=$(metric rippy_ws_connections)
  echo "$1,$rss,${handlers:-0},${sockets:-0}" >> benches/soak.csv
}

start_server 10ms "$bin"
echo "minute,rss_kib,handlers,sockets" > benches/soak.csv
sample 0
seconds=$((MINUTES * 60))
"$bin/rippy-load" ws --url http://127.0.0.1:18081 --key "$key" --clients "$STEADY" \
  --duration "$seconds" --warmup 0 > "$work/steady.txt" &
pids+=($!)
(
  end=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$end" ]; do
    "$bin/rippy-load" churn --url http://127.0.0.1:18081 --key "$key" --cycles 2000 --concurrency 50 >> "$work/churn.txt" || true
  done
) &
pids+=($!)
for m in $(seq "$MINUTES"); do
  sleep 60
  sample "$m"
done
wait "${pids[@]}" || true
pids=()
echo "steady: $(cat "$work/steady.txt")"
echo "churn: $(grep -c mode=churn "$work/churn.txt") runs of 2,000 cycles, $(grep -o 'failed=[0-9]*' "$work/churn.txt" | awk -F= '{s += $2} END {print s + 0}') failed"
column -s, -t < benches/soak.csv
python3 scripts/soak_chart.py benches/soak.csv benches/soak.png
