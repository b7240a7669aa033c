#!/usr/bin/env bash
# User-space instructions per operation, counted by callgrind (valgrind):
# unlike CPU time, the count does not move with the machine's load, so a
# small change can be told from noise. Needs valgrind (apt-get install
# valgrind); not part of CI.
#
#   scripts/instructions.sh handshake [bin dir]  # per authenticated handshake
#   scripts/instructions.sh token [bin dir]      # per POST /auth/token
#   scripts/instructions.sh gateway [bin dir]    # per gateway request (open, JWT)
#   scripts/instructions.sh count FILE N         # a callgrind dump's count / N
#
# Every thread is counted, from a warm server (counters zeroed after a
# warm-up) to the end of the run. `memset` is left out: valgrind counts each
# byte of a `rep stosb` as an instruction, which on hardware is one.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?handshake, token, gateway or count}

count() {
  local file=$1 n=$2 total memset
  total=$(awk '/^summary:/ {print $2}' "$file")
  memset=$(callgrind_annotate --inclusive=no --threshold=100 "$file" 2>/dev/null |
    awk '/memset/ {gsub(",", "", $1); s += $1} END {print s + 0}')
  echo $(( (total - memset) / (n > 0 ? n : 1) ))
}

case $what in
  count) count "$2" "$3" ;;
  gateway)
    CALLGRIND=1 BIN_DIR=${2:-target/release} scripts/gateway_bench.sh "${SECS:-5}" 32 ;;
  handshake | token)
    bin=${2:-target/release}
    if [ "$what" = handshake ]; then
      mode=(handshake --concurrency 32) field=handshakes
    else
      mode=(token --connections 64) field=requests
    fi
    work=$(mktemp -d)
    # shellcheck source=scripts/server.sh
    . scripts/server.sh
    trap 'stop_server; rm -rf "$work"' EXIT
    # A tick a minute: the ticker's broadcasts stay out of the count.
    RIPPY_WRAP="valgrind --tool=callgrind --callgrind-out-file=$work/cg.%p" START_TRIES=600 \
      start_server 60s "$bin"
    load() { "$bin/rippy-load" "${mode[@]}" --url http://127.0.0.1:18081 --key "$key" --duration "$1"; }
    load 3 >/dev/null
    callgrind_control -z "$server_pid" >/dev/null
    line=$(load "${SECS:-5}")
    callgrind_control -d "$server_pid" >/dev/null
    n=$(grep -o " $field=[0-9]*" <<<" $line" | cut -d= -f2)
    echo "$line instructions_per_op=$(count "$(ls -t "$work"/cg.*.[0-9]* | head -1)" "$n")"
    ;;
  *) echo "unknown: $what (handshake, token, gateway or count)" >&2; exit 2 ;;
esac
