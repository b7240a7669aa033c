#!/usr/bin/env bash
# The Rust and the Lua editions of the ticker side by side, same run:
# 1,000 clients (CLIENTS) at a 10 ms tick against each, after the kernel
# floor at the same count; prints each edition's line and the Lua/Rust
# ratio of deliveries per server CPU-second.
#
#   scripts/editions.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
CLIENTS=${CLIENTS:-1000}
DURATION=${DURATION:-10}
shared=${SHARED:-../shared}
bin=${BIN_DIR:-target/release}
[ -n "${BIN_DIR:-}" ] || { cargo build --release --bin rippy; cargo build --release -p rippy-load; }
cargo build -q --release --manifest-path "$shared/bench/wsfloor/Cargo.toml"
floor_bin="$shared/bench/wsfloor/target/release/wsfloor"
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
# shellcheck source=scripts/server.sh
. scripts/server.sh
trap 'stop_server; rm -rf "$work"' EXIT

# The Lua edition on 127.0.0.1:18081 with its data in $work; its demo key
# comes from its log (Lua code writes no files).
start_lua_server() {
  rm -rf "$work/data" "$work/lua"
  mkdir -p "$work/data" "$work/lua"
  cp examples/lua-ticker/*.lua "$work/lua/"
  sed -e "s#./data/#$work/data/#" \
      -e "s#../../public#$PWD/public#" \
      -e "s#127.0.0.1:8083#127.0.0.1:18081#" \
      -e "s#max_failures: 20#max_failures: 1000000#" \
      examples/lua-ticker/_index.yaml > "$work/lua/_index.yaml"
  RUST_LOG=info "$bin/rippy" run "$work/lua/_index.yaml" 2>"$work/server.log" &
  server_pid=$!
  key=""
  for _ in $(seq 200); do
    key=$(grep -o 'api_key=[^ ]*' "$work/server.log" | head -1 | cut -d= -f2 || true)
    [ -n "$key" ] && curl -sf -o /dev/null http://127.0.0.1:18081/healthz && break
    sleep 0.05
  done
}

field() { grep -o "$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

for round in $(seq "$rounds"); do
  floor=$("$floor_bin" "$CLIENTS" 500)
  fw=$(field writes_per_cpu_s "$floor")
  start_server 10ms "$bin"
  rust=$("$bin/rippy-load" ws --url http://127.0.0.1:18081 --key "$key" --clients "$CLIENTS" \
         --duration "$DURATION" --server-pid "$server_pid" --threads 1)
  stop_server
  start_lua_server
  lua=$("$bin/rippy-load" ws --url http://127.0.0.1:18081 --key "$key" --clients "$CLIENTS" \
        --duration "$DURATION" --server-pid "$server_pid" --threads 1)
  stop_server
  r=$(field deliveries_per_cpu_s "$rust")
  l=$(field deliveries_per_cpu_s "$lua")
  echo "round=$round edition=rust floor_writes_per_cpu_s=$fw $rust"
  echo "round=$round edition=lua floor_writes_per_cpu_s=$fw $lua"
  echo "round=$round lua_over_rust=$(python3 -c "print(f'{$l / $r:.2f}')") rust_over_floor=$(python3 -c "print(f'{$r / $fw:.2f}')") lua_over_floor=$(python3 -c "print(f'{$l / $fw:.2f}')")"
done
