#!/usr/bin/env bash
# A warm-thread code run through the replica that does not hold the session, against the one that does.
#
#   bench/replicas/run.sh        (also `make bench-replicas`)
#
# Builds the release server (unless ASSISTD_BIN is set), starts a private Postgres cluster, then
# bench/replicas/bench.py: two replicas on it and the scripted zero-latency upstream; prints p50/p99 of
# streamed print(1) runs through each replica and the difference against the goal (<= 5 ms at p50).
# Settings: BENCH_RUNS=100 (runs through each replica), BENCH_THREADS=4, ASSISTD_BIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -z "${ASSISTD_BIN:-}" ]; then
  echo "bench-replicas: cargo build --release" >&2
  cargo build --release --quiet --bin assistd
  export ASSISTD_BIN=$root/target/release/assistd
fi
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
work=$(mktemp -d /tmp/assistd-bench-replicas.XXXXXX)
chmod 755 "$work"
trap 'scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$work/pg")
BENCH_WORK=$work .venv/bin/python bench/replicas/bench.py
