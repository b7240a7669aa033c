# Sourced by examples/cluster/run.sh and scripts/cluster_bench.sh: Redis,
# PostgreSQL, N rippy nodes of examples/cluster/_index.yaml and haproxy, all
# on loopback, all state in "$work" (which the caller creates and removes).
#
#   cluster_start NODES [TICK] [BIN_DIR]   # tick default 10ms; bin dir target/release
#   cluster_node_start I                   # (re)starts node I (port $((NODE_PORT + I)))
#   cluster_node_kill I                    # SIGKILL
#   cluster_leader                         # prints the index of the lease holder
#   cluster_stop
# cluster_start sets $key (an API key for user demo) and node_pids[I].
# Ports: REDIS_PORT (6390), PG_PORT (5490), NODE_PORT (8091: node 0), PROXY_PORT (8090).

REDIS_PORT=${REDIS_PORT:-6390}
PG_PORT=${PG_PORT:-5490}
NODE_PORT=${NODE_PORT:-8091}
PROXY_PORT=${PROXY_PORT:-8090}
node_pids=()
redis_pid=""
proxy_pid=""
cluster_bin=target/release

_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# PostgreSQL refuses to run as root: run it as the postgres user then.
_as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

_wait_port() {
  for _ in $(seq 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.025
  done
  echo "nothing listens on port $1" >&2
  return 1
}

cluster_node_start() {
  local i=$1
  RIPPY_ADDR="127.0.0.1:$((NODE_PORT + i))" RUST_LOG=${RUST_LOG:-warn} \
    "$cluster_bin/rippy" run "$work/cluster.yaml" 2>>"$work/node$i.log" &
  node_pids[i]=$!
  _wait_port $((NODE_PORT + i))
}

cluster_node_kill() {
  local i=$1
  [ -n "${node_pids[i]:-}" ] || return 0
  kill -KILL "${node_pids[i]}" 2>/dev/null || true
  wait "${node_pids[i]}" 2>/dev/null || true
  node_pids[i]=""
}

cluster_leader() {
  local i
  for i in "${!node_pids[@]}"; do
    [ -n "${node_pids[i]}" ] || continue
    if curl -s "http://127.0.0.1:$((NODE_PORT + i))/metrics" | grep -qx 'rippy_feed_leader 1'; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

cluster_start() {
  local nodes=$1 tick=${2:-10ms}
  cluster_bin=${3:-target/release}
  local pgbin
  pgbin=$(_pg_bin)
  [ -n "$pgbin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; return 1; }
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  mkdir -p "$work/pg"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$work/pg" "$work"
  _as_pg "$pgbin/initdb" -A trust -U rippy --no-sync -D "$work/pg/data" >"$work/pg.log" 2>&1
  _as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-p $PG_PORT -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >>"$work/pg.log"
  _wait_port "$REDIS_PORT"
  export RIPPY_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export RIPPY_DATABASE_URL="postgres://rippy@127.0.0.1:$PG_PORT/postgres"
  export RIPPY_TOKEN_KEY=${RIPPY_TOKEN_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  sed -e "s#interval: \"10ms\"#interval: \"$tick\"#" \
      -e "s#directory: ../../public#directory: $PWD/public#" \
      -e "s#max_failures: 20#max_failures: 1000000#" \
      examples/cluster/_index.yaml > "$work/cluster.yaml"
  key=$("$cluster_bin/rippy" keys --manifest "$work/cluster.yaml" create --user demo 2>/dev/null)
  local i
  for ((i = 0; i < nodes; i++)); do cluster_node_start "$i"; done
  if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
    {
      printf 'defaults\n  mode http\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  timeout tunnel 1h\n'
      printf 'frontend web\n  bind 127.0.0.1:%s\n  default_backend nodes\n' "$PROXY_PORT"
      printf 'backend nodes\n  balance roundrobin\n  option redispatch\n  retries 2\n'
      for ((i = 0; i < nodes; i++)); do
        printf '  server n%s 127.0.0.1:%s check inter 500ms fall 1 rise 1\n' "$i" $((NODE_PORT + i))
      done
    } > "$work/haproxy.cfg"
    PATH="$PATH:/usr/sbin" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
    proxy_pid=$!
    _wait_port "$PROXY_PORT"
  fi
}

cluster_stop() {
  local i
  # Each step may find its process gone already, or killed by a signal (a
  # nonzero wait status): neither stops the teardown.
  for i in "${!node_pids[@]}"; do
    [ -n "${node_pids[i]}" ] && kill -TERM "${node_pids[i]}" 2>/dev/null || true
  done
  for i in "${!node_pids[@]}"; do
    [ -n "${node_pids[i]}" ] && wait "${node_pids[i]}" 2>/dev/null || true
  done
  node_pids=()
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; fi
  proxy_pid=""
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  redis_pid=""
  if [ -d "$work/pg/data" ]; then
    _as_pg "$(_pg_bin)/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work/pg"
  fi
  return 0
}
