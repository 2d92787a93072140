#!/usr/bin/env bash
# What a 20 MB skill adds to a new container: POST /v1/containers with the skill attached (copied into
# its sandbox at creation) then a small file upload, against the same without the skill, alternating in
# one run, through the newest openai-python.
#
#   bench/skills/run.sh        (also `make bench-skills`)
#
# Builds the release server (unless ASSISTD_BIN is set), starts a private Postgres cluster, then
# bench/skills/bench.py with .venv-sdk3 (make venv-sdk3). Prints p50/p99 of both and the p50 difference
# against the goal (<= 50 ms). Before each sample it waits for the warm pool to be full again (a launch
# inside a sample would swamp the figure), then BENCH_PAUSE=0.5 s. Settings: BENCH_SAMPLES=20,
# BENCH_PAUSE, ASSISTD_BIN, ASSISTD_SANDBOX_IMAGE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -z "${ASSISTD_BIN:-}" ]; then
  echo "bench-skills: cargo build --release" >&2
  cargo build --release --quiet --bin assistd
  export ASSISTD_BIN=$root/target/release/assistd
fi
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
work=$(mktemp -d /tmp/assistd-bench-skills.XXXXXX)
chmod 755 "$work"
trap 'scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$work/pg")
BENCH_WORK=$work .venv-sdk3/bin/python bench/skills/bench.py
