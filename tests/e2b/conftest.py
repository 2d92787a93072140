"""The E2B surface through E2B's own SDKs: a fresh database and the real assistd binary, with the SDKs pointed
at it by the three variables an E2B user sets:

    E2B_API_URL=http://HOST:PORT/e2b  E2B_SANDBOX_URL=http://HOST:PORT/e2b/sandbox  E2B_API_KEY=<a server key>

Environment as for tests/sdk (DATABASE_URL, ASSISTD_BIN, ASSISTD_SANDBOX_IMAGE). The server's log goes to
.tmp/e2b-tests/server.log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))

import assistd_process  # noqa: E402
from assistd_process import with_dbname  # noqa: E402

WORK = ROOT / ".tmp" / "e2b-tests"

# Shaped as E2B's keys (py e2b 2.25-2.45 refuses any other shape on the client); any key works here.
KEY_A = "e2b_0a1b2c3d4e5f"
KEY_B = "e2b_b0b0b0b0"
KEY_PLAIN = "sk-e2b-plain"  # project A too: keys of any shape are served


def database(tag: str, **settings: str):
    """A fresh database and the environment of a server on it (a generator: yields the environment, then
    drops the database); replicas of one deployment share it. `settings` are added to the environment."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        base = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start", str(ROOT / ".tmp" / "pg")],
                              check=True, capture_output=True, text=True).stdout.strip()
    name = "assistd_e2b_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    data = WORK / f"data-{tag}"
    data.mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": with_dbname(base, name),
        "ASSISTD_API_KEYS": f"proj_a:{KEY_A},proj_a:{KEY_PLAIN},proj_b:{KEY_B}",
        "ASSISTD_DATA_DIR": str(data),
        # No model is used here; runs are never started.
        "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused",
        "ASSISTD_SANDBOX_IMAGE": os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
        "ASSISTD_SANDBOX_INSTANCE": f"e2b-tests-{tag}-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "2",
        "ASSISTD_SANDBOX_EXEC_TIMEOUT": "20",
        # A box's root filesystem quota, small enough for test_box.py to pass it.
        "ASSISTD_SANDBOX_DISK_MB": "64",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        **settings,
    }
    try:
        yield env
    finally:
        try:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass


def started(env: dict[str, str], tag: str):
    """The server on `env` (a generator: yields its root URL, then stops it). Its log goes to
    .tmp/e2b-tests/{tag}.log."""
    try:
        proc, url = assistd_process.start(env, WORK / f"{tag}.log")
    except assistd_process.StartError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield url
    finally:
        assistd_process.stop(proc)


def serve(tag: str, **settings: str):
    """A server on a fresh database of its own (a generator: yields its root URL, then stops it)."""
    for env in database(tag, **settings):
        yield from started(env, tag)


def point_sdks_at(url: str) -> None:
    """The three variables an E2B user sets."""
    os.environ["E2B_API_URL"] = url + "/e2b"
    os.environ["E2B_SANDBOX_URL"] = url + "/e2b/sandbox"
    os.environ["E2B_API_KEY"] = KEY_A


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    """The environment of the session's server (its replicas share the database)."""
    yield from database("server")


@pytest.fixture(scope="session")
def server(server_env: dict[str, str]) -> str:
    """The server the SDKs are pointed at; yields its root URL."""
    for url in started(server_env, "server"):
        point_sdks_at(url)
        yield url


@pytest.fixture
def sandbox(server):
    """A sandbox of project A, killed afterwards."""
    from e2b_code_interpreter import Sandbox

    sbx = Sandbox.create(timeout=120)
    yield sbx
    try:
        sbx.kill()
    except Exception:  # noqa: BLE001 - the test may have killed it already
        pass
