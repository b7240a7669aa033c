#!/usr/bin/env bash
# Before/after on the same machine in the same run: the rows a change can
# touch, for two builds, interleaved (A, B, A, B, ...) so drift hits both.
#
#   scripts/ab.sh BEFORE_BIN_DIR AFTER_BIN_DIR [rounds]
#
# Each *_BIN_DIR holds release `rippy` and `rippy-load` (e.g. a worktree's
# target/release). Rows: 1,000 clients at a 10 ms tick against the kernel
# floor measured just before, token exchanges (64 connections) and
# authenticated handshakes (32 at a time), on the shared cores and again
# with a core each (server on core 0, load generator on core 1, tagged
# cores=split; as in scripts/bench.sh). Prints one key=value line per
# measurement, tagged build=before|after.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1
after=$2
rounds=${3:-2}
DURATION=${DURATION:-10}
shared=${SHARED:-../shared}
cargo build -q --release --manifest-path "$shared/bench/wsfloor/Cargo.toml"
floor_bin="$shared/bench/wsfloor/target/release/wsfloor"
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
# shellcheck source=scripts/server.sh
. scripts/server.sh
trap 'stop_server; rm -rf "$work"' EXIT

for round in $(seq "$rounds"); do
  for build in before after; do
    dir=$before
    [ "$build" = after ] && dir=$after
    floor=$("$floor_bin" 1000 500)
    start_server 10ms "$dir"
    ws=$("$dir/rippy-load" ws --url http://127.0.0.1:18081 --key "$key" --clients 1000 \
         --duration "$DURATION" --server-pid "$server_pid" --threads 1)
    token=$("$dir/rippy-load" token --connections 64 --url http://127.0.0.1:18081 --key "$key" \
         --duration "$DURATION" --server-pid "$server_pid")
    hs=$("$dir/rippy-load" handshake --concurrency 32 --url http://127.0.0.1:18081 --key "$key" \
         --duration "$DURATION" --server-pid "$server_pid")
    stop_server
    split_handshakes "$dir"
    fw=$(grep -o 'writes_per_cpu_s=[^ ]*' <<<"$floor" | cut -d= -f2)
    dps=$(grep -o 'deliveries_per_cpu_s=[^ ]*' <<<"$ws" | cut -d= -f2)
    echo "round=$round build=$build floor_writes_per_cpu_s=$fw ratio=$(python3 -c "print(f'{$dps / $fw:.2f}')") $ws"
    echo "round=$round build=$build $token"
    echo "round=$round build=$build $hs"
    echo "round=$round build=$build cores=split $split_line"
  done
done
