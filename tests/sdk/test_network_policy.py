"""Per-container network policies, enforced by the egress proxy (ASSISTD_SANDBOX_NETWORK=proxy), through the
official SDK: a server of its own whose operator ceiling is `allowed.test, other.test, metadata.test` with the
host's loopback allowed as a target (the local site of egress_site.py lives there). Code runs in the containers
through Responses' code_interpreter with the scripted model; what it printed comes back as the tool output."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import psycopg
import pytest

import assistd_process
import egress_site
from conftest import KEY_A, WORK, make_client, server_env
from helpers import bad_request
from upstream import tool_outputs

SECRET = "s3cr3t-" + uuid.uuid4().hex[:8]
CEILING = "allowed.test,other.test,metadata.test"

# Fetches each URL through the proxy (urllib honours HTTP_PROXY) and prints one JSON line per URL:
# the status and body text, or the error.
FETCH = r'''
import json, urllib.request, urllib.error
def fetch(url, headers={}):
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
        return {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(), "proxy_error": e.headers.get("x-proxy-error")}
    except Exception as e:
        return {"error": repr(e)}
'''

# Tries a direct connection (no proxy) and a name lookup of its own.
DIRECT = r'''
import socket
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as e:
        return "refused: " + str(e)
def resolve(name):
    try:
        return socket.getaddrinfo(name, 80)[0][4][0]
    except OSError as e:
        return "failed: " + str(e)
'''


@pytest.fixture(scope="module")
def site():
    with egress_site.site() as s:
        yield s


@pytest.fixture(scope="module")
def proxy_server(new_database, upstream, tmp_path_factory, site):
    env = server_env(new_database(), upstream, tmp_path_factory.mktemp("egress") / "data", "egress-tests")
    env.update({
        "ASSISTD_SANDBOX_NETWORK": "proxy",
        "ASSISTD_SANDBOX_ALLOWED_DOMAINS": CEILING,
        "ASSISTD_SANDBOX_EGRESS_ALLOW_INTERNAL": "127.0.0.1/32",
        # Short: a Unix socket's path has at most 107 bytes.
        "ASSISTD_SANDBOX_EGRESS_DIR": f"/tmp/assistd-egress-t{uuid.uuid4().hex[:6]}",
        "ASSISTD_SANDBOX_POOL_SIZE": "1",
        "ASSISTD_SANDBOX_EXEC_TIMEOUT": "60",
        # The site's HTTPS is signed by a test CA: the proxy (and so the sandboxes' bundle) trusts it.
        "SSL_CERT_FILE": site.trust_bundle,
    })
    log = WORK / "egress-server.log"
    try:
        proc, url = assistd_process.start(env, log)
    except assistd_process.StartError as e:
        pytest.fail(str(e), pytrace=False)
    yield url, env["DATABASE_URL"], log
    assistd_process.stop(proc)
    egress_site.remove_sandboxes(env["ASSISTD_SANDBOX_INSTANCE"])
    shutil.rmtree(env["ASSISTD_SANDBOX_EGRESS_DIR"], ignore_errors=True)
    shutil.rmtree(env["ASSISTD_SANDBOX_EGRESS_DIR"] + "-ca", ignore_errors=True)


@pytest.fixture(scope="module")
def pc(proxy_server):
    # pip in a loaded machine's sandbox can take over a minute.
    return make_client(proxy_server[0], KEY_A, timeout=300)


@pytest.fixture(scope="module")
def bridge_peer():
    """A container on Docker's default bridge (another workload on the host): its address, for direct tries."""
    name = f"assistd-egress-peer-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "bridge",
                    "--entrypoint", "python3", "assistd-sandbox:latest", "-m", "http.server", "8000"],
                   check=True, capture_output=True)
    try:
        ip = subprocess.run(["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name],
                            check=True, capture_output=True, text=True).stdout.strip()
        gateway = subprocess.run(["docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                                  "bridge"], check=True, capture_output=True, text=True).stdout.strip()
        yield ip, gateway
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def host_ip() -> str:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return out[0] if out else "127.0.0.1"


def run(client, script, tools: list, code: str) -> dict:
    """Runs `code` (which prints one JSON object last) in the tools' container; returns that object."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("done")
    r = client.responses.create(model=script.model, input="run it", tools=tools)
    assert r.status == "completed", r.error
    out = tool_outputs(script.requests[-1])[-1].strip().splitlines()
    return json.loads(out[-1])


def container(client, policy: dict | None) -> str:
    body = {} if policy is None else {"network_policy": policy}
    return client.containers.create(name="net-" + uuid.uuid4().hex[:6], extra_body=body).id


def in_container(container_id: str) -> list:
    return [{"type": "code_interpreter", "container": container_id}]


@pytest.mark.runs
def test_an_allowlist_lets_its_domain_through_and_refuses_another_with_a_readable_error(pc, script, site):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test"]})
    assert pc.containers.retrieve(c).to_dict()["network_policy"] == {
        "type": "allowlist", "allowed_domains": ["allowed.test"]}
    got = run(pc, script, in_container(c), FETCH + f'''
print(json.dumps({{"allowed": fetch({site.url("allowed.test")!r}), "other": fetch({site.url("other.test")!r})}}))
''')
    assert got["allowed"] == {"status": 200, "body": "hello from allowed.test\n"}
    assert got["other"]["status"] == 403
    assert got["other"]["proxy_error"] == "blocked-by-allowlist"
    assert "'other.test' is not in this container's network allowlist" in got["other"]["body"]


@pytest.mark.runs
def test_https_tunnels_are_held_to_the_allowlist_too(pc, script, site):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test"]})
    got = run(pc, script, in_container(c), f'''
import http.client, json
def tunnel(host):
    conn = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)
    conn.set_tunnel(host, {site.port})
    try:
        conn.request("GET", "/hello")
        r = conn.getresponse()
        return {{"status": r.status, "body": r.read().decode()}}
    except OSError as e:
        return {{"error": str(e)}}
print(json.dumps({{"allowed": tunnel("allowed.test"), "other": tunnel("other.test")}}))
''')
    # A CONNECT tunnel to the allowed name carries plain HTTP here (the site has no TLS).
    assert got["allowed"] == {"status": 200, "body": "hello from allowed.test\n"}, got
    assert got["other"] == {"error": "Tunnel connection failed: 403 Forbidden"}, got


@pytest.mark.runs
def test_sockets_handed_to_the_proxy_are_held_to_the_policy_and_the_relay_copies_no_byte(pc, script, site):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test"]})
    got = run(pc, script, in_container(c), f'''
import json, os, socket
def pair():
    listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(1)
    client = socket.create_connection(listener.getsockname()); served, _ = listener.accept(); listener.close()
    return client, served
def ask(conn, host):
    conn.sendall(b"CONNECT %s:{site.port} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % host)
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        k = conn.recv(4096)
        if not k:
            return "closed"
        head += k
    return head.split(b"\\r\\n")[0].decode()
def rest(conn):
    got = b""
    while True:
        k = conn.recv(65536)
        if not k:
            return got.decode()
        got += k
# What the relay does, done by the sandbox's own code: the same policy applies.
handoff = socket.socket(socket.AF_UNIX); handoff.connect("/run/assistd-egress/handoff.sock")
r, w = os.pipe()
junk = socket.socket(); junk.bind(("127.0.0.1", 0)); junk.listen(1)
socket.send_fds(handoff, [b"\\0"], [r])               # not a socket
socket.send_fds(handoff, [b"\\0"], [junk.fileno(), r])  # a listening socket, two at once
out = {{}}
for host in (b"allowed.test", b"other.test"):
    client, served = pair()
    socket.send_fds(handoff, [b"\\0"], [served.fileno()]); served.close()
    out[host.decode()] = ask(client, host)
    if host == b"allowed.test":
        client.sendall(b"GET /hello HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n")
        out["tunnel"] = rest(client).split("\\r\\n\\r\\n", 1)[-1]
    client.close()
os.close(r)
try:
    os.write(w, b"x")
    out["pipe"] = "still open at the proxy"
except BrokenPipeError:
    out["pipe"] = "closed"
# The proxy's own socket (where the relay copies when it cannot hand a socket over): the same policy.
for host in (b"allowed.test", b"other.test"):
    client = socket.socket(socket.AF_UNIX); client.connect("/run/assistd-egress/proxy.sock")
    out["unix " + host.decode()] = ask(client, host)
    if host == b"allowed.test":
        client.sendall(b"GET /hello HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n")
        out["unix tunnel"] = rest(client).split("\\r\\n\\r\\n", 1)[-1]
    client.close()
# Through the relay: an open tunnel adds no copying thread to the guardian (pid 1).
before = len(os.listdir("/proc/1/task"))
client = socket.create_connection(("127.0.0.1", 3128))
out["relay"] = ask(client, b"allowed.test")
out["relay_threads"] = len(os.listdir("/proc/1/task")) - before
client.close()
print(json.dumps(out))
''')
    assert got["allowed.test"] == "HTTP/1.1 200 OK", got
    assert got["tunnel"] == "hello from allowed.test\n", got
    assert got["other.test"] == "HTTP/1.1 403 Forbidden", got
    assert got["pipe"] == "closed", got
    assert got["unix allowed.test"] == "HTTP/1.1 200 OK", got
    assert got["unix tunnel"] == "hello from allowed.test\n", got
    assert got["unix other.test"] == "HTTP/1.1 403 Forbidden", got
    assert got["relay"] == "HTTP/1.1 200 OK", got
    assert got["relay_threads"] == 0, got


@pytest.mark.runs
def test_a_disabled_container_has_no_route_and_no_dns(pc, script, site):
    for policy in (None, {"type": "disabled"}):
        c = container(pc, policy)
        assert pc.containers.retrieve(c).to_dict()["network_policy"] == {"type": "disabled"}
        got = run(pc, script, in_container(c), FETCH + DIRECT + f'''
print(json.dumps({{"dns": resolve("allowed.test"), "direct": connect("{host_ip()}", {site.port}),
                  "proxied": fetch({site.url("allowed.test")!r})}}))
''')
        assert got["dns"].startswith("failed"), got
        assert got["direct"].startswith("refused"), got
        assert got["proxied"]["status"] == 403 and got["proxied"]["proxy_error"] == "network-disabled", got


@pytest.mark.runs
def test_internal_addresses_are_out_of_reach_under_every_policy(pc, script, site, bridge_peer):
    peer, gateway = bridge_peer
    targets = {"host": host_ip(), "gateway": gateway, "peer": peer, "metadata": "169.254.169.254"}
    for policy in ({"type": "disabled"},
                   {"type": "allowlist", "allowed_domains": ["allowed.test", "metadata.test"]}):
        c = container(pc, policy)
        got = run(pc, script, in_container(c), FETCH + DIRECT + f'''
targets = {targets!r}
print(json.dumps({{
    "direct": {{k: connect(ip, 8000 if k == "peer" else 80) for k, ip in targets.items()}},
    "by_address": {{k: fetch("http://" + ip + ":8000/") for k, ip in targets.items()}},
    "metadata_by_name": fetch("http://metadata.test/latest/meta-data/"),
}}))
''')
        for k, result in got["direct"].items():
            assert result.startswith("refused"), (policy, k, result)
        for k, result in got["by_address"].items():
            assert result["status"] == 403, (policy, k, result)
        assert got["metadata_by_name"]["status"] == 403, got
        if policy["type"] == "allowlist":
            assert got["by_address"]["peer"]["proxy_error"] == "blocked-ip-address"
            assert got["metadata_by_name"]["proxy_error"] == "blocked-internal-address"
            assert "169.254.169.254" in got["metadata_by_name"]["body"]


def test_a_policy_wider_than_the_operator_allows_is_refused_and_nothing_is_stored(pc, proxy_server):
    name = "wide-" + uuid.uuid4().hex[:6]
    with bad_request(param="network_policy.allowed_domains", message_contains="outside the domains"):
        pc.containers.create(name=name, extra_body={
            "network_policy": {"type": "allowlist", "allowed_domains": ["allowed.test", "elsewhere.test"]}})
    with bad_request(param="network_policy.allowed_domains", message_contains="outside the domains"):
        pc.containers.create(name=name, extra_body={
            "network_policy": {"type": "allowlist", "allowed_domains": ["**.allowed.test"]}})
    for bad in ("https://allowed.test", "allowed.test/path", "allowed.test:80", "127.0.0.1", "*"):
        with bad_request(param="network_policy.allowed_domains[0]"):
            pc.containers.create(name=name, extra_body={
                "network_policy": {"type": "allowlist", "allowed_domains": [bad]}})
    with bad_request(param="network_policy.allowed_domains"):
        pc.containers.create(name=name, extra_body={"network_policy": {"type": "allowlist", "allowed_domains": []}})
    with bad_request(param="network_policy.domain_secrets[0].domain"):
        pc.containers.create(name=name, extra_body={"network_policy": {
            "type": "allowlist", "allowed_domains": ["allowed.test"],
            "domain_secrets": [{"domain": "other.test", "name": "K", "value": "v"}]}})
    with psycopg.connect(proxy_server[1]) as conn:
        assert conn.execute("SELECT count(*) FROM containers WHERE name = %s", (name,)).fetchone()[0] == 0


@pytest.mark.runs
def test_code_interpreters_auto_container_takes_a_policy_within_the_ceiling(pc, script, site):
    auto = [{"type": "code_interpreter", "container": {
        "type": "auto", "network_policy": {"type": "allowlist", "allowed_domains": ["other.test"]}}}]
    got = run(pc, script, auto, FETCH + f'''
print(json.dumps({{"allowed": fetch({site.url("allowed.test")!r}), "other": fetch({site.url("other.test")!r})}}))
''')
    assert got["other"]["status"] == 200
    assert got["allowed"]["status"] == 403
    wide = [{"type": "code_interpreter", "container": {
        "type": "auto", "network_policy": {"type": "allowlist", "allowed_domains": ["elsewhere.test"]}}}]
    with bad_request(param="tools[].container.network_policy.allowed_domains"):
        pc.responses.create(model=script.model, input="x", tools=wide)


@pytest.mark.runs
def test_a_domain_secret_reaches_only_its_domain_and_never_the_sandbox(pc, script, site, proxy_server):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test", "other.test"],
                       "domain_secrets": [{"domain": "allowed.test", "name": "API_KEY", "value": SECRET}]})
    shown = pc.containers.retrieve(c).to_dict()
    assert shown["network_policy"] == {"type": "allowlist", "allowed_domains": ["allowed.test", "other.test"]}
    before = len(site.seen)
    got = run(pc, script, in_container(c), FETCH + f'''
import os, subprocess
key = os.environ.get("API_KEY", "")
h = {{"Authorization": "Bearer " + key}}
env = subprocess.run(["env"], capture_output=True, text=True).stdout
print(json.dumps({{"key": key, "env_has_secret": {SECRET!r} in env or {SECRET!r} in str(dict(os.environ)),
                  "allowed": fetch({site.url("allowed.test")!r}, h), "other": fetch({site.url("other.test")!r}, h)}}))
''')
    assert got["key"] and got["key"] != SECRET
    assert got["env_has_secret"] is False
    assert got["allowed"]["status"] == 200 and got["other"]["status"] == 200
    new = site.seen[before:]
    allowed = [h for host, h in new if host == "allowed.test"]
    other = [h for host, h in new if host == "other.test"]
    assert allowed and allowed[-1]["authorization"] == f"Bearer {SECRET}"
    assert other and other[-1]["authorization"] == f"Bearer {got['key']}"
    assert SECRET not in json.dumps(shown)
    with psycopg.connect(proxy_server[1]) as conn:
        rows = conn.execute("SELECT data::text FROM containers WHERE id = %s", (c,)).fetchall()
    assert rows and SECRET not in rows[0][0]
    assert SECRET not in proxy_server[2].read_text()


# Over HTTPS through the proxy: urllib, requests and a tunnel of our own that reports the issuer of the certificate
# the client was shown; Node (which keeps its own roots) through a CONNECT and tls.connect.
HTTPS = r'''
import http.client, json, os, ssl, subprocess, time, urllib.request
import requests
key = os.environ.get("API_KEY", "")
h = {"Authorization": "Bearer " + key}
def attempt(f):
    try:
        return f()
    except Exception as e:
        return {"error": repr(e)}
def via_urllib(url):
    r = urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=10)
    return {"status": r.status, "body": r.read().decode()}
def via_requests(url):
    r = requests.get(url, headers=h, timeout=10)
    return {"status": r.status_code, "body": r.text}
def reused(bye, url):
    # The server drops the kept-alive connection after /bye: the proxy closes the sandbox's side too, so the
    # session's next request reconnects.
    s = requests.Session()
    first = s.get(bye, headers=h, timeout=10).status_code
    time.sleep(0.5)
    return [first, s.get(url, headers=h, timeout=10).status_code]
def issuer(host, port):
    conn = http.client.HTTPSConnection("127.0.0.1", 3128, timeout=10, context=ssl.create_default_context())
    conn.set_tunnel(host, port)
    conn.request("GET", "/hello", headers=h)
    r = conn.getresponse()
    r.read()
    return {"status": r.status, "issuer": dict(x[0] for x in conn.sock.getpeercert()["issuer"])["commonName"]}
NODE = """
const http = require('http'), tls = require('tls');
const [host, port] = process.argv.slice(1);
const req = http.request({host: '127.0.0.1', port: 3128, method: 'CONNECT', path: host + ':' + port});
req.on('connect', (res, socket) => {
  let issuer = null, data = '';
  const s = tls.connect({socket, servername: host}, () => {
    issuer = s.getPeerCertificate().issuer.CN;
    s.write('GET /hello HTTP/1.1\\r\\nHost: ' + host + '\\r\\nAuthorization: Bearer ' + process.env.API_KEY +
            '\\r\\nConnection: close\\r\\n\\r\\n');
  });
  s.on('data', c => data += c);
  s.on('end', () => console.log(JSON.stringify({status: Number(data.split(' ')[1]), issuer})));
  s.on('error', e => console.log(JSON.stringify({error: String(e)})));
});
req.on('error', e => console.log(JSON.stringify({error: String(e)})));
req.end();
"""
def via_node(host, port):
    p = subprocess.run(["node", "-e", NODE, host, str(port)], capture_output=True, text=True, timeout=30)
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {"error": p.stderr[-500:]}
mount = "/run/assistd-egress"
files = sorted(os.listdir(mount))
private = any("PRIVATE KEY" in open(os.path.join(mount, f), errors="replace").read()
              for f in files if f.endswith(".pem"))
env = subprocess.run(["env"], capture_output=True, text=True).stdout
'''


@pytest.mark.runs
def test_a_domain_secret_reaches_its_domain_over_https_and_only_that_tunnel_is_intercepted(
        pc, script, site, proxy_server):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test", "other.test"],
                       "domain_secrets": [{"domain": "allowed.test", "name": "API_KEY", "value": SECRET}]})
    before = len(site.seen)
    port = site.tls_port
    script.push_tool_call("code_interpreter", {"code": HTTPS + f'''
print(json.dumps({{
    "key": key, "files": files, "private": private, "env": env + str(dict(os.environ)),
    "trust": {{n: os.environ.get(n) for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
                                              "NODE_EXTRA_CA_CERTS")}},
    "urllib": attempt(lambda: via_urllib({site.https_url("allowed.test")!r})),
    "requests": attempt(lambda: via_requests({site.https_url("allowed.test")!r})),
    "tunnel": attempt(lambda: issuer("allowed.test", {port})),
    "node": attempt(lambda: via_node("allowed.test", {port})),
    "other_urllib": attempt(lambda: via_urllib({site.https_url("other.test")!r})),
    "other_requests": attempt(lambda: via_requests({site.https_url("other.test")!r})),
    "other_tunnel": attempt(lambda: issuer("other.test", {port})),
    "other_node": attempt(lambda: via_node("other.test", {port})),
    "reused": attempt(lambda: reused({site.https_url("allowed.test", "/bye")!r}, {site.https_url("allowed.test")!r})),
    "no_tls": attempt(lambda: via_urllib({f"https://allowed.test:{site.port}/hello"!r})),
}}))
'''})
    script.push_text("done")
    r = pc.responses.create(model=script.model, input="run it", tools=in_container(c))
    assert r.status == "completed", r.error
    got = json.loads(tool_outputs(script.requests[-1])[-1].strip().splitlines()[-1])

    # The code carries no secret, so none may be in the response: the sandbox's environment is printed whole.
    assert got["key"] and got["key"] != SECRET
    assert SECRET not in got["env"] and f"API_KEY={got['key']}" in got["env"]
    # Only the CA's certificate and the bundle reach the sandbox, never the CA's key.
    assert [f for f in got["files"] if not f.endswith(".sock")] == ["ca-bundle.pem", "ca.pem"], got
    assert got["private"] is False
    assert got["trust"] == {"SSL_CERT_FILE": "/run/assistd-egress/ca-bundle.pem",
                            "REQUESTS_CA_BUNDLE": "/run/assistd-egress/ca-bundle.pem",
                            "CURL_CA_BUNDLE": "/run/assistd-egress/ca-bundle.pem",
                            "PIP_CERT": "/run/assistd-egress/ca-bundle.pem",
                            "NODE_EXTRA_CA_CERTS": "/run/assistd-egress/ca.pem"}
    for client in ("urllib", "requests"):
        assert got[client] == {"status": 200, "body": "hello from allowed.test\n"}, got
        assert got["other_" + client] == {"status": 200, "body": "hello from other.test\n"}, got
    # The secret's host is answered by the proxy with a certificate of its CA; the other keeps its own.
    assert got["tunnel"] == {"status": 200, "issuer": "assistd egress proxy CA"}, got
    assert got["node"] == {"status": 200, "issuer": "assistd egress proxy CA"}, got
    assert got["other_tunnel"] == {"status": 200, "issuer": egress_site.TEST_CA_NAME}, got
    assert got["other_node"] == {"status": 200, "issuer": egress_site.TEST_CA_NAME}, got

    assert got["reused"] == [200, 200], got
    # TLS with the real host fails (this port speaks plain HTTP): a readable refusal before the tunnel opens.
    assert "Tunnel connection failed: 502" in got["no_tls"]["error"], got

    new = site.seen[before:]
    allowed = [h["authorization"] for host, h in new if host == "allowed.test"]
    other = [h["authorization"] for host, h in new if host == "other.test"]
    assert allowed == [f"Bearer {SECRET}"] * 6, allowed
    assert other == [f"Bearer {got['key']}"] * 4, other
    assert SECRET not in r.model_dump_json()
    assert SECRET not in proxy_server[2].read_text()


@pytest.mark.runs
def test_pip_installs_over_https_from_a_host_the_proxy_intercepts(pc, script, site):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test"],
                       "domain_secrets": [{"domain": "allowed.test", "name": "INDEX_TOKEN", "value": SECRET}]})
    index = site.https_url("allowed.test", "/simple")
    got = run(pc, script, in_container(c), f'''
import json, subprocess, sys
p = subprocess.run([sys.executable, "-m", "pip", "install", "--user", "--no-cache-dir", "--no-deps",
                    "--force-reinstall", "--disable-pip-version-check", "--index-url", {index!r}, "egresspkg"],
                   capture_output=True, text=True)
print(json.dumps({{"rc": p.returncode, "err": p.stderr[-2000:]}}))
''')
    # No --trusted-host: pip verifies the proxy's certificate through PIP_CERT.
    assert got["rc"] == 0, got


@pytest.mark.runs
def test_pip_installs_from_a_local_index_on_an_allowed_name(pc, script, site):
    c = container(pc, {"type": "allowlist", "allowed_domains": ["allowed.test"]})
    index = site.url("allowed.test", "/simple")
    got = run(pc, script, in_container(c), f'''
import json, subprocess, sys
p = subprocess.run([sys.executable, "-m", "pip", "install", "--user", "--no-cache-dir", "--no-deps",
                    "--disable-pip-version-check", "--index-url", {index!r},
                    "--trusted-host", "allowed.test", "egresspkg"], capture_output=True, text=True)
check = subprocess.run([sys.executable, "-c", "import egresspkg; print(egresspkg.VALUE)"],
                       capture_output=True, text=True)
print(json.dumps({{"rc": p.returncode, "err": p.stderr[-2000:], "value": check.stdout.strip()}}))
''')
    assert got["rc"] == 0, got
    assert got["value"] == "42", got


@pytest.mark.runs
def test_an_assistants_metadata_sets_its_threads_network_policy(pc, script, site):
    policy = json.dumps({"type": "allowlist", "allowed_domains": ["allowed.test"]})
    a = pc.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}],
                                  metadata={"network_policy": policy})
    t = pc.beta.threads.create(messages=[{"role": "user", "content": "fetch"}])
    script.push_tool_call("code_interpreter", {"code": FETCH + f'''
print(json.dumps({{"allowed": fetch({site.url("allowed.test")!r}), "other": fetch({site.url("other.test")!r})}}))
'''})
    script.push_text("done")
    run = pc.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    got = json.loads(tool_outputs(script.requests[-1])[-1].strip().splitlines()[-1])
    assert got["allowed"]["status"] == 200
    assert got["other"]["status"] == 403 and got["other"]["proxy_error"] == "blocked-by-allowlist"
    # The same (live) session under an assistant without a policy: the operator's widest again.
    b = pc.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    pc.beta.threads.messages.create(thread_id=t.id, role="user", content="again")
    script.push_tool_call("code_interpreter", {"code": f"print(json.dumps(fetch({site.url('other.test')!r})))"})
    script.push_text("done")
    run = pc.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=b.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    assert json.loads(tool_outputs(script.requests[-1])[-1].strip().splitlines()[-1])["status"] == 200


def test_an_assistants_network_policy_is_held_to_the_ceiling(pc, script):
    for bad, param in (('{"type": "allowlist", "allowed_domains": ["elsewhere.test"]}',
                        "metadata.network_policy.allowed_domains"),
                       ("not json", "metadata.network_policy"),
                       ('{"type": "allowlist", "allowed_domains": ["allowed.test"], "domain_secrets": '
                        '[{"domain": "allowed.test", "name": "K", "value": "v"}]}',
                        "metadata.network_policy.domain_secrets")):
        with bad_request(param=param):
            pc.beta.assistants.create(model=script.model, metadata={"network_policy": bad})
