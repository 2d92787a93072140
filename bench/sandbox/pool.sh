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
. "$(dirname "$0")/../lib.sh" bench-pool
image=${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:latest}

bench_example bench_pool
bench_docker "$image"

bench_pid=""
sweep() {
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
bench_on_exit sweep

bench_header "assistd pool bench" "$image"

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
