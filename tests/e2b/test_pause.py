"""Pause and resume, and snapshots, through E2B's own SDK: what a paused sandbox keeps (files in /home/user and
/tmp, a Python variable), that it survives a server restart and comes back on another replica of the same
database, that a snapshot starts a new sandbox, and the errors E2B's SDK expects (409 for a second pause, 404 for
a killed or another project's sandbox)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import httpx
import psycopg
import pytest
from e2b import SandboxNotFoundException
from e2b_code_interpreter import Sandbox

import assistd_process
from conftest import KEY_A, KEY_B, WORK, ROOT, with_dbname


def control(url: str, method: str, path: str, key: str = KEY_A, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{url}/e2b{path}", headers={"X-API-KEY": key}, timeout=60, **kwargs)


def live_sessions(url: str) -> float:
    """The server's live sandbox sessions, from its metrics."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("assistd_sandbox_sessions_live "):
            return float(line.split()[1])
    raise AssertionError("no assistd_sandbox_sessions_live in /metrics")


def fill(sbx: Sandbox, marker: str) -> None:
    sbx.files.write("/home/user/notes/keep.txt", marker)
    sbx.commands.run(f"mkdir -p /tmp/agent/bin && printf '{marker}' > /tmp/agent/bin/tool && chmod +x /tmp/agent/bin/tool")
    execution = sbx.run_code(f"kept = {{'marker': '{marker}', 'n': 41}}")
    assert execution.error is None, execution.error


def assert_kept(sbx: Sandbox, marker: str) -> None:
    assert sbx.files.read("/home/user/notes/keep.txt") == marker
    assert sbx.commands.run("cat /tmp/agent/bin/tool && test -x /tmp/agent/bin/tool").stdout == marker
    execution = sbx.run_code("kept['n'] + 1")
    assert execution.error is None, execution.error
    assert execution.text == "42"
    assert sbx.run_code("kept['marker']").text == repr(marker)


def test_pause_then_connect_keeps_files_and_variables(server):
    sbx = Sandbox.create(timeout=120)
    try:
        marker = uuid.uuid4().hex
        fill(sbx, marker)
        live = live_sessions(server)
        assert sbx.pause() is True
        # Its container is freed.
        assert live_sessions(server) == live - 1
        assert Sandbox.get_info(sbx.sandbox_id).state.value == "paused"
        listed = {s.sandbox_id: s.state.value for s in Sandbox.list().next_items()}
        assert listed.get(sbx.sandbox_id) == "paused"
        # A second pause: E2B answers 409, which the SDK reports as "already paused".
        assert sbx.pause() is False
        answer = control(server, "POST", f"/sandboxes/{sbx.sandbox_id}/pause", json={"memory": True})
        assert answer.status_code == 409
        assert answer.json()["code"] == 409 and "already paused" in answer.json()["message"]

        # Resume: connect answers 201 for a paused sandbox, 200 for a running one.
        answer = control(server, "POST", f"/sandboxes/{sbx.sandbox_id}/connect", json={"timeout": 120})
        assert answer.status_code == 201, answer.text
        answer = control(server, "POST", f"/sandboxes/{sbx.sandbox_id}/connect", json={"timeout": 120})
        assert answer.status_code == 200, answer.text
        resumed = Sandbox.connect(sbx.sandbox_id)
        assert Sandbox.get_info(sbx.sandbox_id).state.value == "running"
        assert_kept(resumed, marker)
    finally:
        sbx.kill()


def test_bad_pause_and_connect_requests_get_e2b_errors(server):
    sbx = Sandbox.create(timeout=60)
    sandbox_id = sbx.sandbox_id
    # Another project's sandbox is not found, for pause, connect and snapshots alike.
    for path in ("pause", "connect", "snapshots"):
        answer = control(server, "POST", f"/sandboxes/{sandbox_id}/{path}", key=KEY_B, json={})
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["code"] == 404
    with pytest.raises(SandboxNotFoundException):
        Sandbox.create_snapshot(sandbox_id, api_key=KEY_B)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.pause(sandbox_id, api_key=KEY_B)
    assert Sandbox.get_info(sandbox_id).state.value == "running"
    sbx.kill()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox_id)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.pause(sandbox_id)
    answer = control(server, "POST", f"/sandboxes/{sandbox_id}/connect", json={"timeout": 30})
    assert answer.status_code == 404 and answer.json()["code"] == 404
    # A snapshot id the project does not have is no template to start from.
    answer = control(server, "POST", "/sandboxes", json={"templateID": "snap_doesnotexist"})
    assert answer.status_code == 404 and answer.json()["code"] == 404
    answer = control(server, "DELETE", "/templates/snap_doesnotexist")
    assert answer.status_code == 404


def test_a_paused_sandbox_with_auto_resume_resumes_on_its_next_request(server):
    sbx = Sandbox.create(timeout=120, lifecycle={"on_timeout": "pause", "auto_resume": True})
    try:
        marker = uuid.uuid4().hex
        fill(sbx, marker)
        assert sbx.pause() is True
        # No connect: the data-plane request itself resumes it.
        assert_kept(sbx, marker)
        assert Sandbox.get_info(sbx.sandbox_id).state.value == "running"
    finally:
        sbx.kill()


def test_a_sandbox_without_auto_resume_stays_paused_until_connected(server):
    sbx = Sandbox.create(timeout=120)
    try:
        sbx.files.write("/home/user/a.txt", "a")
        assert sbx.pause() is True
        with pytest.raises(Exception):
            sbx.files.read("/home/user/a.txt")
        assert Sandbox.get_info(sbx.sandbox_id).state.value == "paused"
        assert Sandbox.connect(sbx.sandbox_id).files.read("/home/user/a.txt") == "a"
    finally:
        sbx.kill()


def test_the_timeout_pauses_a_sandbox_with_auto_pause(server):
    sbx = Sandbox.create(timeout=60, lifecycle={"on_timeout": "pause", "auto_resume": False})
    try:
        marker = uuid.uuid4().hex
        fill(sbx, marker)
        sbx.set_timeout(2)
        deadline = time.monotonic() + 30
        while Sandbox.get_info(sbx.sandbox_id).state.value != "paused":
            assert time.monotonic() < deadline, "the timeout did not pause the sandbox"
            time.sleep(0.5)
        assert_kept(Sandbox.connect(sbx.sandbox_id, timeout=60), marker)
    finally:
        sbx.kill()


def test_a_snapshot_starts_a_new_sandbox_with_its_state(server):
    sbx = Sandbox.create(timeout=120)
    copies = []
    try:
        marker = uuid.uuid4().hex
        fill(sbx, marker)
        snapshot = sbx.create_snapshot()
        assert snapshot.snapshot_id.startswith("snap_")
        assert snapshot.names
        # The source keeps running, and later changes are not in the snapshot.
        sbx.files.write("/home/user/notes/keep.txt", "changed")
        assert Sandbox.get_info(sbx.sandbox_id).state.value == "running"

        copy = Sandbox.create(snapshot.snapshot_id, timeout=120)
        copies.append(copy)
        assert copy.sandbox_id != sbx.sandbox_id
        assert_kept(copy, marker)
        assert sbx.files.read("/home/user/notes/keep.txt") == "changed"

        if hasattr(Sandbox, "list_snapshots"):
            paginator = Sandbox.list_snapshots(sandbox_id=sbx.sandbox_id)
            ids = [s.snapshot_id for s in paginator.next_items()]
            assert ids == [snapshot.snapshot_id]
        # Another project cannot start from it, nor delete it.
        answer = control(server, "POST", "/sandboxes", key=KEY_B, json={"templateID": snapshot.snapshot_id})
        assert answer.status_code == 404
        assert control(server, "DELETE", f"/templates/{snapshot.snapshot_id}", key=KEY_B).status_code == 404

        # It outlives its sandbox, until deleted.
        sbx.kill()
        copies.append(Sandbox.create(snapshot.snapshot_id, timeout=60))
        assert copies[-1].files.read("/home/user/notes/keep.txt") == marker
        assert Sandbox.delete_snapshot(snapshot.snapshot_id) is True
        assert Sandbox.delete_snapshot(snapshot.snapshot_id) is False
        answer = control(server, "POST", "/sandboxes", json={"templateID": snapshot.snapshot_id})
        assert answer.status_code == 404
    finally:
        for s in [sbx, *copies]:
            try:
                s.kill()
            except Exception:  # noqa: BLE001 - killed already
                pass


@pytest.fixture
def replicas():
    """Two servers on one fresh database (another replica, or this one after a restart), started on demand."""
    base = os.environ.get("DATABASE_URL") or subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "start", str(ROOT / ".tmp" / "pg")],
        check=True, capture_output=True, text=True).stdout.strip()
    name = "assistd_e2b_pause_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    data = WORK / ("replicas-" + name)
    data.mkdir(parents=True, exist_ok=True)
    procs = []

    def start(label: str):
        env = {
            "DATABASE_URL": with_dbname(base, name),
            "ASSISTD_API_KEYS": f"proj_a:{KEY_A},proj_b:{KEY_B}",
            "ASSISTD_DATA_DIR": str(data),
            "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
            "ASSISTD_UPSTREAM_API_KEY": "unused",
            "ASSISTD_SANDBOX_IMAGE": os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
            "ASSISTD_SANDBOX_INSTANCE": f"e2b-pause-{label}-{os.getpid()}",
            "ASSISTD_SANDBOX_POOL_SIZE": "1",
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        }
        proc, url = assistd_process.start(env, WORK / f"replica-{label}-{len(procs)}.log")
        procs.append(proc)
        return proc, url

    yield start
    for proc in procs:
        assistd_process.stop(proc)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Three server starts and three warm sandboxes: more than the suite's default limit on a busy machine.
@pytest.mark.timeout(600)
def test_a_paused_sandbox_survives_a_restart_and_resumes_on_another_replica(replicas):
    proc_a, url_a = replicas("a")
    opts = {"api_key": KEY_A, "api_url": url_a + "/e2b", "sandbox_url": url_a + "/e2b/sandbox"}
    sbx = Sandbox.create(timeout=120, **opts)
    marker = uuid.uuid4().hex
    fill(sbx, marker)
    assert Sandbox.pause(sbx.sandbox_id, **opts) is True

    # The same server, restarted: still paused, and it resumes with its state.
    assistd_process.stop(proc_a)
    _, url_a = replicas("a")
    opts = {"api_key": KEY_A, "api_url": url_a + "/e2b", "sandbox_url": url_a + "/e2b/sandbox"}
    assert Sandbox.get_info(sbx.sandbox_id, **opts).state.value == "paused"
    resumed = Sandbox.connect(sbx.sandbox_id, **opts)
    assert_kept(resumed, marker)
    resumed.files.write("/home/user/notes/keep.txt", marker + "-2")
    assert Sandbox.pause(sbx.sandbox_id, **opts) is True

    # Another replica of the same database resumes it, with what it had when paused again.
    _, url_b = replicas("b")
    opts_b = {"api_key": KEY_A, "api_url": url_b + "/e2b", "sandbox_url": url_b + "/e2b/sandbox"}
    on_b = Sandbox.connect(sbx.sandbox_id, **opts_b)
    assert on_b.files.read("/home/user/notes/keep.txt") == marker + "-2"
    assert on_b.run_code("kept['n'] + 1").text == "42"
    on_b.kill()
