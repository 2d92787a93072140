"""Where a proxied byte's time goes: the egress path measured hop by hop, with the CPU each process spent.

    bench/egress/run.sh hops      (root: edits /etc/hosts; BENCH_MB=100, BENCH_REPEAT=3, ASSISTD_BIN)

Each line is one 100 MB download (BENCH_MB) and the CPU seconds of the busiest processes during it:
- direct: a sandbox-image container on the bridge network (unlimited CPU, and with --cpus 1 as sandboxes get);
- proxy alone: a host client through the sandbox's Unix socket (CONNECT, then http://), no relay;
- full path: the sandbox's client through the relay and the proxy (CONNECT, then http://);
- relay alone: the sandbox's client through a copy of the relay to a host server on a Unix socket in the
  sandbox's socket directory that streams the bytes itself; and the same client on that socket directly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
from bench import IMAGE, KEY, MB, ROOT, assistd_process, egress_site  # noqa: E402

RELAY = (ROOT / "src" / "sandbox" / "egress" / "relay.py").read_text()
TICK = os.sysconf("SC_CLK_TCK")
# Processes of other work on a shared machine, left out of the CPU listing.
OTHERS = ("rustc", "rustup", "cargo", "kdamond", "postgres")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))

CLIENT = r'''
import json, socket, time
def fetch(s, head):
    s.sendall(head)
    t = time.perf_counter(); n = 0
    buf = bytearray(1 << 20)
    while True:
        k = s.recv_into(buf)
        if not k: break
        n += k
    return n, time.perf_counter() - t
def connect_tunnel(s, hostport):
    s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (hostport, hostport))
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 200"), buf
def run(connect, hostport, path, mode):
    s = connect()
    if mode in ("connect", "direct"):
        if mode == "connect":
            connect_tunnel(s, hostport)
        head = b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, hostport)
    else:
        head = b"GET http://%s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (hostport, path, hostport)
    n, secs = fetch(s, head)
    s.close()
    return n, secs
'''


def cpu_snapshot() -> dict[int, tuple[str, int]]:
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:60]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = (cmd or stat[stat.index("(") + 1:stat.rindex(")")], int(fields[11]) + int(fields[12]))
    return out


def measured(label: str, action) -> None:
    for _ in range(REPEAT):
        measured_once(label, action)


def measured_once(label: str, action) -> None:
    before = cpu_snapshot()
    t = time.perf_counter()
    n, secs = action()
    wall = time.perf_counter() - t
    after = cpu_snapshot()
    spent = sorted(((ticks - before.get(pid, ("", 0))[1], pid, cmd) for pid, (cmd, ticks) in after.items()
                    if not any(other in cmd for other in OTHERS)), reverse=True)[:5]
    cpu = "  ".join(f"{d / TICK:.2f}s {pid}:{cmd.split(' -c')[0][:28]}" for d, pid, cmd in spent if d > 0)
    print(f"{label:34} {n / secs / 1e6:8.1f} MB/s   ({wall:.2f} s wall)   cpu: {cpu}", flush=True)


class FakeProxy:
    """A Unix-socket server in the sandbox's socket directory that answers like the proxy's tunnel and
    streams MB megabytes itself: what the relay alone can carry."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        chunk = b"x" * (1 << 20)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(4096)
                if buf.startswith(b"CONNECT"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                    while b"\r\n\r\n" not in buf.split(b"\r\n\r\n", 1)[1]:
                        buf += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MB << 20))
                left = MB << 20
                while left > 0:
                    conn.sendall(chunk[:min(left, len(chunk))])
                    left -= len(chunk)

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)


def main() -> None:
    work = Path(os.environ["BENCH_WORK"])
    with egress_site.host_names():
        site = egress_site.Site()
        gw = bench.gateway()
        from http.server import ThreadingHTTPServer
        relay = ThreadingHTTPServer((gw, site.port), site.server.RequestHandlerClass)
        relay.daemon_threads = True
        threading.Thread(target=relay.serve_forever, daemon=True).start()
        path = f"/bytes/{MB << 20}".encode()
        hostport = f"allowed.test:{site.port}".encode()
        try:
            for cpus in ([], ["--cpus", "1"]):
                code = (CLIENT + f"print(json.dumps(run(lambda: socket.create_connection(({gw!r}, {site.port})), "
                        f"b'{gw}:{site.port}', {path!r}, 'direct')))")

                def direct(cpus=cpus, code=code):
                    out = subprocess.run(["docker", "run", "--rm", "--network", "bridge", "--user", "10001:10001",
                                          *cpus, "--entrypoint", "python3", IMAGE, "-c", code],
                                         check=True, capture_output=True, text=True).stdout
                    return json.loads(out.strip().splitlines()[-1])
                measured(f"direct {' '.join(cpus) or 'unlimited'}", direct)
            proxied(work, site, hostport, path)
        finally:
            relay.shutdown()
            site.close()


def proxied(work: Path, site, hostport: bytes, path: bytes) -> None:
    sockets = f"/tmp/assistd-egress-h{uuid.uuid4().hex[:6]}"
    instance = f"bench-hops-{os.getpid()}"
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"], "ASSISTD_API_KEYS": f"proj_a:{KEY}",
        "ASSISTD_DATA_DIR": str(work / "data"), "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused", "ASSISTD_SANDBOX_IMAGE": IMAGE,
        "ASSISTD_SANDBOX_INSTANCE": instance, "ASSISTD_SANDBOX_POOL_SIZE": "1",
        "ASSISTD_SANDBOX_EXEC_TIMEOUT": "300", "ASSISTD_SANDBOX_NETWORK": "proxy",
        "ASSISTD_SANDBOX_ALLOWED_DOMAINS": "allowed.test", "ASSISTD_SANDBOX_EGRESS_ALLOW_INTERNAL": "127.0.0.1/32",
        "ASSISTD_SANDBOX_EGRESS_DIR": sockets, "RUST_LOG": "warn",
    }
    proc, url = assistd_process.start(env, work / "server.log")
    try:
        os.environ.update({"E2B_API_URL": url + "/e2b", "E2B_SANDBOX_URL": url + "/e2b/sandbox", "E2B_API_KEY": KEY})
        from e2b_code_interpreter import Sandbox

        sbx = Sandbox.create(timeout=600)
        try:
            sbx.run_code(CLIENT).error is None or sys.exit("client code failed")
            # The attached sandbox is the one whose directory holds a socket (the pool's spare has none).
            name = next(d for d in os.listdir(sockets) if os.path.exists(f"{sockets}/{d}/proxy.sock"))
            sock = f"{sockets}/{name}/proxy.sock"
            ns: dict = {}
            exec(CLIENT, ns)

            def unix(p=sock):
                s = socket.socket(socket.AF_UNIX)
                s.connect(p)
                return s
            for mode in ("connect", "get"):
                measured(f"proxy alone (host client) {mode}", lambda mode=mode: ns["run"](unix, hostport, path, mode))

            def inside(code):
                run = sbx.run_code(code, timeout=300)
                assert run.error is None, run.error
                return json.loads("".join(run.logs.stdout).strip().splitlines()[-1])
            for mode in ("connect", "get"):
                measured(f"full path (sandbox) {mode}", lambda mode=mode: inside(
                    f"print(json.dumps(run(lambda: socket.create_connection(('127.0.0.1', 3128)), "
                    f"{hostport!r}, {path!r}, {mode!r})))"))
            fake = FakeProxy(f"{sockets}/{name}/fake.sock")
            try:
                # The relay's copy (no handoff socket by that name) to the fake proxy.
                relay = (RELAY.replace('"handoff.sock"', '"no-handoff.sock"').replace('"proxy.sock"', '"fake.sock"')
                         .replace("3128", "3129") + "\nimport time\ntime.sleep(1e6)\n")
                # Its own process, as the guardian is (the driver's threads would share the client's GIL),
                # started in the same cell (the driver ends what a cell leaves running).
                measured("relay alone (sandbox) connect", lambda: inside(
                    f"import subprocess\n_relay = subprocess.Popen(['python3', '-c', {relay!r}])\n"
                    "time.sleep(1)\n"
                    f"print(json.dumps(run(lambda: socket.create_connection(('127.0.0.1', 3129)), "
                    f"{hostport!r}, {path!r}, 'connect')))\n_relay.kill()"))
                measured("fake proxy's socket (sandbox)", lambda: inside(
                    "def u():\n s = socket.socket(socket.AF_UNIX); s.connect('/run/assistd-egress/fake.sock'); "
                    f"return s\nprint(json.dumps(run(u, {hostport!r}, {path!r}, 'connect')))"))
            finally:
                fake.close()
        finally:
            sbx.kill()
    finally:
        assistd_process.stop(proc)
        egress_site.remove_sandboxes(instance)
        subprocess.run(["rm", "-rf", sockets])


if __name__ == "__main__":
    main()
