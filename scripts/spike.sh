#!/usr/bin/env bash
# Memory after a spike: the server's RSS before N clients connect, at the
# peak, and each second after the last one has left (rippy-load ws exits:
# every client leaves at once). Target: within 25 % of the pre-spike RSS
# 10 s after the last leave.
#
#   scripts/spike.sh                 # N = 1000 5000 19000
#   BIN_DIR=/path/to/release scripts/spike.sh 1000   # another build
#
# The pre-spike figure is taken SETTLE seconds (default 35) after start, so
# the ticker's history (3,000 ticks: 30 s at 10 ms) is already full.
# Up to 2,000 clients tick every 10 ms, more once a second (as in bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${*:-1000 5000 19000}
# shellcheck source=scripts/server.sh
. scripts/server.sh
release_bins
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
trap 'stop_server; rm -rf "$work"' EXIT
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
field() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

for n in $COUNTS; do
  tick=10ms
  [ "$n" -gt 2000 ] && tick=1s
  start_server "$tick" "$bin"
  sleep "${SETTLE:-35}"
  before=$(rss)
  line=$("$bin/rippy-load" ws --url http://127.0.0.1:18081 --key "$key" --clients "$n" \
         --duration 5 --warmup 1 --server-pid "$server_pid")
  peak=$(field server_rss_kib "$line")
  samples=()
  for _ in $(seq 15); do
    sleep 1
    samples+=("$(rss)")
  done
  after=${samples[9]}
  echo "mode=spike clients=$n tick=$tick gaps=$(field gaps "$line") rss_before_kib=$before rss_peak_kib=$peak rss_after_10s_kib=$after after_vs_before=$(python3 -c "print(f'{$after / $before:.2f}')") rss_each_s_kib=$(IFS=,; echo "${samples[*]}")"
  grep -o 'memory returned.*' "$work/server.log" || true
  stop_server
done
