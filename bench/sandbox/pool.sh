#!/usr/bin/env bash
# Warm-pool bench: new threads arriving at 2/s for 60 s, each with one code run (print(1)),
# through the library API against the real Docker daemon; the same load with a fixed pool of 2
# and with pool sizing on (floor 2, cap 16), in the same run.
#
#   bench/sandbox/pool.sh       (also `make bench-pool`, which first builds the sandbox image)
#
# Builds examples/bench_pool.rs (release) and runs it; prints first-code p50/p95/max, pool
# hits/misses and the largest pool target per phase, and the goal (p95 <= 100 ms with sizing).
# Takes about three minutes. Exit status 3 when the goal is missed. Each phase uses its own
# instance label (bench-pool-fixed, bench-pool-sized); the managers remove their containers at
# the end, and this script sweeps the labels if the run is interrupted.
#
# Settings (environment): BENCH_RATE=2, BENCH_SECS=60, BENCH_FLOOR=2, BENCH_CAP=16,
# BENCH_MAX_SESSIONS=32, ASSISTD_SANDBOX_IMAGE (default assistd-sandbox:latest),
# BENCH_BIN (use this binary instead of `cargo build --release`), RUST_LOG (default warn).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
image=${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:latest}

log() { echo "bench-pool: $*" >&2; }

if [ -n "${BENCH_BIN:-}" ]; then
  bench=$BENCH_BIN
else
  log "cargo build --release --example bench_pool (minutes on a cold cache)"
  (cd "$root" && cargo build --release --locked --quiet --example bench_pool)
  bench=$root/target/release/examples/bench_pool
fi

if ! docker info >/dev/null 2>&1; then
  "$root/scripts/ensure-docker.sh"
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "the sandbox image $image is missing: run \`make sandbox-image\` (or \`make bench-pool\`)"
  exit 1
fi

bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  for instance in bench-pool-fixed bench-pool-sized; do
    left=$(docker ps -aq --filter label=assistd.instance=$instance 2>/dev/null || true)
    [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1 || true
    vols=$(docker volume ls -q --filter label=assistd.instance=$instance 2>/dev/null || true)
    [ -n "$vols" ] && docker volume rm -f $vols >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "assistd pool bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu)," \
  "Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), image $image," \
  "load before start: $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
env ASSISTD_SANDBOX_IMAGE="$image" RUST_LOG="${RUST_LOG:-warn}" "$bench" \
  --instance bench-pool \
  --rate "${BENCH_RATE:-2}" --secs "${BENCH_SECS:-60}" \
  --floor "${BENCH_FLOOR:-2}" --cap "${BENCH_CAP:-16}" \
  --max-sessions "${BENCH_MAX_SESSIONS:-32}" &
bench_pid=$!
wait "$bench_pid" || status=$?
bench_pid=""
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
