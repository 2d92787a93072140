"""Sandbox ownership on a shared Docker engine: deployments (databases) with the default sandbox label leave each
other's containers alone whatever the other does, and replicas of one deployment remove a crashed sibling's.

Each test starts its own assistd processes on databases of their own, with the default `ASSISTD_SANDBOX_INSTANCE`
(`assistd`); containers are told apart by their `assistd.deployment` and `assistd.worker` labels.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import psycopg
import pytest

from assistd_process import with_dbname
from test_lifecycle import Server
from upstream import tool_outputs

DEFAULT_INSTANCE = "assistd"


def docker_ps(*filters: str, running: bool = True) -> set[str]:
    args = ["docker", "ps", "-q", "--no-trunc"] + ([] if running else ["-a"])
    for f in filters:
        args += ["--filter", f]
    return set(subprocess.run(args, capture_output=True, text=True, check=True).stdout.split())


def deployment_of(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT id FROM deployment").fetchone()[0]


def holder(database_url: str, thread_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT worker FROM placements WHERE thread_id = %s", (thread_id,)).fetchone()[0]


@pytest.fixture
def databases(database_url: str):
    """Makes fresh databases on the test Postgres server; drops them (and their deployments' containers) after."""
    made: list[str] = []

    def make() -> str:
        name = "assistd_dep_" + uuid.uuid4().hex[:10]
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return with_dbname(database_url, name)

    yield make
    for name in made:
        url = with_dbname(database_url, name)
        try:
            deployment = deployment_of(url)
        except (psycopg.Error, TypeError):
            deployment = None
        if deployment:  # whatever a killed server left behind
            left = docker_ps(f"label=assistd.deployment={deployment}", running=False)
            if left:
                subprocess.run(["docker", "rm", "-f", "-v", *left], capture_output=True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def start(upstream, tmp_path):
    """Starts a server on a database with the default sandbox label; stops what is still running at the end."""
    started: list[Server] = []

    def go(database: str, **env: str) -> Server:
        # One blob directory per database: a restarted server finds its checkpoints.
        s = Server(database, upstream, tmp_path / database.rsplit("/", 1)[1], DEFAULT_INSTANCE,
                   ASSISTD_SANDBOX_CHECKPOINT_SECS="1", **env)
        started.append(s)
        return s

    yield go
    for s in started:
        if s.proc.poll() is None:
            s.terminate()


def run_code(server: Server, script, assistant_id: str, thread_id: str, code: str) -> str:
    """A polled run whose model runs `code`; returns what the model read back."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("ok")
    run = server.client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id,
                                                          poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    return tool_outputs(script.requests[-1])[-1]


def live_session(server: Server, script, value: int):
    assistant = server.client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    thread = server.client.beta.threads.create()
    run_code(server, script, assistant.id, thread.id, f"kept = {value}")
    return assistant, thread


def wait_for_a_warm_sandbox(server: Server) -> None:
    deadline = time.monotonic() + 60
    while True:
        gauge = [line for line in httpx.get(server.url + "/metrics").text.splitlines()
                 if line.startswith("assistd_sandbox_sessions_pooled ")]
        if gauge and float(gauge[0].rsplit(" ", 1)[1]) >= 1:
            return
        assert time.monotonic() < deadline, "the replica never warmed its pool"
        time.sleep(0.2)


def test_two_deployments_with_the_default_label_keep_their_sessions_whatever_the_other_does(
        databases, start, script):
    db_a, db_b = databases(), databases()
    a, b = start(db_a), start(db_b)
    dep_a, dep_b = deployment_of(db_a), deployment_of(db_b)
    assert dep_a != dep_b, "each database is a deployment of its own"

    assistant_a, thread_a = live_session(a, script, 41)
    of_a = docker_ps(f"label=assistd.deployment={dep_a}")
    assert of_a, "A's sandbox carries A's deployment id"

    # B starts, runs, restarts gracefully, is killed and starts again.
    live_session(b, script, 7)
    assert b.terminate() == 0
    b = start(db_b)
    live_session(b, script, 8)
    b.kill()
    b = start(db_b)
    assert of_a <= docker_ps(f"label=assistd.deployment={dep_a}"), "A's containers survived B's life"
    assert f"owned by another deployment ({dep_a})" in b.log_path.read_text(), \
        "B's start-up sweep says why it left A's containers"
    assert run_code(a, script, assistant_a.id, thread_a.id, "print(kept + 1)") == "42\n", \
        "A's session is the same live one: no restore, no notice"

    # The other way round: A restarts and is killed while B holds a live session.
    assistant_b, thread_b = live_session(b, script, 99)
    of_b = docker_ps(f"label=assistd.deployment={dep_b}")
    assert a.terminate() == 0
    a = start(db_a)
    a.kill()
    a = start(db_a)
    assert of_b <= docker_ps(f"label=assistd.deployment={dep_b}"), "B's containers survived A's life"
    assert run_code(b, script, assistant_b.id, thread_b.id, "print(kept + 1)") == "100\n"


def test_a_crashed_replicas_sandboxes_are_removed_by_its_sibling_and_no_others(databases, start, script):
    db = databases()
    a = start(db, ASSISTD_SANDBOX_POOL_SIZE="1", ASSISTD_SANDBOX_POOL_MAX="1")
    b = start(db, ASSISTD_SANDBOX_POOL_SIZE="1", ASSISTD_SANDBOX_POOL_MAX="1")
    _, thread_a = live_session(a, script, 1)
    wait_for_a_warm_sandbox(b)  # so that B's first session is a pool hit, which /metrics shows below
    assistant_b, thread_b = live_session(b, script, 2)
    worker_a, worker_b = holder(db, thread_a.id), holder(db, thread_b.id)
    assert worker_a != worker_b
    deadline = time.monotonic() + 60
    while len(docker_ps(f"label=assistd.worker={worker_a}")) < 2:  # the session and a warm one
        assert time.monotonic() < deadline, "A never warmed its pool"
        time.sleep(0.2)
    of_b = docker_ps(f"label=assistd.worker={worker_b}")

    a.kill()
    deadline = time.monotonic() + 40
    while docker_ps(f"label=assistd.worker={worker_a}", running=False):
        assert time.monotonic() < deadline, "the killed replica's sandboxes are still there"
        time.sleep(0.5)
    assert of_b <= docker_ps(f"label=assistd.worker={worker_b}"), "B kept its own"
    assert f"its worker {worker_a} stopped" in b.log_path.read_text()
    assert run_code(b, script, assistant_b.id, thread_b.id, "print(kept)") == "2\n"

    # B's one new session found its warm sandbox: /metrics says so.
    metrics = httpx.get(b.url + "/metrics").text
    hits = [line for line in metrics.splitlines()
            if line.startswith('assistd_sandbox_pool_takes_total{result="hit"}')]
    assert hits and float(hits[0].rsplit(" ", 1)[1]) >= 1, metrics
    assert "assistd_sandbox_pool_wait_seconds" in metrics and "assistd_sandbox_pool_target" in metrics
