#!/usr/bin/env bash
# Pause and resume of an E2B sandbox with a 100 MB workspace, through E2B's own Python SDK: p50 of each
# against the goal (<= 1 s each; E2B publishes ~4 s/GB pause, ~1 s resume), beside a baseline measured in the
# same run (tar of the workspace inside the sandbox, read to the end).
#
#   bench/pause/run.sh        (also `make bench-pause`)
#
# Builds the release server (unless ASSISTD_BIN is set), starts a private Postgres cluster, then
# bench/pause/bench.py with .venv-e2b (make venv-e2b). Settings: BENCH_SAMPLES=10, BENCH_WORKSPACE_MB=100,
# BENCH_WORKSPACE=/home/user/workspace, ASSISTD_BIN, ASSISTD_SANDBOX_IMAGE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -z "${ASSISTD_BIN:-}" ]; then
  echo "bench-pause: cargo build --release" >&2
  cargo build --release --quiet --bin assistd
  export ASSISTD_BIN=$root/target/release/assistd
fi
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
work=$(mktemp -d /tmp/assistd-bench-pause.XXXXXX)
chmod 755 "$work"
trap 'scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$work/pg")
BENCH_WORK=$work .venv-e2b/bin/python bench/pause/bench.py
