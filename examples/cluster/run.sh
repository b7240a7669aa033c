#!/usr/bin/env bash
# Three rippy nodes on one Redis and one PostgreSQL, behind haproxy, on
# loopback: http://127.0.0.1:8090 (the proxy), nodes on 8091-8093.
#
#   examples/cluster/run.sh          # NODES=5 TICK=1s for other shapes
#
# Needs redis-server, postgresql and haproxy (Debian packages). Ctrl-C stops
# everything; all state lives in a temp dir that goes with it.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin rippy
work=$(mktemp -d)
# shellcheck source=examples/cluster/cluster.sh
. examples/cluster/cluster.sh
trap 'cluster_stop; rm -rf "$work"' EXIT
RUST_LOG=${RUST_LOG:-info} cluster_start "${NODES:-3}" "${TICK:-10ms}"
echo "cluster up: proxy http://127.0.0.1:$PROXY_PORT, nodes 127.0.0.1:$NODE_PORT.. (logs in $work)"
echo "demo API key: $key"
echo "leader: node $(cluster_leader || echo '?')"
wait
