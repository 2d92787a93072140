"""Starting and stopping a real `assistd serve` process, for the SDK suites (Python and Node)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[2]


class StartError(Exception):
    """assistd could not be started; the message carries its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_dbname(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def binary() -> Path:
    """The binary under test: ASSISTD_BIN, or the debug build."""
    path = Path(os.environ.get("ASSISTD_BIN", ROOT / "target" / "debug" / "assistd"))
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists():
        raise StartError(f"assistd binary not found at {path} (build it with `cargo build`)")
    return path


def start(env: dict[str, str], log_path: Path, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """Starts `assistd serve` on a free loopback port with `env` over this process's environment, logging
    to `log_path`, and waits until GET /healthz answers 200. Returns the process and its root URL."""
    port = free_port()
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["ASSISTD_ADDR"] = f"127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(binary()), "serve"], env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log_path, timeout)
    except BaseException:
        # Not left running when the start fails or the caller is interrupted while waiting.
        stop(proc, timeout=5)
        raise
    return proc, url


def _wait_healthy(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise StartError(f"assistd exited with {proc.returncode} during startup; log tail:\n"
                             f"{log_tail(log_path)}")
        try:
            with urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise StartError(f"assistd did not answer GET /healthz with 200 within {timeout:.0f} s; log tail:\n"
                             f"{log_tail(log_path)}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen | None, timeout: float = 15) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
