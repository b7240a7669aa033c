#!/usr/bin/env bash
# Gateway overhead: wrk against an upstream directly, then through the
# gateway (unauthenticated and JWT-authenticated routes), same run.
# Usage: scripts/gateway_bench.sh [seconds] [connections]
# With nginx installed (Debian nginx-light) the upstream is nginx (one
# worker answering a fixed 200) and two more rows run a second nginx (one
# worker, pooled keep-alive upstream connections) as a plain proxy in front
# of it: the peer the gateway is measured against. Each row also gives the
# CPU time the server under test spent per request (the upstream for
# `direct`, the proxy's worker for `nginx_proxy`, rippy for the gateway
# rows), which does not depend on how wrk and the upstream share the cores,
# and that CPU's user-space and kernel parts.
# Logging both ways: `nginx_proxy` (the peer of issue 16) writes no access
# log and the gateway rows write one JSON line per request, as shipped;
# `nginx_proxy_logged` is the same proxy writing its access log to a file
# (buffered, as nginx is usually run) and `gateway_jwt_unlogged` a second
# gateway with access lines filtered out (`RUST_LOG=info,access=off`), so
# each proxy is also compared with the other doing the same.
# A `bare_proxy` row puts `rippy-load proxy` in the same place: a reverse
# proxy on tokio and httparse with nothing in between, doing the JWT route's
# per-request work (its head rewritten both ways, a token looked up, a
# counter, a request id) and no more (load/src/proxy.rs); what a proxy costs
# on this machine when its stack adds nothing. BARE=0 leaves it out.
# UPSTREAM=rust keeps examples/upstream instead.
# BIN_DIR=dir runs the rippy and rippy-load (and, if present,
# examples/upstream) found there instead of building, and
# GATEWAY_MANIFEST=file another manifest, for before/after comparisons.
# CALLGRIND=1 (needs valgrind) runs only the gateway rows, nginx's plain
# proxy rows and the bare proxy, each under callgrind, and adds the
# user-space instructions per request: a figure the machine's noise does
# not move; CG_OUT=prefix keeps each row's dump as prefix.ROW (for
# callgrind_annotate).
# ROUNDS=n (default 1) runs every row n times, the rows taking turns (every
# row line ends in ` round=N`), then prints each row's median (of
# requests_per_s, and of instructions_per_request under CALLGRIND=1) and
# the gateway's JWT route against nginx's plain proxy in each round (and
# the bare proxy against nginx's, and the JWT route against the bare proxy),
# with the median of those per-round ratios (with two rounds, their mean): rows a
# few seconds apart move by up to half on a shared machine, so one round
# says little. CG_OUT dumps are then prefix.ROW.ROUND.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
rounds=${ROUNDS:-1}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number from 1: $rounds" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
bin=${BIN_DIR:-target/release}
[ -n "${BIN_DIR:-}" ] || { cargo build --release --bin rippy --example upstream && cargo build --release -p rippy-load; }
bare=${BARE:-1}
# A BIN_DIR from before the bare proxy has no rippy-load: its rows are left out.
[ -x "$bin/rippy-load" ] || bare=0
upstream=target/release/examples/upstream
[ -x "$bin/upstream" ] && upstream="$bin/upstream"

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
secret=bench-secret-0123456789abcdef
sed -e "s#file: ../data/gateway.db#file: $work/gw.db#" \
    -e 's#requests: 60, window: "1m"#requests: 1000000000, window: "1m"#' \
    -e 's#http://127.0.0.1:9000#http://127.0.0.1:19000#; s#http://127.0.0.1:9024#http://127.0.0.1:19000#' \
    -e 's#127.0.0.1:8080#127.0.0.1:18080#' \
    -e "s#secret_env: GATEWAY_JWT_SECRET#secret: \"$secret\"#" \
    "${GATEWAY_MANIFEST:-examples/gateway.yaml}" > "$work/gateway.yaml"
python3 - "$work/gateway.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("""          username TEXT NOT NULL UNIQUE
        );""", """          username TEXT NOT NULL UNIQUE
        );
      - "INSERT OR IGNORE INTO users VALUES ('0b1c0000-0000-4000-8000-000000000001', 'bench')\"""")
open(p, "w").write(s)
PY
token=$(python3 - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"username": "bench", "exp": int(time.time()) + 3600}).encode())
s = b(hmac.new(sys.argv[1].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PY
)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ "${UPSTREAM:-nginx}" = nginx ] && [ -x "$nginx_bin" ]; then
  # The upstream on 19000 and the plain proxy on 19001: two instances of one
  # worker each, so the proxy's CPU is its own (a proxy sharing a worker
  # with its upstream would also skip a wake-up per request).
  # nginx_conf NAME HTTP-BODY: one worker, files in $work, no access log
  # unless a server of HTTP-BODY turns one on.
  nginx_conf() {
    cat > "$work/$1.conf" <<NGINX
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
$2
}
NGINX
  }
  nginx_conf upstream '  server {
    listen 127.0.0.1:19000 reuseport backlog=4096;
    keepalive_requests 1000000;
    location / { return 200 "ok\n"; }
  }'
  nginx_conf proxy '  upstream backend { server 127.0.0.1:19000; keepalive 64; }
  server {
    listen 127.0.0.1:19001 backlog=4096;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:19002 backlog=4096;
    keepalive_requests 1000000;
    access_log '"$work"'/proxy-access.log combined buffer=64k flush=1s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }'
  "$nginx_bin" -c "$work/upstream.conf" -g 'daemon off;' &
  upstream_pid=$!
  # Under CALLGRIND=1 the proxy is counted too, as one process (no master).
  if [ -n "${CALLGRIND:-}" ]; then
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
      "$nginx_bin" -c "$work/proxy.conf" -g 'daemon off; master_process off;' 2>"$work/nginx-cg.log" &
  else
    "$nginx_bin" -c "$work/proxy.conf" -g 'daemon off;' &
  fi
  proxy_pid=$!
  upstream_kind=nginx
else
  "$upstream" 127.0.0.1:19000 1 &
  upstream_pid=$!
  upstream_kind=rust
fi
# The gateway's access lines on, as in production, written to a file (the
# second gateway, below, has them off). With CALLGRIND=1 rippy runs under
# callgrind and its rows count instructions instead.
wrap=()
[ -n "${CALLGRIND:-}" ] && wrap=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p")
RUST_LOG=info "${wrap[@]}" "$bin/rippy" run "$work/gateway.yaml" 2>"$work/rippy.log" &
rippy_pid=$!
# The second gateway, access lines filtered out, on 18082 with its own
# database (a GATEWAY_MANIFEST whose database is not the example's keeps its
# own path in both).
sed -e 's#127.0.0.1:18080#127.0.0.1:18082#' -e "s#$work/gw.db#$work/gw2.db#" \
  "$work/gateway.yaml" > "$work/gateway2.yaml"
RUST_LOG=info,access=off "${wrap[@]}" "$bin/rippy" run "$work/gateway2.yaml" 2>"$work/rippy2.log" &
rippy2_pid=$!
bare_pid=""
if [ "$bare" != 0 ]; then
  "${wrap[@]}" "$bin/rippy-load" proxy --listen 127.0.0.1:19003 --upstream 127.0.0.1:19000 \
    --workers 2 2>"$work/bare.log" &
  bare_pid=$!
fi
for _ in $(seq 600); do
  curl -sf -o /dev/null http://127.0.0.1:18080/api/auth/ready &&
    curl -sf -o /dev/null http://127.0.0.1:18082/api/auth/ready && curl -sf -o /dev/null http://127.0.0.1:19000/ &&
    { [ "$upstream_kind" != nginx ] || curl -sf -o /dev/null http://127.0.0.1:19001/; } &&
    { [ -z "$bare_pid" ] || curl -sf -o /dev/null -H "Authorization: Bearer $token" http://127.0.0.1:19003/api/auth/ready; } && break
  sleep 0.1
done

# CPU ticks of a process and its children (nginx's worker is the
# master's child): "user system".
ticks() {
  local user=0 sys=0 p u s
  for p in "$1" $(pgrep -P "$1" || true); do
    read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat")
    user=$((user + u)) sys=$((sys + s))
  done
  echo "$user $sys"
}
# run NAME PID wrk-args...: PID is the server whose CPU the row reports.
run() {
  local name=$1 pid=$2; shift 2
  local out before after
  [ -n "${CALLGRIND:-}" ] && callgrind_control -z "$pid" >/dev/null
  before=$(ticks "$pid")
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$@")
  after=$(ticks "$pid")
  local rps p50 p99 n
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  # Per request: all CPU, and its user-space and kernel parts.
  local us
  us=$(python3 - "$before" "$after" "$(getconf CLK_TCK)" "$n" <<'PY'
import sys
u0, s0 = map(int, sys.argv[1].split())
u1, s1 = map(int, sys.argv[2].split())
per = 1e6 / int(sys.argv[3]) / max(int(sys.argv[4]), 1)
u, s = (u1 - u0) * per, (s1 - s0) * per
print(f"{u + s:.1f} server_user_us={u:.1f} server_sys_us={s:.1f}")
PY
)
  local extra=""
  if [ -n "${CALLGRIND:-}" ]; then
    rm -f "$work"/cg.*.[0-9]*
    callgrind_control -d "$pid" >/dev/null
    local dump
    dump=$(ls -t "$work"/cg.*.[0-9]* | head -1)
    local keep="${CG_OUT:-}.$name"
    [ "$rounds" -eq 1 ] || keep="$keep.$round"
    [ -z "${CG_OUT:-}" ] || cp "$dump" "$keep"
    extra=" instructions_per_request=$(scripts/instructions.sh count "$dump" "$n")"
  fi
  echo "bench=$name connections=$conns seconds=$secs requests_per_s=$rps p50=$p50 p99=$p99 server_cpu_us_per_request=$us$extra round=$round" |
    tee -a "$work/rows.txt"
}
rows() {
  [ -n "${CALLGRIND:-}" ] || run direct "$upstream_pid" http://127.0.0.1:19000/api/auth/x
  if [ "$upstream_kind" = nginx ]; then
    # Under callgrind, a warm-up: nginx's pool fills before it is counted.
    [ -z "${CALLGRIND:-}" ] || wrk -t1 -c"$conns" -d2s http://127.0.0.1:19001/api/auth/x >/dev/null
    run nginx_proxy "$proxy_pid" http://127.0.0.1:19001/api/auth/x
    run nginx_proxy_logged "$proxy_pid" http://127.0.0.1:19002/api/auth/x
  fi
  # The gateway's warm-up, in both modes: its pools, caches and allocator
  # arenas fill (and an idle process's trimmed caches grow back) before its
  # first row, which otherwise pays for them.
  wrk -t1 -c"$conns" -d2s -H "Authorization: Bearer $token" http://127.0.0.1:18080/api/items/gmail/x >/dev/null
  run gateway_open "$rippy_pid" http://127.0.0.1:18080/api/auth/x
  run gateway_jwt "$rippy_pid" -H "Authorization: Bearer $token" http://127.0.0.1:18080/api/items/gmail/x
  wrk -t1 -c"$conns" -d2s -H "Authorization: Bearer $token" http://127.0.0.1:18082/api/items/gmail/x >/dev/null
  run gateway_jwt_unlogged "$rippy2_pid" -H "Authorization: Bearer $token" http://127.0.0.1:18082/api/items/gmail/x
  if [ -n "$bare_pid" ]; then
    wrk -t1 -c"$conns" -d2s -H "Authorization: Bearer $token" http://127.0.0.1:19003/api/items/gmail/x >/dev/null
    run bare_proxy "$bare_pid" -H "Authorization: Bearer $token" http://127.0.0.1:19003/api/items/gmail/x
  fi
}
echo "upstream=$upstream_kind"
for round in $(seq "$rounds"); do
  rows
done
if [ "$rounds" -gt 1 ]; then
  python3 - "$work/rows.txt" <<'PY'
import statistics, sys
rows, counts = {}, {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    try:
        name, r, rps = f["bench"], int(f["round"]), float(f["requests_per_s"])
    except (KeyError, ValueError):
        continue
    rows.setdefault(name, {})[r] = rps
    if f.get("instructions_per_request", "").isdigit():
        counts.setdefault(name, {})[r] = int(f["instructions_per_request"])
for name, by_round in rows.items():
    line = f"median bench={name} rounds={len(by_round)} requests_per_s={statistics.median(by_round.values()):.0f}"
    if name in counts:
        line += f" instructions_per_request={statistics.median(counts[name].values()):.0f}"
    print(line)
# Under callgrind the throughput is valgrind's, not the servers'.
for a, b in [("gateway_jwt", "nginx_proxy"), ("bare_proxy", "nginx_proxy"), ("gateway_jwt", "bare_proxy")]:
    top, peer = rows.get(a, {}), rows.get(b, {})
    ratios = [top[r] / peer[r] for r in sorted(top) if peer.get(r)]
    if ratios and not counts:
        each = " ".join(f"{x:.2f}" for x in ratios)
        print(f"{a}/{b} per_round={each} median_of_rounds={statistics.median(ratios):.2f}")
PY
fi
