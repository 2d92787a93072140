"""An E2B sandbox is a writable box (E2B's SDK against assistd): a PTY that streams, takes keystrokes, resizes
and dies by signal; E2B's `root` user as capability-less root; a writable root filesystem within its disk
quota (the server fixture sets ASSISTD_SANDBOX_DISK_MB=64)."""

from __future__ import annotations

import threading
import time

import pytest
from e2b import CommandExitException, PtySize
from e2b.exceptions import SandboxException


class Terminal:
    """A PTY's output, read on a thread of its own as it arrives."""

    def __init__(self, sandbox, rows=24, cols=80):
        self.sandbox = sandbox
        self.handle = sandbox.pty.create(PtySize(rows=rows, cols=cols), timeout=60)
        self.output = bytearray()
        self.lock = threading.Lock()
        self.result = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            self.result = self.handle.wait(on_pty=self._add)
        except Exception as e:  # noqa: BLE001 - a killed terminal ends with an exit error
            self.result = e

    def _add(self, chunk: bytes):
        with self.lock:
            self.output.extend(chunk)

    def type(self, text: str):
        self.sandbox.pty.send_stdin(self.handle.pid, text.encode())

    def wait_for(self, needle: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if needle in self.output:
                    return bytes(self.output)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"{needle!r} never came; the terminal shows {bytes(self.output)!r}")


def test_a_pty_echoes_keystrokes_resizes_and_dies_by_signal(sandbox):
    term = Terminal(sandbox, rows=24, cols=80)
    assert term.handle.pid > 0
    term.type("stty size; echo $((6 * 7))-$TERM\n")
    term.wait_for(b"24 80")
    term.wait_for(b"42-xterm")

    sandbox.pty.resize(term.handle.pid, PtySize(rows=50, cols=132))
    term.type("stty size\n")
    term.wait_for(b"50 132")

    assert sandbox.pty.kill(term.handle.pid)
    term.thread.join(timeout=15)
    assert not term.thread.is_alive()
    assert isinstance(term.result, CommandExitException) and term.result.exit_code != 0

    # The process is gone: its input is refused in E2B's shape, naming the pid.
    with pytest.raises(SandboxException) as refused:
        sandbox.pty.send_stdin(term.handle.pid, b"echo too late\n")
    assert str(term.handle.pid) in str(refused.value) and "not found" in str(refused.value)
    with pytest.raises(SandboxException):
        sandbox.pty.resize(term.handle.pid, PtySize(rows=10, cols=10))


def test_a_pty_streams_output_as_it_is_written(sandbox):
    term = Terminal(sandbox)
    term.type("echo first; sleep 3; echo sec''ond\n")
    started = time.monotonic()
    term.wait_for(b"first\r\n")
    assert time.monotonic() - started < 2.5
    assert b"second" not in bytes(term.output)
    term.wait_for(b"second", timeout=10)
    term.type("exit 5\n")
    term.thread.join(timeout=15)
    assert isinstance(term.result, CommandExitException) and term.result.exit_code == 5


def test_root_writes_the_root_filesystem_without_capabilities(sandbox):
    assert sandbox.commands.run("stat -c %u /workspace").stdout == "10001\n"
    with pytest.raises(CommandExitException):
        sandbox.commands.run("touch /usr/local/by-user")

    made = sandbox.commands.run("id -u; echo made > /usr/local/by-root && cat /usr/local/by-root; echo $HOME",
                                user="root")
    assert made.stdout == "0\nmade\n/root\n"
    with pytest.raises(CommandExitException) as chown:
        sandbox.commands.run("chown 10001 /usr/local/by-root", user="root")
    assert "not permitted" in chown.value.stderr
    assert sandbox.files.read("/usr/local/by-root") == "made\n"


def test_a_box_past_its_disk_quota_has_its_commands_stopped(sandbox):
    started = time.monotonic()
    with pytest.raises(CommandExitException):
        sandbox.commands.run("head -c 100000000 /dev/zero > /workspace/big; sleep 60", timeout=50)
    assert time.monotonic() - started < 30
    sandbox.commands.run("rm /workspace/big")
    time.sleep(6)  # a check after the removal: the box is under its quota again
    assert sandbox.commands.run("sleep 7; echo still here", timeout=30).stdout == "still here\n"
    assert sandbox.run_code("1 + 1").text == "2"
