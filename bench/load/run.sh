#!/usr/bin/env bash
# 500 concurrent clients for 60 s against a release assistd, over loopback only.
#
#   bench/load/run.sh          (also `make bench-load`)
#
# Starts a private Postgres cluster (PG_FAST=1), a zero-latency scripted OpenAI-compatible
# upstream (bench/load/upstream_server.py, reusing tests/sdk/upstream.py) and `assistd serve`,
# then bench/load/load.py: virtual clients mixing CRUD (create / retrieve / list assistants,
# threads and messages) with streamed runs without code (a new thread per run, SSE read to
# `done`). Prints errors (goal 0), throughput, p50/p99 per operation and the server's RSS before,
# during and after the load (goal: flat). Exits non-zero when a goal is missed. Always stops
# everything it started and removes its files.
#
# Settings (environment): BENCH_CLIENTS=500, BENCH_SECONDS=60, BENCH_PROCS=2 (load generator
# processes), ASSISTD_BIN=path (use this binary instead of `cargo build --release`).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/bench/load"
clients=${BENCH_CLIENTS:-500}
seconds=${BENCH_SECONDS:-60}
procs=${BENCH_PROCS:-2}
key=sk-bench-load

log() { echo "bench-load: $*" >&2; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# 500 clients hold 500 sockets in the server, plus its Postgres pool and upstream connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((clients * 2 + 256)) ] ||
  log "warning: ulimit -n is $(ulimit -n), low for $clients clients"

# ------------------------------------------------------------------------------ tools
"$root/scripts/venv.sh" # httpx for the load generator
py="$root/.venv/bin/python"
if [ -n "${ASSISTD_BIN:-}" ]; then
  bin=$ASSISTD_BIN
else
  log "cargo build --release"
  (cd "$root" && cargo build --release --locked --quiet)
  bin="$root/target/release/assistd"
fi
# The server opens its Docker sandbox manager at start, even though nothing here runs code.
docker info >/dev/null 2>&1 || "$root/scripts/ensure-docker.sh"

# ------------------------------------------------------------------------------ cleanup
work=$(mktemp -d /tmp/assistd-bench-load.XXXXXX)
chmod 755 "$work" # the cluster runs as `postgres` and must reach its directory
server_pid=""
upstream_pid=""
stop_pid() {
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$server_pid"
  stop_pid "$upstream_pid"
  "$root/scripts/pg.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------ services
database_url=$(PG_FAST=1 "$root/scripts/pg.sh" start "$work/pg")

python3 "$here/upstream_server.py" >"$work/upstream.out" 2>&1 &
upstream_pid=$!
for _ in $(seq 100); do grep -q '^PORT ' "$work/upstream.out" && break; sleep 0.1; done
upstream_port=$(sed -n 's/^PORT //p' "$work/upstream.out")
[ -n "$upstream_port" ] || { cat "$work/upstream.out" >&2; log "the upstream did not start"; exit 1; }

port=$(free_port)
base="http://127.0.0.1:$port"
mkdir -p "$work/data"
log "starting $bin on 127.0.0.1:$port (upstream 127.0.0.1:$upstream_port)"
DATABASE_URL=$database_url \
  ASSISTD_ADDR=127.0.0.1:$port \
  ASSISTD_API_KEYS=$key \
  ASSISTD_DATA_DIR=$work/data \
  ASSISTD_UPSTREAM_BASE_URL=http://127.0.0.1:$upstream_port/v1 \
  ASSISTD_UPSTREAM_API_KEY=sk-upstream \
  ASSISTD_DB_MAX_CONNECTIONS=${ASSISTD_DB_MAX_CONNECTIONS:-100} \
  ASSISTD_MAX_CONCURRENT_RUNS=${ASSISTD_MAX_CONCURRENT_RUNS:-128} \
  ASSISTD_SANDBOX_POOL_SIZE=0 ASSISTD_SANDBOX_POOL_MAX=0 \
  ASSISTD_SANDBOX_INSTANCE=assistd-bench-load-$$ \
  ASSISTD_SHUTDOWN_GRACE_SECS=2 \
  ASSISTD_LOG_FORMAT=text \
  RUST_LOG=${RUST_LOG:-warn} \
  "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for i in $(seq 600); do
  "$py" -c "import httpx,sys; sys.exit(httpx.get('$base/healthz').status_code != 200)" 2>/dev/null && break
  if ! kill -0 "$server_pid" 2>/dev/null || [ "$i" = 600 ]; then
    log "the server did not become ready; its log:"
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

# ------------------------------------------------------------------------------ load
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
pgv=$("$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres | head -1)")/postgres" --version | awk '{print $3}')
echo "assistd load bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu), $mem, Postgres $pgv"
echo "server: ASSISTD_DB_MAX_CONNECTIONS=${ASSISTD_DB_MAX_CONNECTIONS:-100} ASSISTD_MAX_CONCURRENT_RUNS=${ASSISTD_MAX_CONCURRENT_RUNS:-128}, ulimit -n $(ulimit -n); upstream answers at once"
status=0
timeout $((seconds + 180)) "$py" "$here/load.py" --base "$base" --key "$key" --clients "$clients" \
  --seconds "$seconds" --procs "$procs" --server-pid "$server_pid" --json "$work/result.json" || status=$?

errors=$(grep -c ' ERROR ' "$work/server.log" || true)
echo "server log: $errors ERROR lines$([ "$errors" = 0 ] || echo "; first: $(grep -m1 ' ERROR ' "$work/server.log")")"
exit "$status"
