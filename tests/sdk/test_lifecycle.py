"""Runs across the server's own lifecycle: expiry, a crash and restart, a graceful shutdown.

Each test starts its own assistd processes (on a database of their own), since it stops them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

import assistd_process
from assistd_process import with_dbname
from conftest import WORK, make_client
from helpers import wait_for_run

KEY = "sk-lifecycle"


@pytest.fixture
def lifecycle_db(database_url: str) -> str:
    name = "assistd_life_" + uuid.uuid4().hex[:10]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_dbname(database_url, name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Server:
    """One assistd process; several may use the same database one after the other."""

    def __init__(self, database_url: str, upstream, tmp: Path, instance: str, **env: str):
        self.instance = instance
        env = {
            "DATABASE_URL": database_url,
            "ASSISTD_API_KEYS": KEY,
            "ASSISTD_DATA_DIR": str(tmp / "data"),
            "ASSISTD_UPSTREAM_BASE_URL": upstream.base_url,
            "ASSISTD_UPSTREAM_RETRY_BASE_MS": "50",
            # One label per test: a restarted server removes what a killed one left behind.
            "ASSISTD_SANDBOX_INSTANCE": instance,
            "ASSISTD_SANDBOX_POOL_SIZE": "0",
            "ASSISTD_SANDBOX_POOL_MAX": "0",
            **env,
        }
        self.log_path = WORK / f"lifecycle-{instance}-{uuid.uuid4().hex[:6]}.log"
        self.proc, self.url = assistd_process.start(env, self.log_path)
        self.client = make_client(self.url, KEY)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        return assistd_process.stop(self.proc, timeout=timeout)


@pytest.fixture
def servers(lifecycle_db, upstream, tmp_path):
    started: list[Server] = []
    instance = f"life-{uuid.uuid4().hex[:8]}"

    def start(**env: str) -> Server:
        s = Server(lifecycle_db, upstream, tmp_path, instance, **env)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.terminate()
    # Whatever a killed server left, and the last server did not sweep at its start.
    leftovers = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=assistd.instance={instance}"],
                               capture_output=True, text=True).stdout.split()
    if leftovers:
        subprocess.run(["docker", "rm", "-f", "-v", *leftovers], capture_output=True)


def test_an_unanswered_requires_action_run_expires(servers, script):
    server = servers(ASSISTD_RUN_EXPIRY_SECS="2")
    client = server.client
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    assistant = client.beta.assistants.create(model=script.model, tools=[tool])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "look it up"}])
    script.push_function_call("lookup", {})
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=100)
    assert run.status == "requires_action"
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id

    run = wait_for_run(client, thread.id, run.id, timeout=20, statuses={"expired"})
    assert run.required_action is None
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert [s.status for s in steps] == ["expired"]
    with pytest.raises(Exception) as refused:
        client.beta.threads.runs.submit_tool_outputs(run_id=run.id, thread_id=thread.id,
                                                     tool_outputs=[{"tool_call_id": call_id, "output": "x"}])
    assert getattr(refused.value, "status_code", None) == 400
    # The thread takes new messages and runs again.
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="still there?")


def test_killing_the_server_mid_run_fails_the_run_at_the_next_start(servers, script):
    first = servers(ASSISTD_SANDBOX_POOL_SIZE="1")
    client = first.client
    assistant = client.beta.assistants.create(model=script.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "take your time"}])
    script.push_text("too late", delay=60)
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_for_run(client, thread.id, run.id, statuses={"in_progress"})
    deadline = time.monotonic() + 60
    while not subprocess.run(["docker", "ps", "-q", "--filter", f"label=assistd.instance={first.instance}"],
                             capture_output=True, text=True).stdout.split():
        assert time.monotonic() < deadline, "the first server never started its warm sandbox"
        time.sleep(0.2)
    first.kill()

    second = servers()
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=assistd.instance={second.instance}",
                           "--filter", "status=running"], capture_output=True, text=True).stdout.split()
    assert left == [], "the sandbox the killed server left behind is removed at the next start"
    run = wait_for_run(second.client, thread.id, run.id, timeout=45)
    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    assert run.failed_at is not None and run.expires_at is None

    script.turns.clear()
    script.push_text("back again")
    again = second.client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                            poll_interval_ms=100)
    assert again.status == "completed"


def test_a_message_cut_off_by_a_killed_server_is_left_incomplete(servers, script):
    first = servers()
    client = first.client
    assistant = client.beta.assistants.create(model=script.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "talk slowly"}])
    script.push_text("one two three four five six seven eight nine ten", chunk_delay=2.0)
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 30
    while [m.role for m in client.beta.threads.messages.list(thread.id).data] != ["assistant", "user"]:
        assert time.monotonic() < deadline, "the run never opened its message"
        time.sleep(0.1)
    first.kill()

    second = servers()
    run = wait_for_run(second.client, thread.id, run.id, timeout=45)
    assert run.status == "failed"
    message = second.client.beta.threads.messages.list(thread.id).data[0]
    assert message.role == "assistant" and message.run_id == run.id
    assert message.status == "incomplete"
    assert message.incomplete_details.reason == "run_failed"
    assert message.incomplete_at is not None
    steps = second.client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert steps and all(s.status == "failed" for s in steps)


def test_a_graceful_shutdown_fails_running_runs_and_leaves_queued_ones_for_the_next_start(servers, script):
    first = servers(ASSISTD_MAX_CONCURRENT_RUNS="1", ASSISTD_SHUTDOWN_GRACE_SECS="1")
    client = first.client
    assistant = client.beta.assistants.create(model=script.model)
    busy = client.beta.threads.create(messages=[{"role": "user", "content": "slow"}])
    waiting = client.beta.threads.create(messages=[{"role": "user", "content": "next"}])
    script.push_text("too late", delay=60)
    running = client.beta.threads.runs.create(thread_id=busy.id, assistant_id=assistant.id)
    wait_for_run(client, busy.id, running.id, statuses={"in_progress"})
    queued = client.beta.threads.runs.create(thread_id=waiting.id, assistant_id=assistant.id)
    time.sleep(1.5)
    assert client.beta.threads.runs.retrieve(queued.id, thread_id=waiting.id).status == "queued"

    started = time.monotonic()
    assert first.terminate() == 0
    assert time.monotonic() - started < 15, "shutdown is bounded by the grace period"

    script.turns.clear()
    script.push_text("picked up after the restart")
    second = servers()
    failed = second.client.beta.threads.runs.retrieve(running.id, thread_id=busy.id)
    assert failed.status == "failed" and failed.last_error.code == "server_error"
    done = wait_for_run(second.client, waiting.id, queued.id, timeout=30)
    assert done.status == "completed"


def test_deleting_a_thread_stops_its_run(servers, script):
    server = servers()
    client = server.client
    assistant = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "sleep"}])
    script.push_tool_call("code_interpreter", {"code": "import time; time.sleep(60)"})
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_for_run(client, thread.id, run.id, statuses={"in_progress"})
    time.sleep(1.0)  # the code is running now
    requests_before = len(script.requests)
    deleted = client.beta.threads.delete(thread.id)
    assert deleted.deleted
    time.sleep(2.0)
    assert len(script.requests) == requests_before, "the run did not go on to call the model"
    with pytest.raises(Exception) as gone:
        client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert getattr(gone.value, "status_code", None) == 404


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_json_logs_carry_request_and_run_ids_and_metrics_follow_runs(servers, script):
    server = servers(ASSISTD_LOG_FORMAT="json")
    client = server.client
    http = httpx.Client(base_url=server.url)
    reply = http.get("/v1/assistants", headers={"Authorization": f"Bearer {KEY}", "x-request-id": "req-lifecycle-1"})
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "req-lifecycle-1"

    before = http.get("/metrics").text
    assistant = client.beta.assistants.create(model=script.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    script.push_text("hello")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=100)
    assert run.status == "completed"
    after = http.get("/metrics").text
    assert _metric(after, "assistd_runs_total", status="completed") == \
        _metric(before, "assistd_runs_total", status="completed") + 1
    assert _metric(after, "assistd_upstream_calls_total", outcome="ok") > \
        _metric(before, "assistd_upstream_calls_total", outcome="ok")
    assert _metric(after, "assistd_http_requests_total", route="/v1/assistants", status="200") >= 2

    server.terminate()
    lines = [json.loads(l) for l in server.log_path.read_text().splitlines()
             if l.startswith("{")]
    assert lines, "the log is JSON"
    assert any("req-lifecycle-1" in json.dumps(l) for l in lines), "request lines carry their x-request-id"
    run_lines = [l for l in lines if run.id in json.dumps(l)]
    assert any("run started" in json.dumps(l) for l in run_lines)
    assert any("run stopped" in json.dumps(l) for l in run_lines)
