"""E2B's network options against what the operator allows: every SDK asks for `allow_internet_access: true` by
default, which must succeed on a server without network and get what the operator allows (GET reports it);
code reaching a blocked host gets a readable error. The proxy-mode server here has the operator allowlist
`allowed.test, other.test` (names of a local site, see tests/sdk/egress_site.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import httpx
import psycopg
import pytest
from e2b_code_interpreter import Sandbox

import assistd_process
import egress_site
from assistd_process import with_dbname
from conftest import KEY_A, ROOT, WORK

ALL_TRAFFIC = "0.0.0.0/0"

FETCH = r'''
import urllib.request, urllib.error
def fetch(url):
    try:
        return urllib.request.urlopen(url, timeout=10).read().decode().strip()
    except urllib.error.HTTPError as e:
        return "HTTP %d: %s" % (e.code, e.read().decode().strip())
    except Exception as e:
        return "ERROR " + repr(e)
'''


def host_ip() -> str:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return out[0] if out else "127.0.0.1"


def detail(base: str, sandbox_id: str) -> dict:
    r = httpx.get(f"{base}/e2b/sandboxes/{sandbox_id}", headers={"X-API-Key": KEY_A}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def printed(sbx: Sandbox, code: str) -> str:
    run = sbx.run_code(code)
    assert run.error is None, run.error
    return "".join(run.logs.stdout).strip()


def test_a_default_sandbox_on_a_server_without_network_is_made_and_says_what_it_got(server):
    sbx = Sandbox.create(timeout=60)
    try:
        assert sbx.get_info().allow_internet_access is False
        got = detail(server, sbx.sandbox_id)
        assert got["allowInternetAccess"] is False
        assert got["network"] == {"allowOut": [], "denyOut": [ALL_TRAFFIC]}
        out = printed(sbx, FETCH + "print(fetch('http://example.com/'))")
        assert out.startswith("ERROR URLError") and "name resolution" in out, out
    finally:
        sbx.kill()


def test_an_explicit_allowlist_no_setting_here_can_meet_is_refused(server):
    r = httpx.post(f"{server}/e2b/sandboxes", headers={"X-API-Key": KEY_A}, timeout=30, json={
        "templateID": "code-interpreter-v1",
        "network": {"allowOut": ["allowed.test"], "denyOut": [ALL_TRAFFIC]}})
    assert r.status_code == 400, r.text
    assert "no network access" in r.json()["message"]
    r = httpx.post(f"{server}/e2b/sandboxes", headers={"X-API-Key": KEY_A}, timeout=30, json={
        "templateID": "code-interpreter-v1", "network": {"allowOut": ["10.0.0.0/8"], "denyOut": [ALL_TRAFFIC]}})
    assert r.status_code == 400 and "domain names only" in r.json()["message"], r.text


@pytest.fixture(scope="module")
def site():
    with egress_site.site() as s:
        yield s


@pytest.fixture(scope="module")
def proxy_server(server, site):
    """A second server, behind the egress proxy; the SDKs point at it while a test uses it."""
    base = os.environ.get("DATABASE_URL") or subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "start", str(ROOT / ".tmp" / "pg")],
        check=True, capture_output=True, text=True).stdout.strip()
    name = "assistd_e2b_net_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    sockets = f"/tmp/assistd-egress-e{uuid.uuid4().hex[:6]}"
    env = {
        "DATABASE_URL": with_dbname(base, name),
        "ASSISTD_API_KEYS": f"proj_a:{KEY_A}",
        "ASSISTD_DATA_DIR": str(WORK / "net-data"),
        "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused",
        "ASSISTD_SANDBOX_IMAGE": os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
        "ASSISTD_SANDBOX_INSTANCE": f"e2b-net-tests-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "1",
        "ASSISTD_SANDBOX_NETWORK": "proxy",
        "ASSISTD_SANDBOX_ALLOWED_DOMAINS": "allowed.test,other.test",
        "ASSISTD_SANDBOX_EGRESS_ALLOW_INTERNAL": "127.0.0.1/32",
        "ASSISTD_SANDBOX_EGRESS_DIR": sockets,
    }
    try:
        proc, url = assistd_process.start(env, WORK / "net-server.log")
    except assistd_process.StartError as e:
        pytest.fail(str(e), pytrace=False)
    yield url
    assistd_process.stop(proc)
    egress_site.remove_sandboxes(env["ASSISTD_SANDBOX_INSTANCE"])
    shutil.rmtree(sockets, ignore_errors=True)
    shutil.rmtree(sockets + "-ca", ignore_errors=True)  # the egress CA's default place
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def behind_proxy(proxy_server):
    saved = {k: os.environ[k] for k in ("E2B_API_URL", "E2B_SANDBOX_URL")}
    os.environ["E2B_API_URL"] = proxy_server + "/e2b"
    os.environ["E2B_SANDBOX_URL"] = proxy_server + "/e2b/sandbox"
    yield proxy_server
    os.environ.update(saved)


def test_a_default_sandbox_behind_the_proxy_gets_the_operators_allowlist(behind_proxy, site):
    sbx = Sandbox.create(timeout=60)
    try:
        assert sbx.get_info().allow_internet_access is True
        assert detail(behind_proxy, sbx.sandbox_id)["network"] == {
            "allowOut": ["allowed.test", "other.test"], "denyOut": [ALL_TRAFFIC]}
        out = printed(sbx, FETCH + f"print(fetch({site.url('other.test')!r}))\n"
                                   "print(fetch('http://169.254.169.254/latest/meta-data/'))")
        lines = out.splitlines()
        assert lines[0] == "hello from other.test"
        assert lines[1].startswith("HTTP 403: assistd egress proxy:") and "IP address" in lines[1], lines
    finally:
        sbx.kill()


def test_allow_out_narrows_it_and_a_blocked_host_gets_a_readable_error(behind_proxy, site):
    r = httpx.post(f"{behind_proxy}/e2b/sandboxes", headers={"X-API-Key": KEY_A}, timeout=30, json={
        "templateID": "code-interpreter-v1",
        "network": {"allowOut": ["allowed.test"], "denyOut": [ALL_TRAFFIC]}})
    assert r.status_code == 201, r.text
    sbx = Sandbox.connect(r.json()["sandboxID"])
    try:
        assert detail(behind_proxy, sbx.sandbox_id)["network"]["allowOut"] == ["allowed.test"]
        out = printed(sbx, FETCH + f"print(fetch({site.url('allowed.test')!r}))\n"
                                   f"print(fetch({site.url('other.test')!r}))").splitlines()
        assert out[0] == "hello from allowed.test"
        assert out[1] == ("HTTP 403: assistd egress proxy: 'other.test' is not in this container's network "
                          "allowlist (allowed.test)")
    finally:
        sbx.kill()
    r = httpx.post(f"{behind_proxy}/e2b/sandboxes", headers={"X-API-Key": KEY_A}, timeout=30, json={
        "templateID": "code-interpreter-v1",
        "network": {"allowOut": ["elsewhere.test"], "denyOut": [ALL_TRAFFIC]}})
    assert r.status_code == 400 and "outside the domains" in r.json()["message"], r.text


def test_no_internet_access_means_no_route_and_no_dns(behind_proxy, site):
    sbx = Sandbox.create(timeout=60, allow_internet_access=False)
    try:
        assert sbx.get_info().allow_internet_access is False
        out = printed(sbx, FETCH + f'''
import socket
try:
    socket.getaddrinfo("allowed.test", 80); print("resolved")
except OSError as e:
    print("dns failed")
try:
    socket.create_connection(({host_ip()!r}, {site.port}), timeout=3); print("connected")
except OSError as e:
    print("connect failed")
print(fetch({site.url("allowed.test")!r}))
''').splitlines()
        assert out[0] == "dns failed" and out[1] == "connect failed", out
        assert out[2].startswith("HTTP 403: assistd egress proxy: network access is disabled"), out
    finally:
        sbx.kill()
