#!/usr/bin/env bash
# Run executor throughput and latency against a zero-latency scripted upstream, loopback only.
#
#   bench/runs/run.sh          (also `make bench-runs`, which first builds the sandbox image)
#
# Builds the release server and the load generator (examples/bench_runs.rs), starts a private
# Postgres cluster and `assistd serve` pointed at the load generator's scripted upstream, then
# measures, at each concurrency level, streamed runs without code (fresh thread per run) and
# runs with one `print(1)` code call (one warm thread + sandbox per client), each next to the raw
# upstream round trip from the same client. Prints runs/s, p50/p99, overhead (run − upstream),
# a phase breakdown and CPU ms per run by process, against the goals (>= 200 runs/s without
# code; p50 overhead <= 20 ms). Always stops the server (which removes its sandboxes) and the
# cluster, and removes its files. Exit status 3 when a goal is missed.
#
# Settings (environment): BENCH_SECONDS=10 per level, BENCH_BASELINE_SECONDS=5,
# BENCH_LEVELS=1,16,64 (no code), BENCH_CODE_LEVELS=1,16,64, BENCH_POOL_SIZE=4 (warm sandboxes),
# BENCH_CODE_THINK_MS=0 (pause between a code client's runs), BENCH_LOG=warn (the server's
# RUST_LOG), ASSISTD_BIN and BENCH_BIN (use these binaries instead of `cargo build --release`),
# BENCH_KEEP_LOG=path (copy the server log there).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${BENCH_SECONDS:-10}
baseline_seconds=${BENCH_BASELINE_SECONDS:-5}
levels=${BENCH_LEVELS:-1,16,64}
code_levels=${BENCH_CODE_LEVELS:-1,16,64}
pool_size=${BENCH_POOL_SIZE:-4}
key=sk-bench
instance=bench-runs

log() { echo "bench-runs: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------------------ binaries
if [ -n "${ASSISTD_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
  bin=$ASSISTD_BIN
  bench=$BENCH_BIN
else
  log "cargo build --release (server and examples/bench_runs.rs; minutes on a cold cache)"
  (cd "$root" && cargo build --release --quiet --bin assistd --example bench_runs)
  bin=${ASSISTD_BIN:-$root/target/release/assistd}
  bench=${BENCH_BIN:-$root/target/release/examples/bench_runs}
fi

if ! docker info >/dev/null 2>&1; then
  "$root/scripts/ensure-docker.sh"
fi
if ! docker image inspect assistd-sandbox:latest >/dev/null 2>&1; then
  log "the sandbox image is missing: run \`make sandbox-image\` (or \`make bench-runs\`)"
  exit 1
fi

# ------------------------------------------------------------------------------ cleanup
work=$(mktemp -d /tmp/assistd-bench-runs.XXXXXX)
chmod 755 "$work" # the cluster runs as `postgres` and must reach its directory
server_pid=""
bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    # SIGTERM: the server drains and removes its own sandboxes.
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  # Whatever a killed server left behind, by this benchmark's instance label.
  left=$(docker ps -aq --filter label=assistd.instance=$instance 2>/dev/null || true)
  [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1 || true
  vols=$(docker volume ls -q --filter label=assistd.instance=$instance 2>/dev/null || true)
  [ -n "$vols" ] && docker volume rm -f $vols >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP_LOG:-}" ] && cp "$work/server.log" "$BENCH_KEEP_LOG" 2>/dev/null || true
  "$root/scripts/pg.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------ postgres
database_url=$(PG_FAST=1 "$root/scripts/pg.sh" start "$work/pg")

# ------------------------------------------------------------------------------ server
port=$(free_port)
upstream_port=$(free_port)
base="http://127.0.0.1:$port"
max_code=$(echo "$code_levels" | tr ',' '\n' | sort -n | tail -1)
mkdir -p "$work/data"
log "starting $bin on 127.0.0.1:$port (upstream on 127.0.0.1:$upstream_port)"
# The server only calls the upstream during runs, so it may start before the upstream does.
env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy -u ALL_PROXY -u all_proxy \
  DATABASE_URL="$database_url" \
  ASSISTD_ADDR=127.0.0.1:$port \
  ASSISTD_API_KEYS=$key \
  ASSISTD_DATA_DIR="$work/data" \
  ASSISTD_UPSTREAM_BASE_URL=http://127.0.0.1:$upstream_port/v1 \
  ASSISTD_UPSTREAM_API_KEY=sk-upstream \
  ASSISTD_SANDBOX_INSTANCE=$instance \
  ASSISTD_SANDBOX_POOL_SIZE="$pool_size" \
  ASSISTD_SANDBOX_POOL_MAX="$pool_size" \
  ASSISTD_SANDBOX_MAX_SESSIONS=$((max_code + pool_size + 8)) \
  ASSISTD_MAX_CONCURRENT_RUNS=64 \
  ASSISTD_DB_MAX_CONNECTIONS=64 \
  ASSISTD_SHUTDOWN_GRACE_SECS=5 \
  RUST_LOG="${BENCH_LOG:-warn}" \
  "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!

# ------------------------------------------------------------------------------ measure
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
echo "assistd runs bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu), $mem, load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$bench" --base "$base" --upstream-port "$upstream_port" --key "$key" \
  --levels "$levels" --code-levels "$code_levels" --seconds "$seconds" \
  --baseline-seconds "$baseline_seconds" --pool-size "$pool_size" \
  --code-think-ms "${BENCH_CODE_THINK_MS:-0}" \
  --server-pid "$server_pid" --pg-dir "$work/pg" --database-url "$database_url" &
bench_pid=$!
wait "$bench_pid" || status=$?
bench_pid=""
if ! kill -0 "$server_pid" 2>/dev/null; then
  log "the server died; its log:"
  tail -50 "$work/server.log" >&2
  exit 1
fi
if grep -qE 'WARN|ERROR' "$work/server.log"; then
  log "server warnings/errors (first 10):"
  grep -E 'WARN|ERROR' "$work/server.log" | head -10 >&2
fi
exit "$status"
