"""Session fixtures: a fresh database, the scripted upstream model, and the real assistd binary.

Environment:
  DATABASE_URL   a PostgreSQL server to create the session's database on (else `scripts/pg.sh start .tmp/pg`)
  ASSISTD_BIN    the server binary (default target/debug/assistd)
  ASSISTD_SANDBOX_IMAGE  passed through to the server (default assistd-sandbox:latest)
The server's log goes to .tmp/sdk-tests/server.log; its tail is printed when the server fails to start.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from openai import OpenAI

import assistd_process
from assistd_process import ROOT, with_dbname
from upstream import Upstream

WORK = ROOT / ".tmp" / "sdk-tests"

# Keys sharing a project see the same objects; other projects get 404s and empty lists.
KEY_A = "sk-test-a"
KEY_A2 = "sk-test-a2"
KEY_B = "sk-test-b"
ISOLATED_KEYS = [f"sk-test-iso{i}" for i in range(40)]
KEY_FUZZ = "sk-test-fuzz"  # schemathesis gets a project of its own
UPSTREAM_KEY = "sk-upstream-secret"


@pytest.fixture(scope="session")
def database_url() -> str:
    """A fresh, empty database for this session, dropped at the end."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        base = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start", str(ROOT / ".tmp" / "pg")],
                              check=True, capture_output=True, text=True).stdout.strip()
    name = "assistd_sdk_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_dbname(base, name)
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


@pytest.fixture(scope="session")
def upstream() -> Upstream:
    """The scripted model. Tests take `script` (below) rather than using this directly."""
    up = Upstream().start()
    yield up
    up.stop()


@pytest.fixture
def script(upstream: Upstream):
    """A per-test script; give assistants `model=script.model` so the upstream routes to it."""
    return upstream.script()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The server's blob directory (ASSISTD_DATA_DIR), inside a parent tests can inspect for escapes."""
    return tmp_path_factory.mktemp("assistd") / "data"


@pytest.fixture(scope="session")
def server(database_url: str, upstream: Upstream, data_dir: Path) -> str:
    """Starts assistd on a free port; yields its root URL (no /v1)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = [f"proj_a:{KEY_A}", f"proj_a:{KEY_A2}", f"proj_b:{KEY_B}"]
    keys += [f"proj_iso{i}:{k}" for i, k in enumerate(ISOLATED_KEYS)]
    keys.append(f"proj_fuzz:{KEY_FUZZ}")
    env = {
        "DATABASE_URL": database_url,
        "ASSISTD_API_KEYS": ",".join(keys),
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_UPSTREAM_BASE_URL": upstream.base_url,
        "ASSISTD_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "ASSISTD_SANDBOX_IMAGE": os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
        # Its own sandbox label, so the orphan sweep at start leaves other servers' containers alone.
        "ASSISTD_SANDBOX_INSTANCE": f"sdk-tests-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "2",
        # Retries stay on (a sticky upstream error still exhausts them), just with short waits.
        "ASSISTD_UPSTREAM_RETRY_BASE_MS": "50",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        # Short enough for the code-timeout test, long enough for every other snippet in the suite.
        "ASSISTD_SANDBOX_EXEC_TIMEOUT": os.environ.get("ASSISTD_SANDBOX_EXEC_TIMEOUT", "8"),
    }
    try:
        proc, url = assistd_process.start(env, WORK / "server.log")
    except assistd_process.StartError as e:
        pytest.fail(str(e), pytrace=False)

    yield url

    assistd_process.stop(proc)


def make_client(server: str, key: str, **kwargs) -> OpenAI:
    # No SDK retries: every status code the server returns must reach the test as it was.
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 60)
    return OpenAI(base_url=server + "/v1", api_key=key, **kwargs)


@pytest.fixture(scope="session")
def client(server: str) -> OpenAI:
    """Project A."""
    return make_client(server, KEY_A)


@pytest.fixture(scope="session")
def client_a2(server: str) -> OpenAI:
    """A second key of project A: sees the same objects."""
    return make_client(server, KEY_A2)


@pytest.fixture(scope="session")
def other_client(server: str) -> OpenAI:
    """Project B: must not see project A's objects."""
    return make_client(server, KEY_B)


_isolated = itertools.count()


@pytest.fixture
def isolated_client(server: str) -> OpenAI:
    """A client in a project of its own, so list tests know every object their project holds."""
    i = next(_isolated)
    if i >= len(ISOLATED_KEYS):
        pytest.fail("out of isolated project keys; add more in conftest.py")
    return make_client(server, ISOLATED_KEYS[i])


@pytest.fixture(scope="session")
def http(server: str) -> httpx.Client:
    """Raw HTTP for what the SDK will not send (bad JSON, missing auth, odd query strings)."""
    with httpx.Client(base_url=server + "/v1", timeout=60,
                      headers={"Authorization": f"Bearer {KEY_A}", "OpenAI-Beta": "assistants=v2"}) as c:
        yield c
