# assistd — see README.md. Every target installs what it needs on a Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TEST_PGDIR := .tmp/pg-test
TEST_S3DIR := .tmp/s3-test
RUN_PGDIR  := .assistd/pg
NODE_DEPS  := tests/node/node_modules/.package-lock.json
# The SDK suites run again with the newest openai release (the whole suite runs with 1.109.1).
SDK3_TESTS := tests/sdk/test_streaming.py tests/sdk/test_assistant_stream.py tests/sdk/test_streaming_tools.py tests/sdk/test_azure.py tests/sdk/test_responses.py tests/sdk/test_response_items.py tests/sdk/test_context_items.py tests/sdk/test_agents.py tests/sdk/test_response_context.py tests/sdk/test_responses_socket.py tests/sdk/test_skills.py tests/sdk/test_shell.py tests/sdk/test_agents_shell.py tests/sdk/test_rerank.py

.PHONY: help docker sandbox-image venv venv-sdk3 venv-e2b venv-e2b-29 venv-agents-e2b test-e2b build run test test-rust test-sdk test-node compose-check lint bench-api bench-sandbox bench-pool bench-fidelity bench-runs bench-load bench-replicas bench-retrieval bench-e2b bench-egress chromium bench-skills bench-shell bench-pty bench-pause

help:
	@echo "make run            build everything and serve on ASSISTD_ADDR (default 127.0.0.1:8080)"
	@echo "make test           the whole test suite (Rust + official Python and Node.js SDKs), as CI runs it"
	@echo "make test-node      the official Node.js SDK suite (tests/node) against the real server"
	@echo "make test-e2b       E2B's SDKs against the /e2b surface (tests/e2b)"
	@echo "make sandbox-image  build assistd-sandbox:latest without any registry (idempotent)"
	@echo "make lint           cargo fmt --check and clippy -D warnings"
	@echo "make bench-api | bench-sandbox | bench-pool | bench-fidelity | bench-runs | bench-load | bench-replicas | bench-e2b | bench-egress | bench-retrieval | bench-skills | bench-shell | bench-pty | bench-pause   benchmarks (see bench/README.md)"

docker:
	@scripts/ensure-docker.sh

sandbox-image: docker
	@sandbox/build-image.sh

venv:
	@scripts/venv.sh

# The newest openai release, for the suites that must pass on both SDK generations.
venv-sdk3:
	@scripts/venv.sh .venv-sdk3 tests/sdk/requirements-sdk3.txt

# E2B's SDKs (e2b-code-interpreter and e2b), for the E2B surface's suite (tests/e2b).
venv-e2b:
	@scripts/venv.sh .venv-e2b tests/e2b/requirements.txt

# The oldest e2b-code-interpreter served (2.9.0, with e2b 2.51.0), for the same suite.
venv-e2b-29:
	@scripts/venv.sh .venv-e2b-29 tests/e2b/requirements-2.9.txt

# OpenAI's Agents SDK with its E2B sandbox client, for the agent-harness suite (tests/agents_e2b).
venv-agents-e2b:
	@scripts/venv.sh .venv-agents-e2b tests/agents_e2b/requirements.txt

build:
	cargo build --release --locked

# A fresh Debian machine to a running server: Docker engine, the sandbox image, a local
# Postgres cluster when DATABASE_URL is unset, the release build, then `assistd serve`.
run: sandbox-image build
	@export DATABASE_URL="$${DATABASE_URL:-$$(scripts/pg.sh start $(RUN_PGDIR))}"; \
	mkdir -p .assistd; \
	export ASSISTD_DATA_DIR="$${ASSISTD_DATA_DIR:-.assistd/data}"; \
	exec target/release/assistd serve

# The whole suite on a private Postgres (unless DATABASE_URL is set), the real Docker engine and a
# private S3 server (s3s-fs, installed on first use) for the ASSISTD_BLOB_URL=s3://... tests.
test: sandbox-image venv venv-sdk3 venv-e2b venv-e2b-29 venv-agents-e2b chromium test-node
	@set -euo pipefail; \
	export DATABASE_URL="$${DATABASE_URL:-$$(PG_FAST=1 scripts/pg.sh start $(TEST_PGDIR))}"; \
	scripts/s3-server.sh start $(TEST_S3DIR) >/dev/null; \
	cargo build --locked --all-targets; \
	cargo test --locked --all-targets; \
	.venv/bin/pytest sandbox/test_driver.py -q -p no:cacheprovider; \
	.venv/bin/pytest tests/sdk -q -p no:cacheprovider; \
	.venv-sdk3/bin/pytest $(SDK3_TESTS) -q -p no:cacheprovider; \
	.venv-e2b/bin/pytest tests/e2b -q -p no:cacheprovider; \
	.venv-e2b-29/bin/pytest tests/e2b -q -p no:cacheprovider; \
	.venv-agents-e2b/bin/pytest tests/agents_e2b -q -p no:cacheprovider; \
	scripts/compose-check.sh

test-rust: sandbox-image
	@export DATABASE_URL="$${DATABASE_URL:-$$(PG_FAST=1 scripts/pg.sh start $(TEST_PGDIR))}"; \
	scripts/s3-server.sh start $(TEST_S3DIR) >/dev/null && \
	cargo test --locked --all-targets

test-sdk: sandbox-image venv chromium
	@export DATABASE_URL="$${DATABASE_URL:-$$(PG_FAST=1 scripts/pg.sh start $(TEST_PGDIR))}"; \
	scripts/s3-server.sh start $(TEST_S3DIR) >/dev/null && \
	cargo build --locked && .venv/bin/pytest tests/sdk -q -p no:cacheprovider

# The E2B surface through E2B's own SDKs (tests/e2b) against the real binary.
test-e2b: sandbox-image venv-e2b venv-e2b-29
	@export DATABASE_URL="$${DATABASE_URL:-$$(PG_FAST=1 scripts/pg.sh start $(TEST_PGDIR))}"; \
	cargo build --locked && .venv-e2b/bin/pytest tests/e2b -q -p no:cacheprovider && \
	.venv-e2b-29/bin/pytest tests/e2b -q -p no:cacheprovider

# Debian's Chromium, which tests/sdk/test_playground.py drives through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium" >&2; export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The official Node.js SDK (openai on npm, pinned by tests/node/package-lock.json) against the real binary:
# tests/node/harness.py starts the scripted upstream and assistd on a fresh database, then `node --test`.
test-node: sandbox-image venv $(NODE_DEPS)
	@export DATABASE_URL="$${DATABASE_URL:-$$(PG_FAST=1 scripts/pg.sh start $(TEST_PGDIR))}"; \
	cargo build --locked && .venv/bin/python tests/node/harness.py

# `npm ci` into tests/node/node_modules when it is missing or older than the lock (Node.js from Debian if absent).
$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "installing nodejs and npm" >&2; export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	@cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# docker-compose.yml is valid, the assistd image builds (with the binary built here) and its
# container starts against the test Postgres and answers /healthz and /readyz.
compose-check: sandbox-image
	@export DATABASE_URL="$${DATABASE_URL:-$$(PG_FAST=1 scripts/pg.sh start $(TEST_PGDIR))}"; \
	cargo build --locked && scripts/compose-check.sh

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

bench-api:
	@bench/api/run.sh

bench-sandbox: sandbox-image
	@bench/sandbox/run.sh

bench-pool: sandbox-image
	@bench/sandbox/pool.sh

bench-fidelity: sandbox-image
	@bench/fidelity/run.sh

bench-runs: sandbox-image venv
	@bench/runs/run.sh

bench-load: sandbox-image venv
	@bench/load/run.sh

bench-replicas: sandbox-image venv
	@bench/replicas/run.sh

# DATA=<a BEIR-format folder> (corpus.jsonl, queries.jsonl, qrels/test.tsv); see bench/README.md.
bench-retrieval: venv
	@DATA="$(DATA)" bench/retrieval/run.sh

bench-e2b: sandbox-image venv-e2b
	@bench/e2b/run.sh

bench-egress: sandbox-image venv-e2b
	@bench/egress/run.sh

bench-skills: sandbox-image venv-sdk3
	@bench/skills/run.sh

bench-shell: sandbox-image
	@bench/shell/run.sh

# An E2B sandbox through the Agents SDK's E2B client: PTY echo round trip, tar persistence of a 100 MB workspace.
bench-pty: sandbox-image venv-agents-e2b
	@bench/pty/run.sh

bench-pause: sandbox-image venv-e2b
	@bench/pause/run.sh
