#!/usr/bin/env bash
# Sandbox latency and memory, through the library API against the real Docker daemon.
#
#   bench/sandbox/run.sh       (also `make bench-sandbox`, which first builds the sandbox image)
#
# Builds examples/bench_sandbox.rs (release) and runs it. In one run it measures, p50/p95:
# a new thread's first execution when the warm pool has a sandbox ready; the next `print(1)`
# in a warm session; and, as baselines, `docker exec <sandbox> python3 -c pass` (CLI and Engine
# API) and a cold `docker run --rm <image> python3 -c pass`; then the resident memory of each
# idle session container. Prints the figures, ratios to the baselines and the goals (first
# execution p50 <= 15 ms, next-execution overhead p50 <= 2 ms, idle session <= 85 MiB).
# Then examples/bench_checkpoint.rs: checkpoint and restore of 50 MB in /mnt/data + a 10 MB
# DataFrame (goal each <= 1 s; needs DATABASE_URL or starts a private Postgres). Takes about two minutes. Uses its own instance label (bench-sandbox); the manager removes its
# containers at the end, and this script sweeps the label if the run is interrupted.
# Exit status 3 when a goal is missed.
#
# Settings (environment): BENCH_FIRST_SAMPLES=25, BENCH_NEXT_SAMPLES=50, BENCH_EXEC_SAMPLES=30,
# BENCH_RUN_SAMPLES=10, BENCH_POOL_SIZE=2, ASSISTD_SANDBOX_IMAGE (default assistd-sandbox:latest),
# BENCH_BIN (use this binary instead of `cargo build --release`), RUST_LOG (default warn).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
instance=bench-sandbox
image=${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:latest}

log() { echo "bench-sandbox: $*" >&2; }

if [ -n "${BENCH_BIN:-}" ]; then
  bench=$BENCH_BIN
else
  log "cargo build --release --example bench_sandbox (minutes on a cold cache)"
  (cd "$root" && cargo build --release --locked --quiet --example bench_sandbox)
  bench=$root/target/release/examples/bench_sandbox
fi

if ! docker info >/dev/null 2>&1; then
  "$root/scripts/ensure-docker.sh"
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "the sandbox image $image is missing: run \`make sandbox-image\` (or \`make bench-sandbox\`)"
  exit 1
fi

bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  # Whatever an interrupted run left behind, by this benchmark's instance label.
  left=$(docker ps -aq --filter label=assistd.instance=$instance 2>/dev/null || true)
  [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1 || true
  vols=$(docker volume ls -q --filter label=assistd.instance=$instance 2>/dev/null || true)
  [ -n "$vols" ] && docker volume rm -f $vols >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
docker_version=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
cgroup=$(docker info --format 'cgroup v{{.CgroupVersion}}' 2>/dev/null || echo '?')
echo "assistd sandbox bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu), $mem," \
  "Docker $docker_version ($cgroup), image $image, load before start: $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
env ASSISTD_SANDBOX_INSTANCE=$instance ASSISTD_SANDBOX_IMAGE="$image" RUST_LOG="${RUST_LOG:-warn}" \
  "$bench" \
  --first-samples "${BENCH_FIRST_SAMPLES:-25}" \
  --next-samples "${BENCH_NEXT_SAMPLES:-50}" \
  --exec-samples "${BENCH_EXEC_SAMPLES:-30}" \
  --run-samples "${BENCH_RUN_SAMPLES:-10}" \
  --pool-size "${BENCH_POOL_SIZE:-2}" &
bench_pid=$!
wait "$bench_pid" || status=$?
bench_pid=""

# Checkpoint and restore of a session with 50 MB in /mnt/data and a 10 MB DataFrame
# (examples/bench_checkpoint.rs; needs Postgres: DATABASE_URL, else a private cluster).
if [ -n "${BENCH_CHECKPOINT_BIN:-}" ]; then
  ckpt=$BENCH_CHECKPOINT_BIN
else
  (cd "$root" && cargo build --release --locked --quiet --example bench_checkpoint)
  ckpt=$root/target/release/examples/bench_checkpoint
fi
db_url=${DATABASE_URL:-$(PG_FAST=1 "$root/scripts/pg.sh" start "$root/.tmp/pg-bench")}
env DATABASE_URL="$db_url" ASSISTD_SANDBOX_IMAGE="$image" RUST_LOG="${RUST_LOG:-warn}" \
  "$ckpt" --instance $instance --samples "${BENCH_CHECKPOINT_SAMPLES:-5}" &
bench_pid=$!
ckpt_status=0
wait "$bench_pid" || ckpt_status=$?
bench_pid=""
[ "$status" -eq 0 ] && status=$ckpt_status
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
