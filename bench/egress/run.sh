#!/usr/bin/env bash
# The egress proxy against direct network: a 100 MB download and connection set-up (see bench.py).
#
#   bench/egress/run.sh        (also `make bench-egress`)
#   bench/egress/run.sh hops   the path measured hop by hop, with each process's CPU (see hops.py)
#
# Builds the release server (unless ASSISTD_BIN is set), starts a private Postgres cluster, then
# bench/egress/bench.py with .venv-e2b (make venv-e2b). Adds test names to /etc/hosts for the run
# (root). Settings: BENCH_MB=100, BENCH_SAMPLES=200, ASSISTD_BIN, ASSISTD_SANDBOX_IMAGE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -z "${ASSISTD_BIN:-}" ]; then
  echo "bench-egress: cargo build --release" >&2
  cargo build --release --quiet --bin assistd
  export ASSISTD_BIN=$root/target/release/assistd
fi
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
work=$(mktemp -d /tmp/assistd-bench-egress.XXXXXX)
chmod 755 "$work"
trap 'scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$work/pg")
BENCH_WORK=$work .venv-e2b/bin/python "bench/egress/${1:-bench}.py"
