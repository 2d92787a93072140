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
. "$(dirname "$0")/../lib.sh" bench-replicas
cd "$root"
bench_server
bench_docker
bench_postgres
BENCH_WORK=$work .venv/bin/python bench/replicas/bench.py
