"""Session fixtures: a fresh database, the scripted upstream model, and the real assistd binary.

Environment:
  DATABASE_URL   a PostgreSQL server to create the session's databases on (else `scripts/pg.sh start .tmp/pg`)
  ASSISTD_BIN    the server binary (default target/debug/assistd)
  ASSISTD_SANDBOX_IMAGE  passed through to the server (default assistd-sandbox:latest)
The server's log goes to .tmp/sdk-tests/server.log; its tail is printed when the server fails to start.
Tests that take `s3_server` get a second server of their own storing blobs on the test S3 server
(`scripts/s3-server.sh`, s3s-fs over .tmp/s3-test, installed on first use).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from openai import OpenAI

import assistd_process
import schemas
from assistd_process import ROOT, with_dbname
from upstream import Upstream

WORK = ROOT / ".tmp" / "sdk-tests"

# Keys sharing a project see the same objects; other projects get 404s and empty lists.
KEY_A = "sk-test-a"
KEY_A2 = "sk-test-a2"
KEY_B = "sk-test-b"
ISOLATED_KEYS = [f"sk-test-iso{i}" for i in range(100)]
KEY_FUZZ = "sk-test-fuzz"  # schemathesis gets a project of its own
UPSTREAM_KEY = "sk-upstream-secret"


@pytest.fixture(scope="session")
def new_database():
    """Makes fresh, empty databases on the Postgres server (each server of the session has its own); all are
    dropped at the end."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        base = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start", str(ROOT / ".tmp" / "pg")],
                              check=True, capture_output=True, text=True).stdout.strip()
    names = []

    def create() -> str:
        name = "assistd_sdk_" + uuid.uuid4().hex[:10]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return with_dbname(base, name)

    yield create
    for name in names:
        try:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass


@pytest.fixture(scope="session")
def database_url(new_database) -> str:
    """The main server's database."""
    return new_database()


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


def server_env(database_url: str, upstream: Upstream, data_dir: Path, instance: str) -> dict[str, str]:
    """The environment of a test server: every test key, the scripted upstream, the real sandbox."""
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = [f"proj_a:{KEY_A}", f"proj_a:{KEY_A2}", f"proj_b:{KEY_B}"]
    keys += [f"proj_iso{i}:{k}" for i, k in enumerate(ISOLATED_KEYS)]
    keys.append(f"proj_fuzz:{KEY_FUZZ}")
    return {
        "DATABASE_URL": database_url,
        "ASSISTD_API_KEYS": ",".join(keys),
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_UPSTREAM_BASE_URL": upstream.base_url,
        "ASSISTD_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "ASSISTD_SANDBOX_IMAGE": os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
        # Its own sandbox label, so the orphan sweep at start leaves other servers' containers alone.
        "ASSISTD_SANDBOX_INSTANCE": f"{instance}-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "2",
        # A fixed pool: the suite's bursts of threads need no more, and CPU is scarce.
        "ASSISTD_SANDBOX_POOL_MAX": "2",
        # Retries stay on (a sticky upstream error still exhausts them), just with short waits.
        "ASSISTD_UPSTREAM_RETRY_BASE_MS": "50",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        # Short enough for the code-timeout test, long enough for every other snippet in the suite.
        "ASSISTD_SANDBOX_EXEC_TIMEOUT": os.environ.get("ASSISTD_SANDBOX_EXEC_TIMEOUT", "8"),
    }


@pytest.fixture(scope="session")
def server(database_url: str, upstream: Upstream, data_dir: Path) -> str:
    """Starts assistd on a free port; yields its root URL (no /v1)."""
    env = server_env(database_url, upstream, data_dir, "sdk-tests")
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
    # Every Responses / Conversations object received is checked against the schemas (schemas.py).
    kwargs.setdefault("http_client", httpx.Client(transport=schemas.ValidatingTransport(), timeout=kwargs["timeout"]))
    return OpenAI(base_url=server + "/v1", api_key=key, **kwargs)


@pytest.fixture(autouse=True)
def responses_match_the_schemas():
    """Fails a test that received a Responses or Conversations object the published schemas refuse."""
    schemas.PROBLEMS.clear()
    yield
    problems = list(schemas.PROBLEMS)
    schemas.PROBLEMS.clear()
    if problems:
        pytest.fail("objects that do not match the schemas:\n" + "\n".join(problems[:20]), pytrace=False)


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


S3_DIR = ROOT / ".tmp" / "s3-test"
S3_BUCKET = "assistd-test"


@dataclass
class S3Server:
    """A second assistd whose blobs live on the test S3 server, under a prefix of its own; `restart()` stops it
    and starts a new process on the same database and store (and another data directory)."""

    env: dict[str, str]
    tmp: Path
    url: str = ""
    proc: subprocess.Popen | None = None
    starts: int = 0

    def object_path(self, key: str) -> Path:
        """Where s3s-fs keeps the object of `key` (e.g. `files/file-…`)."""
        return S3_DIR / "data" / S3_BUCKET / self.env["ASSISTD_BLOB_URL"].split("/", 3)[3] / key

    def start(self) -> None:
        self.starts += 1
        env = dict(self.env, ASSISTD_DATA_DIR=str(self.tmp / f"data-{self.starts}"))
        try:
            self.proc, self.url = assistd_process.start(env, WORK / f"s3-server-{self.starts}.log")
        except assistd_process.StartError as e:
            pytest.fail(str(e), pytrace=False)

    def restart(self) -> None:
        assert assistd_process.stop(self.proc) == 0, "assistd did not stop cleanly"
        self.start()

    def client(self, key: str = KEY_A) -> OpenAI:
        return make_client(self.url, key)


@pytest.fixture(scope="module")
def s3_server(new_database, upstream: Upstream, tmp_path_factory) -> S3Server:
    """A server of its own (database included: a run must not be taken by the main server, whose blobs are
    elsewhere) with ASSISTD_BLOB_URL=s3://assistd-test/sdk-<hex> on the test S3 server."""
    endpoint = subprocess.run([str(ROOT / "scripts" / "s3-server.sh"), "start", str(S3_DIR)],
                              check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    tmp = tmp_path_factory.mktemp("assistd-s3")
    env = server_env(new_database(), upstream, tmp / "data-0", "sdk-s3-tests")
    env.update({
        "ASSISTD_BLOB_URL": f"s3://{S3_BUCKET}/sdk-{uuid.uuid4().hex[:10]}",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "assistd-test",
        "AWS_SECRET_ACCESS_KEY": "assistd-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    })
    server = S3Server(env=env, tmp=tmp)
    server.start()
    yield server
    assistd_process.stop(server.proc)
