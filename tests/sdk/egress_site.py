"""A local web site for the network-policy tests, reachable by name: `allowed.test`, `other.test` and
`metadata.test` (which resolves to the cloud metadata address) are added to the host's /etc/hosts for the
test session and removed afterwards; the egress proxy resolves names with the host's resolver, so sandboxes
reach the site through it by those names (`/bye` answers, then drops the connection). The site records each request's headers by host, and serves a
PEP 503 package index holding a tiny wheel built here (`egresspkg`, whose module says VALUE = 42). The same
site answers HTTPS on a second port, with a certificate for its names signed by a test CA made here (openssl);
`trust_bundle` is the system's roots plus that CA, for the server's `SSL_CERT_FILE`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import ssl
import subprocess
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAMES = ("allowed.test", "other.test")
HOSTS_FILE = "/etc/hosts"
WHEEL = "egresspkg-1.0-py3-none-any.whl"
TEST_CA_NAME = "assistd egress tests CA"
SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"


def make_tls(directory: str) -> tuple[str, str, str]:
    """A test CA and a certificate for NAMES signed by it: (ca.pem, site.pem, site.key) in `directory`."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={TEST_CA_NAME}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=allowed.test", "-keyout", "site.key", "-out", "site.csr")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in NAMES) + "\n"
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    openssl("x509", "-req", "-in", "site.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext.cnf", "-out", "site.pem")
    return tuple(os.path.join(directory, n) for n in ("ca.pem", "site.pem", "site.key"))


def build_wheel() -> bytes:
    files = {
        "egresspkg/__init__.py": b"VALUE = 42\n",
        "egresspkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: egresspkg\nVersion: 1.0\n",
        "egresspkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: assistd-tests\nRoot-Is-Purelib: true\n"
                                          b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("egresspkg-1.0.dist-info/RECORD,,")
    files["egresspkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


class Site:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []  # (host, headers) of each request
        self.wheel = build_wheel()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0]
                site.seen.append((host, {k.lower(): v for k, v in self.headers.items()}))
                sha = hashlib.sha256(site.wheel).hexdigest()
                if self.path.rstrip("/") == "/simple/egresspkg":
                    body = f'<html><body><a href="/files/{WHEEL}#sha256={sha}">{WHEEL}</a></body></html>'.encode()
                    kind = "text/html"
                elif self.path == f"/files/{WHEEL}":
                    body, kind = site.wheel, "application/octet-stream"
                elif self.path.startswith("/bytes/"):
                    return self.send_bytes(int(self.path.rsplit("/", 1)[1]))
                elif self.path == "/bye":
                    # Answers, then closes the connection without saying so (an idle keep-alive ending).
                    self.close_connection = True
                    body, kind = b"bye\n", "text/plain"
                else:
                    body, kind = f"hello from {host}\n".encode(), "text/plain"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def send_bytes(self, n: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(n))
                self.end_headers()
                chunk = b"x" * (1 << 20)
                while n > 0:
                    self.wfile.write(chunk[: min(n, len(chunk))])
                    n -= len(chunk)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

        self.tls_dir = tempfile.mkdtemp(prefix="assistd-egress-tls-")
        ca, cert, key = make_tls(self.tls_dir)
        self.trust_bundle = os.path.join(self.tls_dir, "bundle.pem")
        with open(self.trust_bundle, "w") as out:
            for part in (SYSTEM_ROOTS, ca):
                if os.path.exists(part):
                    with open(part) as f:
                        out.write(f.read().rstrip("\n") + "\n")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.tls_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.tls_server.daemon_threads = True
        # Each connection's handshake runs in its own thread, not in the accepting one.
        self.tls_server.socket = context.wrap_socket(self.tls_server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        self.tls_port = self.tls_server.server_address[1]
        threading.Thread(target=self.tls_server.serve_forever, daemon=True).start()

    def url(self, host: str, path: str = "/hello") -> str:
        return f"http://{host}:{self.port}{path}"

    def https_url(self, host: str, path: str = "/hello") -> str:
        return f"https://{host}:{self.tls_port}{path}"

    def headers_seen_by(self, host: str) -> list[dict[str, str]]:
        return [h for got, h in self.seen if got == host]

    def close(self) -> None:
        for server in (self.server, self.tls_server):
            server.shutdown()
            server.server_close()
        subprocess.run(["rm", "-rf", self.tls_dir])


@contextlib.contextmanager
def host_names():
    """The test names in /etc/hosts while the block runs (this process's line only, removed after)."""
    marker = f"# assistd-egress-tests-{os.getpid()}"
    lines = [f"127.0.0.1 {' '.join(NAMES)} {marker}", f"169.254.169.254 metadata.test {marker}"]
    with open(HOSTS_FILE, "a") as f:
        f.write("\n" + "\n".join(lines) + "\n")
    try:
        yield
    finally:
        with open(HOSTS_FILE) as f:
            kept = [line for line in f.read().splitlines() if marker not in line]
        with open(HOSTS_FILE, "w") as f:
            f.write("\n".join(kept).rstrip("\n") + "\n")


@contextlib.contextmanager
def site():
    """The site, with its names resolvable, for the block."""
    with host_names():
        s = Site()
        try:
            yield s
        finally:
            s.close()


def remove_sandboxes(instance: str) -> None:
    """Removes what a server of `instance` left behind when its graceful stop outlasted the harness (a loaded
    machine): its sandbox containers and their volumes."""
    label = f"label=assistd.instance={instance}"
    for listing, removal in ((["docker", "ps", "-aq"], ["docker", "rm", "-f", "-v"]),
                             (["docker", "volume", "ls", "-q"], ["docker", "volume", "rm", "-f"])):
        ids = subprocess.run([*listing, "--filter", label], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([*removal, *ids], capture_output=True)
