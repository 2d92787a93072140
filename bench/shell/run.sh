#!/usr/bin/env bash
# The hosted shell tool's latency: a shell_call of `true` in a warm container, server side,
# next to plain `docker exec <container> true` (the baseline), in one run.
#
#   bench/shell/run.sh       (also `make bench-shell`, which first builds the sandbox image)
#
# Builds examples/bench_shell.rs (release) and runs it with its own instance label
# (bench-shell); the manager removes its containers at the end, and this script sweeps the
# label if the run is interrupted. Exit status 3 when the goal (p50 <= 5 ms) is missed.
#
# Settings (environment): BENCH_SAMPLES=100, BENCH_EXEC_SAMPLES=30, ASSISTD_SANDBOX_IMAGE
# (default assistd-sandbox:latest), BENCH_BIN (this binary instead of `cargo build --release`),
# RUST_LOG (default warn).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
instance=bench-shell
image=${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:latest}

log() { echo "bench-shell: $*" >&2; }

if [ -n "${BENCH_BIN:-}" ]; then
  bench=$BENCH_BIN
else
  log "cargo build --release --example bench_shell (minutes on a cold cache)"
  (cd "$root" && cargo build --release --locked --quiet --example bench_shell)
  bench=$root/target/release/examples/bench_shell
fi

if ! docker info >/dev/null 2>&1; then
  "$root/scripts/ensure-docker.sh"
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "the sandbox image $image is missing: run \`make sandbox-image\` (or \`make bench-shell\`)"
  exit 1
fi

cleanup() {
  left=$(docker ps -aq --filter label=assistd.instance=$instance 2>/dev/null || true)
  [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1 || true
  vols=$(docker volume ls -q --filter label=assistd.instance=$instance 2>/dev/null || true)
  [ -n "$vols" ] && docker volume rm -f $vols >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "assistd shell bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, image $image," \
  "load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
env ASSISTD_SANDBOX_INSTANCE=$instance ASSISTD_SANDBOX_IMAGE="$image" RUST_LOG="${RUST_LOG:-warn}" \
  "$bench" --samples "${BENCH_SAMPLES:-100}" --exec-samples "${BENCH_EXEC_SAMPLES:-30}"
