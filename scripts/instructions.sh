#!/usr/bin/env bash
# User-space instructions per operation, counted by callgrind (valgrind):
# unlike CPU time, the count does not move with the machine's load, so a
# small change can be told from noise. Needs valgrind (apt-get install
# valgrind); not part of CI.
#
#   scripts/instructions.sh handshake [bin dir]  # per authenticated handshake
#   scripts/instructions.sh token [bin dir]      # per POST /auth/token
#   scripts/instructions.sh gateway [bin dir]    # per gateway request (open, JWT)
#   scripts/instructions.sh fanout [bin dir]     # per frame delivered to a client
#   scripts/instructions.sh count FILE N         # a callgrind dump's count / N
#
# CG_OUT=FILE keeps the measured dump (for callgrind_annotate).
#
# Every thread is counted, from a warm server (counters zeroed after a
# warm-up) to the end of the run. `memset` is left out: valgrind counts each
# byte of a `rep stosb` as an instruction, which on hardware is one.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?handshake, token, gateway, fanout or count}

count() {
  local file=$1 n=$2 total memset
  total=$(awk '/^summary:/ {print $2}' "$file")
  # The function table only (`--auto=no`): with source annotation on, the
  # calls into memset are listed a second time under their callers' lines.
  memset=$(callgrind_annotate --auto=no --inclusive=no --threshold=100 "$file" 2>/dev/null |
    awk '$0 ~ /:[_a-z0-9]*memset[_a-z0-9]* / {gsub(",", "", $1); s += $1} END {print s + 0}')
  echo $(( (total - memset) / (n > 0 ? n : 1) ))
}

# The newest dump in $work, copied to $CG_OUT when set.
dumped() {
  local file
  file=$(ls -t "$work"/cg.*.[0-9]* | head -1)
  [ -z "${CG_OUT:-}" ] || cp "$file" "$CG_OUT"
  echo "$file"
}

metric() { curl -sf http://127.0.0.1:18081/metrics | awk -v m="$1" '$1 == m {print $2}'; }

# Starts the ticker server (tick $1, binaries in $2) under callgrind, its
# dumps and data in a new $work; on exit the load ($load_pid, if any
# runs), the server and $work go.
load_pid=""
callgrind_server() {
  work=$(mktemp -d)
  # shellcheck source=scripts/server.sh
  . scripts/server.sh
  trap '[ -z "$load_pid" ] || kill "$load_pid" 2>/dev/null || true; stop_server; rm -rf "$work"' EXIT
  RIPPY_WRAP="valgrind --tool=callgrind --callgrind-out-file=$work/cg.%p" START_TRIES=600 \
    start_server "$1" "$2"
}

case $what in
  count) count "$2" "$3" ;;
  fanout)
    # CLIENTS (1000) clients on a 1 s tick: the broadcast's cost per frame,
    # the ticker's push, the hubs' writes, with no other traffic.
    bin=${2:-target/release} clients=${CLIENTS:-1000}
    callgrind_server 1s "$bin"
    "$bin/rippy-load" ws --url http://127.0.0.1:18081 --key "$key" --clients "$clients" \
      --duration 3600 --warmup 0 >/dev/null 2>&1 &
    load_pid=$!
    for _ in $(seq 600); do
      [ "$(metric rippy_ws_connections)" = "$clients" ] && break
      sleep 0.5
    done
    sleep 3
    before=$(metric rippy_ws_frames_sent_total)
    callgrind_control -z "$server_pid" >/dev/null 2>&1
    sleep "${SECS:-20}"
    callgrind_control -d "$server_pid" >/dev/null 2>&1
    after=$(metric rippy_ws_frames_sent_total)
    n=$((after - before))
    echo "mode=fanout clients=$clients frames=$n instructions_per_frame=$(count "$(dumped)" "$n")"
    ;;
  gateway)
    CALLGRIND=1 BIN_DIR=${2:-target/release} scripts/gateway_bench.sh "${SECS:-5}" 32 ;;
  handshake | token)
    bin=${2:-target/release}
    if [ "$what" = handshake ]; then
      mode=(handshake --concurrency 32) field=handshakes
    else
      mode=(token --connections 64) field=requests
    fi
    # A tick a minute: the ticker's broadcasts stay out of the count.
    callgrind_server 60s "$bin"
    load() { "$bin/rippy-load" "${mode[@]}" --url http://127.0.0.1:18081 --key "$key" --duration "$1"; }
    load 3 >/dev/null
    callgrind_control -z "$server_pid" >/dev/null 2>&1
    line=$(load "${SECS:-5}")
    callgrind_control -d "$server_pid" >/dev/null 2>&1
    n=$(grep -o " $field=[0-9]*" <<<" $line" | cut -d= -f2)
    echo "$line instructions_per_op=$(count "$(dumped)" "$n")"
    ;;
  *) echo "unknown: $what (handshake, token, gateway, fanout or count)" >&2; exit 2 ;;
esac
