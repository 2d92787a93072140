#!/usr/bin/env bash
# Fidelity bench: cells written the way models write them, per library, in sandboxes with the
# server's limits (bench/README.md, "Fidelity").
#
#   bench/fidelity/run.sh [--only NAME]     (also `make bench-fidelity`, which builds the image first)
#
# Settings (environment): ASSISTD_SANDBOX_IMAGE (default assistd-sandbox:latest),
# ASSISTD_SANDBOX_INSTANCE (label of its containers, default bench-fidelity), BENCH_BIN (use
# this binary instead of building examples/bench_fidelity.rs), RUST_LOG (default warn).
# Exit status 3 when a cell fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
instance=${ASSISTD_SANDBOX_INSTANCE:-bench-fidelity}
cd "$root"
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --quiet --release --locked --example bench_fidelity
  BENCH_BIN=target/release/examples/bench_fidelity
fi
sweep() {
  docker ps -aq --filter label=assistd.instance=$instance | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker volume ls -q --filter label=assistd.instance=$instance | xargs -r docker volume rm -f >/dev/null 2>&1 || true
}
trap sweep EXIT
ASSISTD_SANDBOX_INSTANCE=$instance RUST_LOG=${RUST_LOG:-warn} "$BENCH_BIN" --cells bench/fidelity/cells "$@"
