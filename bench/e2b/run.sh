#!/usr/bin/env bash
# E2B's Python SDK against assistd's /e2b surface: Sandbox.create() on a pool hit, a sandbox's first cells
# (Python, then JS; and JS first) with its session from a full pool, run_code("x+1") in a warm sandbox, a
# JavaScript cell, beside a cold `docker run` of the sandbox image.
#
#   bench/e2b/run.sh        (also `make bench-e2b`)
#
# Builds the release server (unless ASSISTD_BIN is set), starts a private Postgres cluster, then
# bench/e2b/bench.py with .venv-e2b (make venv-e2b). Prints p50/p99 against the goals (create <= 20 ms,
# run_code <= 5 ms, a JS cell <= 10 ms). Settings: BENCH_SAMPLES=50,
# BENCH_FIRST_SAMPLES=10, ASSISTD_BIN, ASSISTD_SANDBOX_IMAGE.
set -euo pipefail
. "$(dirname "$0")/../lib.sh" bench-e2b
cd "$root"
bench_server
bench_docker
bench_postgres
BENCH_WORK=$work .venv-e2b/bin/python bench/e2b/bench.py
