# Sourced by the benchmark scripts: one ticker server on 127.0.0.1:18081
# with its data in "$work" (which the caller creates and removes).
#
#   start_server [tick] [bin dir]   # tick default 10ms, bin dir target/release
#                                   # (RIPPY_WRAP: a command to run it under)
#   stop_server
# start_server sets $server_pid and $key (the demo API key).
#
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

release_bins() {
  bin=${BIN_DIR:-target/release}
  if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin rippy
    cargo build --release -p rippy-load
  fi
}
