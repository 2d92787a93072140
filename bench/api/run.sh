#!/usr/bin/env bash
# The API's read throughput next to Postgres's own, on this machine, over loopback only.
#
#   bench/api/run.sh          (also `make bench-api`)
#
# Starts a private Postgres cluster and a release `assistd serve`, seeds one assistant and one
# thread with 50 messages over HTTP, then measures with wrk (after a short warm-up):
#   GET /v1/assistants/{id}
#   GET /v1/threads/{id}/messages?limit=20
# and `pgbench -S` (select-only) with the same client count on a scratch database of the same
# cluster. Prints req/s, p50 and p99 per endpoint, and API req/s ÷ pgbench TPS. The server as
# configured by default is held to the goal (ratio >= 0.5 and p99 < 10 ms); the same reads are
# then measured on a server with its read cache off (ASSISTD_READ_CACHE_MB=0), which shows what
# a read that misses the cache costs. One server runs at a time. Always stops the servers and
# the cluster and removes their files.
#
# Settings (environment): BENCH_SECONDS=10 per measurement, BENCH_WARMUP=2, BENCH_CONNECTIONS=32,
# BENCH_THREADS=2, ASSISTD_BIN=path (use this binary instead of `cargo build --release`).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/bench/api"
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
key=sk-bench
export BENCH_KEY=$key # read by wrk.lua
goal_ratio=0.5
goal_p99_ms=10

log() { echo "bench-api: $*" >&2; }

need_apt() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq "$@" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------------------ tools
command -v wrk >/dev/null || need_apt wrk
command -v curl >/dev/null || need_apt curl

# ------------------------------------------------------------------------------ binary
if [ -n "${ASSISTD_BIN:-}" ]; then
  bin=$ASSISTD_BIN
else
  log "cargo build --release"
  (cd "$root" && cargo build --release --quiet)
  bin="$root/target/release/assistd"
fi

# The server opens its Docker sandbox manager at start, even though nothing here runs code.
if ! docker info >/dev/null 2>&1; then
  "$root/scripts/ensure-docker.sh"
fi

# ------------------------------------------------------------------------------ cleanup
work=$(mktemp -d /tmp/assistd-bench.XXXXXX)
chmod 755 "$work" # the cluster runs as `postgres` and must reach its directory
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  "$root/scripts/pg.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------ postgres
database_url=$("$root/scripts/pg.sh" start "$work/pg")
pg_port=$(cat "$work/pg/assistd.port")
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | head -1)")
[ -x "$pgbin/pgbench" ] || need_apt postgresql-contrib

# ------------------------------------------------------------------------------ server
port=$(free_port)
base="http://127.0.0.1:$port"
mkdir -p "$work/data"
# start_server CACHE_MB
start_server() {
  log "starting $bin on 127.0.0.1:$port (ASSISTD_READ_CACHE_MB=$1)"
  DATABASE_URL=$database_url \
    ASSISTD_ADDR=127.0.0.1:$port \
    ASSISTD_API_KEYS=$key \
    ASSISTD_DATA_DIR=$work/data \
    ASSISTD_READ_CACHE_MB=$1 \
    ASSISTD_SANDBOX_POOL_SIZE=0 ASSISTD_SANDBOX_POOL_MAX=0 \
    ASSISTD_SANDBOX_INSTANCE=assistd-bench-$$ \
    ASSISTD_SHUTDOWN_GRACE_SECS=2 \
    "$bin" serve >>"$work/server.log" 2>&1 &
  server_pid=$!
  for i in $(seq 600); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && return 0
    if ! kill -0 "$server_pid" 2>/dev/null || [ "$i" = 600 ]; then
      log "the server did not come up; its log:"
      cat "$work/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}
start_server 64

# ------------------------------------------------------------------------------ seed
api() {
  curl -fsS -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -H 'OpenAI-Beta: assistants=v2' "$@"
}
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

assistant=$(api "$base/v1/assistants" -d '{
  "model": "gpt-4o-mini", "name": "bench", "description": "read benchmark",
  "instructions": "You are a data analyst. Use code to answer questions about the files.",
  "tools": [{"type": "code_interpreter"}], "metadata": {"suite": "bench-api"}}' | id_of)
thread=$(api "$base/v1/threads" -d '{"metadata": {"suite": "bench-api"}}' | id_of)
for n in $(seq 50); do
  api "$base/v1/threads/$thread/messages" -d "{\"role\": \"user\", \"content\": \"Message $n: plot the monthly revenue in sales.csv and tell me which quarter grew fastest, with the growth rate as a percentage.\", \"metadata\": {\"n\": \"$n\"}}" >/dev/null
done
log "seeded $assistant and $thread with 50 messages"

# ------------------------------------------------------------------------------ measure
# Prints "rps p50_ms p99_ms non2xx socket_errors" for one URL.
measure() {
  local url=$1 out
  api -o /dev/null "$url" # a 200 before any timing
  timeout $((warmup + 30)) wrk -t"$threads" -c"$conns" -d"${warmup}s" -s "$here/wrk.lua" "$url" >/dev/null
  out=$(timeout $((seconds + 30)) \
    wrk -t"$threads" -c"$conns" -d"${seconds}s" -s "$here/wrk.lua" "$url")
  echo "$out" | sed -n 's/^RESULT rps=\([0-9.]*\) p50_ms=\([0-9.]*\) p99_ms=\([0-9.]*\) max_ms=[0-9.]* requests=[0-9]* non2xx=\([0-9]*\) socket_errors=\([0-9]*\)$/\1 \2 \3 \4 \5/p'
}

load_before=$(cut -d' ' -f1 /proc/loadavg)
log "wrk: ${seconds}s, $conns connections, $threads threads per endpoint"
results=()
for cache_mb in 64 0; do
  [ -n "$server_pid" ] || start_server "$cache_mb"
  for path in "/v1/assistants/$assistant" "/v1/threads/$thread/messages?limit=20"; do
    r=$(measure "$base$path")
    [ -n "$r" ] || { log "could not read wrk's results for $path"; exit 1; }
    results+=("$r")
  done
  stop_server
done

# Postgres is measured on its own.
log "pgbench -S: ${seconds}s, $conns clients, $threads threads"
pg() { "$pgbin/$1" -h 127.0.0.1 -p "$pg_port" -U assistd "${@:2}"; }
pg createdb pgbench
pg pgbench -i -q -s 1 pgbench >"$work/pgbench-init.log" 2>&1 || {
  cat "$work/pgbench-init.log" >&2
  exit 1
}
pgb=$(timeout $((seconds + 60)) "$pgbin/pgbench" -h 127.0.0.1 -p "$pg_port" -U assistd \
  -S -n -c "$conns" -j "$threads" -T "$seconds" pgbench 2>&1)
tps=$(echo "$pgb" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
pg_lat=$(echo "$pgb" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' | head -1)
[ -n "$tps" ] || { log "could not read pgbench's TPS:"; echo "$pgb" >&2; exit 1; }

# ------------------------------------------------------------------------------ report
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
pg_version=$("$pgbin/postgres" --version | awk '{print $3}')
python3 - "$tps" "$pg_lat" "${results[@]}" <<EOF
import sys
tps = float(sys.argv[1]); pg_lat = sys.argv[2]
rows = [r.split() for r in sys.argv[3:7]]
print()
print("assistd API bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu), $mem, Postgres $pg_version")
print("load average (1 min) before measuring: $load_before, after: $(cut -d' ' -f1 /proc/loadavg) — other work on the machine skews every figure")
print("wrk ${seconds}s after ${warmup}s warm-up, $conns connections, $threads threads; pgbench -S -c $conns -j $threads -T $seconds (scale 1)")
print()
print(f"{'':48} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'÷ pgbench':>10}  goal (ratio >= $goal_ratio, p99 < $goal_p99_ms ms)")
ok = True
names = ["GET /v1/assistants/{id}", "GET /v1/threads/{id}/messages?limit=20"] * 2
for i, (name, (rps, p50, p99, bad, err)) in enumerate(zip(names, rows)):
    if i == 2:
        print("read cache off (ASSISTD_READ_CACHE_MB=0), every read from Postgres; no goal:")
    judged = i < 2
    ratio = float(rps) / tps
    clean = bad == "0" and err == "0"
    met = ratio >= $goal_ratio and float(p99) < $goal_p99_ms and clean
    ok &= met or not judged
    verdict = ("met" if met else "MISSED") if judged else ("" if clean else "ERRORS")
    note = "" if clean else f"  ({bad} non-2xx, {err} socket errors)"
    print(f"{name:48} {float(rps):9.0f} {float(p50):8.2f} {float(p99):8.2f} {ratio:10.2f}  {verdict}{note}")
print(f"{'pgbench -S (select by primary key)':48} {tps:9.0f} {'':>8} {'':>8} {'':>10}  latency avg {pg_lat} ms")
print()
print("all goals met" if ok else "some goals missed")
EOF
