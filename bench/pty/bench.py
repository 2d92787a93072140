"""An E2B sandbox driven by the Agents SDK's E2B client: PTY echo round trip and tar persistence (see run.sh)."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import assistd_process  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
TAR_MB = int(os.environ.get("BENCH_TAR_MB", "100"))
TAR_RUNS = int(os.environ.get("BENCH_TAR_RUNS", "3"))
IMAGE = os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest")
KEY = "e2b_0123456789abcdef"
INSTANCE = f"bench-pty-{os.getpid()}"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report_ms(name, seconds, goal_ms=None):
    ms = [s * 1000 for s in seconds]
    line = f"{name:<52} p50 {pct(ms, 50):8.2f} ms   p99 {pct(ms, 99):8.2f} ms   (n={len(ms)})"
    missed = goal_ms is not None and pct(ms, 50) > goal_ms
    if goal_ms is not None:
        line += f"   goal p50 <= {goal_ms} ms: {'MISSED' if missed else 'met'}"
    print(line, flush=True)
    return missed


def report_rate(name, mb, seconds, goal=None):
    rates = [mb / s for s in seconds]
    rate = statistics.median(rates)
    line = f"{name:<52} {rate:8.1f} MB/s (median of {len(rates)}; {statistics.median(seconds):.2f} s for {mb} MB)"
    missed = goal is not None and rate < goal
    if goal is not None:
        line += f"   goal >= {goal} MB/s: {'MISSED' if missed else 'met'}"
    print(line, flush=True)
    return missed


async def pty_echo(sandbox) -> list[float]:
    """Keystrokes through the e2b client's PTY: send one character, wait for the terminal to echo it."""
    from e2b import PtySize

    seen = bytearray()
    arrived = asyncio.Event()

    def on_data(chunk: bytes) -> None:
        seen.extend(chunk)
        arrived.set()

    handle = await sandbox.pty.create(PtySize(rows=24, cols=80), on_data=on_data, timeout=0)
    await sandbox.pty.send_stdin(handle.pid, b"PS1='$ '; echo rea''dy\n")
    while b"ready" not in seen:
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 30)
    await asyncio.sleep(0.3)
    times = []
    for i in range(SAMPLES + 10):
        if i % 40 == 0:
            await sandbox.pty.send_stdin(handle.pid, b"\x15")  # ctrl-U: keep the line short
            await asyncio.sleep(0.05)
        mark = len(seen)
        arrived.clear()
        started = time.perf_counter()
        await sandbox.pty.send_stdin(handle.pid, b"x")
        while b"x" not in seen[mark:]:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)
        if i >= 10:
            times.append(time.perf_counter() - started)
    await sandbox.pty.kill(handle.pid)
    return times


def docker_exec_echo(container: str) -> list[float]:
    """The baseline: the same keystrokes through `docker exec -it` in a local pseudo-terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("docker", ["docker", "exec", "-it", "-u", "10001", "-e", "PS1=$ ", container,
                             "bash", "--norc", "-i"])
    def read_until(needle: bytes, timeout: float = 30) -> None:
        buf = b""
        deadline = time.monotonic() + timeout
        while needle not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} never came: {buf[-200:]!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                buf += os.read(fd, 65536)
    os.write(fd, b"echo rea''dy\n")
    read_until(b"ready\r\n")
    time.sleep(0.3)
    times = []
    for i in range(SAMPLES + 10):
        if i % 40 == 0:
            os.write(fd, b"\x15")
            time.sleep(0.05)
            while select.select([fd], [], [], 0)[0]:
                os.read(fd, 65536)
        started = time.perf_counter()
        os.write(fd, b"x")
        read_until(b"x", 10)
        if i >= 10:
            times.append(time.perf_counter() - started)
    os.write(fd, b"\x15exit\n")
    os.waitpid(pid, 0)
    return times


def box_with_workspace_data() -> str:
    names = subprocess.run(["docker", "ps", "-q", "--filter", "label=assistd.box=true",
                            "--filter", f"label=assistd.instance={INSTANCE}"],
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if subprocess.run(["docker", "exec", name, "test", "-d", "/workspace/data"]).returncode == 0:
            return name
    raise RuntimeError("no box holds the workspace")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sdk_decode_alone(mb: int) -> float:
    """The SDK's own work on a tar persistence's stream, with no server and no HTTP: Connect
    envelopes as the server writes them (128 KiB of output each), fed in 64 KiB reads to the
    e2b client's parser and JSON codec, decoded as its command handle does, then joined and
    base64-decoded as the Agents SDK does. Seconds of CPU for `mb` MB of tar."""
    import base64
    import codecs

    from e2b.envd.process import process_pb2
    from e2b_connect.client import JSONCodec, ServerStreamParser

    raw = os.urandom(mb * 1_000_000)
    stdout = base64.b64encode(raw)
    body = bytearray()
    for i in range(0, len(stdout), 128 * 1024):
        message = b'{"event":{"data":{"stdout":"' + base64.b64encode(stdout[i:i + 128 * 1024]) + b'"}}}'
        body += b"\0" + len(message).to_bytes(4, "big") + message
    body = bytes(body)
    started = time.process_time()
    parser = ServerStreamParser(decode=JSONCodec.decode, response_type=process_pb2.StartResponse)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    chunks = []
    for i in range(0, len(body), 65536):
        for event in parser.parse(body[i:i + 65536]):
            if event.event.data.stdout:
                chunks.append(decoder.decode(event.event.data.stdout))
    decoded = base64.b64decode("".join(chunks).encode("utf-8"), validate=True)
    took = time.process_time() - started
    assert decoded == raw
    return took


def peak_rss_mb(pid: int) -> float:
    """The server's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(server_pid: int) -> bool:
    from agents.extensions.sandbox.e2b import E2BSandboxClient, E2BSandboxClientOptions

    session = await E2BSandboxClient().create(options=E2BSandboxClientOptions(sandbox_type="e2b"))
    await session.start()
    missed = False
    try:
        sandbox = session._inner._sandbox  # the e2b AsyncSandbox under the session
        missed |= report_ms("PTY keystroke echo (e2b client, bash -i)", await pty_echo(sandbox), 5)

        part = TAR_MB * 1_000_000 // 4
        made = await session.exec(f"mkdir -p data && for i in 1 2 3 4; do head -c {part} /dev/urandom "
                                  "> data/part$i; done && du -sb data")
        assert made.exit_code == 0, made.stderr
        before = peak_rss_mb(server_pid)
        took, client_cpu, server_cpu = [], [], []
        for _ in range(TAR_RUNS):
            started, client, server = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
            archive = await session.persist_workspace()
            size = len(archive.read())
            took.append(time.perf_counter() - started)
            client_cpu.append(time.process_time() - client)
            server_cpu.append(cpu_seconds(server_pid) - server)
            assert size >= TAR_MB * 1_000_000, size
        missed |= report_rate(f"tar persistence of a {TAR_MB} MB workspace (SDK)", TAR_MB, took, 100)
        print(f"{'CPU per run: the SDK client / the server':<52} {statistics.median(client_cpu):8.2f} / "
              f"{statistics.median(server_cpu):.2f} s (medians; load average {os.getloadavg()[0]:.1f})", flush=True)
        print(f"{'server peak RSS before / after the tar runs':<52} {before:8.1f} / {peak_rss_mb(server_pid):.1f} MB "
              f"({TAR_MB * 4 // 3} MB of base64 streamed per run)", flush=True)
        alone = [sdk_decode_alone(TAR_MB) for _ in range(TAR_RUNS)]
        report_rate("ceiling: the SDK's own decoding alone (CPU time)", TAR_MB, alone)

        container = box_with_workspace_data()
        report_ms("baseline: docker exec -it, keystroke echo", docker_exec_echo(container))
        took = []
        for _ in range(TAR_RUNS):
            started = time.perf_counter()
            out = subprocess.run(["docker", "exec", "-u", "10001", container, "sh", "-c",
                                  "tar -C /workspace -cf - . | base64 -w0"], check=True, capture_output=True)
            took.append(time.perf_counter() - started)
            assert len(out.stdout) >= TAR_MB * 1_000_000
        report_rate("baseline: docker exec tar | base64 to stdout", TAR_MB, took)
    finally:
        await session.aclose()
    return missed


def main() -> int:
    work = Path(os.environ["BENCH_WORK"])
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "ASSISTD_API_KEYS": f"bench:{KEY}",
        "ASSISTD_DATA_DIR": str(work / "data"),
        "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused",
        "ASSISTD_SANDBOX_IMAGE": IMAGE,
        "ASSISTD_SANDBOX_INSTANCE": INSTANCE,
        "ASSISTD_SANDBOX_POOL_SIZE": "1",
        "RUST_LOG": "warn",
    }
    proc, url = assistd_process.start(env, work / "server.log")
    try:
        os.environ.update(E2B_API_URL=url + "/e2b", E2B_SANDBOX_URL=url + "/e2b/sandbox", E2B_API_KEY=KEY)
        missed = asyncio.run(run(proc.pid))
        return 3 if missed else 0
    finally:
        assistd_process.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
