#!/usr/bin/env bash
# An E2B sandbox as agent harnesses use it, through the Agents SDK's E2B client (openai-agents[e2b], with the
# e2b it pins): a PTY keystroke's echo round trip, and the tar persistence of a 100 MB workspace through
# stdout, each beside `docker exec` doing the same in the same run.
#
#   bench/pty/run.sh        (also `make bench-pty`)
#
# Builds the release server (unless ASSISTD_BIN is set), starts a private Postgres cluster, then
# bench/pty/bench.py with .venv-agents-e2b (make venv-agents-e2b). Goals: echo p50 <= 5 ms, tar >= 100 MB/s.
# Settings: BENCH_SAMPLES=200 (keystrokes), BENCH_TAR_MB=100, BENCH_TAR_RUNS=3, ASSISTD_BIN,
# ASSISTD_SANDBOX_IMAGE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -z "${ASSISTD_BIN:-}" ]; then
  echo "bench-pty: cargo build --release" >&2
  cargo build --release --quiet --bin assistd
  export ASSISTD_BIN=$root/target/release/assistd
fi
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
work=$(mktemp -d /tmp/assistd-bench-pty.XXXXXX)
chmod 755 "$work"
trap 'scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$work/pg")
BENCH_WORK=$work .venv-agents-e2b/bin/python bench/pty/bench.py
