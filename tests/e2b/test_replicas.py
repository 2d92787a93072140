"""Two replicas of one deployment (two servers on one database): an E2B sandbox's session lives on one of them,
and its data-plane calls reach it through either (the other proxies them, streams included).

The SDK is pointed at replica A by the environment (conftest's `server`); a second `Sandbox` object for the same
sandbox is made with E2B_API_URL / E2B_SANDBOX_URL pointing at replica B, as an app behind a load balancer would be.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import psycopg
import pytest
from e2b import CommandExitException, SandboxNotFoundException
from e2b_code_interpreter import Sandbox

import assistd_process
from conftest import WORK


@pytest.fixture(scope="module")
def replica_b(server: str, server_env: dict[str, str]) -> str:
    """A second server on the server's database, with the same settings (a replica of the same deployment)."""
    proc, url = start_replica(server_env, "server-b.log")
    yield url
    assistd_process.stop(proc)


def start_replica(env: dict[str, str], log: str) -> tuple:
    """Starts a replica and waits until its pool has a warm sandbox, so a first call there is not a cold start (which
    takes minutes on a loaded host)."""
    try:
        proc, url = assistd_process.start(env, WORK / log)
    except assistd_process.StartError as e:
        pytest.fail(str(e), pytrace=False)
    deadline = time.monotonic() + 180
    while True:
        gauge = [line for line in httpx.get(url + "/metrics").text.splitlines()
                 if line.startswith("assistd_sandbox_sessions_pooled ")]
        if gauge and float(gauge[0].rsplit(" ", 1)[1]) >= 1:
            return proc, url
        if time.monotonic() > deadline:
            assistd_process.stop(proc)
            pytest.fail("the replica never warmed its pool", pytrace=False)
        time.sleep(0.2)


def through(replica: str, sandbox_id: str) -> Sandbox:
    """The sandbox, its control- and data-plane calls sent to `replica` by the variables an E2B user sets (the
    SDK reads them when the object is made; conftest points them at replica A again afterwards)."""
    api, sandbox = os.environ["E2B_API_URL"], os.environ["E2B_SANDBOX_URL"]
    os.environ["E2B_API_URL"], os.environ["E2B_SANDBOX_URL"] = replica + "/e2b", replica + "/e2b/sandbox"
    try:
        return Sandbox.connect(sandbox_id)
    finally:
        os.environ["E2B_API_URL"], os.environ["E2B_SANDBOX_URL"] = api, sandbox


def holder(server_env: dict[str, str], sandbox_id: str) -> tuple[str, str]:
    """The replica holding the sandbox's session: its worker id and advertised address."""
    with psycopg.connect(server_env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT p.worker, w.address FROM placements p JOIN workers w ON w.id = p.worker "
                           "WHERE p.thread_id = %s", (sandbox_id,)).fetchone()
    assert row, f"no replica holds {sandbox_id}"
    return row


def test_a_sandbox_used_through_one_replica_is_served_through_the_other(server, replica_b, server_env):
    a = Sandbox.create(timeout=120)
    try:
        a.run_code("kept = 41")
        worker, address = holder(server_env, a.sandbox_id)
        assert address == server

        b = through(replica_b, a.sandbox_id)
        assert b.run_code("kept + 1").text == "42"

        # run_code's NDJSON streams through the hop: the first line arrives while the cell sleeps.
        seen = []
        started = time.monotonic()
        b.run_code("import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')",
                   on_stdout=lambda message: seen.append((message.line, time.monotonic() - started)))
        ended = time.monotonic() - started
        assert [line for line, _ in seen] == ["first\n", "second\n"]
        assert seen[0][1] < ended - 1.5, f"the first line came at {seen[0][1]:.2f}s, the cell ended at {ended:.2f}s"

        # Connect's server stream (process.Process/Start) and its exit codes.
        lines = []
        result = b.commands.run("echo one; sleep 1; echo two", on_stdout=lines.append)
        assert result.stdout == "one\ntwo\n" and lines == ["one\n", "two\n"]
        with pytest.raises(CommandExitException) as exited:
            b.commands.run("exit 3")
        assert exited.value.exit_code == 3

        # Files both ways: bytes written through B are what code run through A reads, and the reverse.
        b.files.write("via_b.txt", "written through B")
        assert a.run_code("print(open('/home/user/via_b.txt').read())").logs.stdout == ["written through B\n"]
        a.run_code("open('/home/user/via_a.txt', 'w').write('written by code through A')")
        assert b.files.read("via_a.txt") == "written by code through A"
        assert {entry.name for entry in b.files.list("/home/user")} >= {"via_a.txt", "via_b.txt"}

        # A client cannot pass for a replica to make B serve the sandbox itself: still A's session.
        answer = httpx.post(replica_b + "/e2b/sandbox/execute", json={"code": "kept"}, timeout=60,
                            headers={"E2b-Sandbox-Id": a.sandbox_id, "E2b-Sandbox-Port": "49999",
                                     "X-Access-Token": a._envd_access_token,
                                     "X-Assistd-Forwarded-By": "worker_0123456789abcdef"})
        assert answer.status_code == 200
        results = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
        assert [r["text"] for r in results if r.get("type") == "result"] == ["41"], results

        # The session never moved: A still holds it and has the state B's calls made.
        assert holder(server_env, a.sandbox_id) == (worker, address)
        assert a.run_code("kept").text == "41"
    finally:
        a.kill()


def test_the_first_replica_to_use_a_sandbox_holds_it(server, replica_b, server_env):
    a = Sandbox.create(timeout=120)
    try:
        b = through(replica_b, a.sandbox_id)
        b.run_code("made_on_b = 'yes'")
        assert holder(server_env, a.sandbox_id)[1] == replica_b
        assert a.run_code("made_on_b").text == "'yes'"
        assert a.commands.run("echo hi").stdout == "hi\n"
        assert holder(server_env, a.sandbox_id)[1] == replica_b
    finally:
        a.kill()


def test_a_killed_sandbox_is_gone_through_either_replica(server, replica_b):
    a = Sandbox.create(timeout=120)
    a.run_code("x = 1")
    b = through(replica_b, a.sandbox_id)
    assert b.kill()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(a.sandbox_id)


@pytest.fixture(scope="module")
def unreachable_replica(server: str, server_env: dict[str, str]) -> str:
    """A replica of the deployment advertising an address nobody can reach (a misconfigured ASSISTD_ADVERTISE_URL)."""
    env = dict(server_env, ASSISTD_ADVERTISE_URL="http://127.0.0.1:9")
    proc, url = start_replica(env, "server-c.log")
    yield url
    assistd_process.stop(proc)


def test_a_holder_that_cannot_be_reached_is_a_clear_error_and_changes_nothing(server, unreachable_replica,
                                                                            server_env):
    a = Sandbox.create(timeout=120)
    try:
        c = through(unreachable_replica, a.sandbox_id)
        c.run_code("kept = 7")
        worker, address = holder(server_env, a.sandbox_id)
        assert address == "http://127.0.0.1:9"

        answer = httpx.post(server + "/e2b/sandbox/execute", json={"code": "kept"}, timeout=60,
                            headers={"E2b-Sandbox-Id": a.sandbox_id, "E2b-Sandbox-Port": "49999",
                                     "X-Access-Token": a._envd_access_token})
        assert answer.status_code == 502
        body = answer.json()
        assert body["code"] == 502
        assert "http://127.0.0.1:9" in body["message"] and worker not in body["message"]
        assert "ASSISTD_ADVERTISE_URL" in body["message"]

        # The session stayed where it was, with its state.
        assert holder(server_env, a.sandbox_id) == (worker, address)
        assert c.run_code("kept").text == "7"
    finally:
        a.kill()
