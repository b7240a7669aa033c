# Sourced by the benchmark scripts: one ticker server on 127.0.0.1:18081
# with its data in "$work" (which the caller creates and removes).
#
#   start_server [tick] [bin dir]   # tick default 10ms, bin dir target/release
#                                   # (RIPPY_WRAP: a command to run it under)
#   stop_server
# start_server sets $server_pid and $key (the demo API key).
#
#   split_handshakes [bin dir]      # the handshake row with a core each, into $split_line
#   release_bins                    # sets $bin: $BIN_DIR, or target/release built now

server_pid=""

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

start_server() {
  local tick=${1:-10ms} bin=${2:-target/release}
  rm -rf "$work/data"
  mkdir -p "$work/data"
  sed -e "s#./data/#$work/data/#" \
      -e "s#./public#$PWD/public#" \
      -e "s#127.0.0.1:8081#127.0.0.1:18081#" \
      -e "s#interval: \"10ms\"#interval: \"$tick\"#" \
      -e "s#max_failures: 20#max_failures: 1000000#" \
      _index.yaml > "$work/app.yaml"
  # RIPPY_WRAP runs the server under a tool (scripts/instructions.sh: valgrind).
  # shellcheck disable=SC2086
  RUST_LOG=${SERVER_LOG:-warn} ${RIPPY_WRAP:-} "$bin/rippy" run "$work/app.yaml" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq "${START_TRIES:-200}"); do
    [ -s "$work/data/demo.key" ] && curl -sf -o /dev/null http://127.0.0.1:18081/healthz && break
    sleep 0.05
  done
  key=$(tr -d '\n' < "$work/data/demo.key")
}

# The handshakes with a core each, as if server and load generator had a
# machine each: a new server on core 0 (it then runs one HTTP worker, as
# available_parallelism follows the CPU mask), the load generator on core 1;
# sets $split_line to rippy-load's line. On shared cores two workers and the
# load generator are three busy threads on two cores, and each handshake
# pays for that sharing. DURATION seconds (10). Not for `$(...)`: the
# caller's EXIT trap must see $server_pid, and set -e the load's failure.
split_handshakes() {
  local bin=${1:-target/release}
  RIPPY_WRAP="taskset -c 0" start_server 10ms "$bin"
  split_line=$(taskset -c 1 "$bin/rippy-load" handshake --concurrency 32 --url http://127.0.0.1:18081 \
         --key "$key" --duration "${DURATION:-10}" --server-pid "$server_pid")
  stop_server
}

release_bins() {
  bin=${BIN_DIR:-target/release}
  if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin rippy
    cargo build --release -p rippy-load
  fi
}
