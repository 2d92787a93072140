"""Output capture at the file-descriptor level, and the output caps."""

import ctypes
import fcntl
import io
import os
import sys
import tempfile


class Capture:
    """fd 1 and 2 point at anonymous files under /tmp; truncated at the start of every exec."""

    def __init__(self):
        self.files = {"stdout": self._anonymous_file(), "stderr": self._anonymous_file()}
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.streams = None  # (sys.stdin, sys.stdout, sys.stderr) as reset() set them
        try:
            self.libc = ctypes.CDLL(None)
        except OSError:
            self.libc = None

    @staticmethod
    def _anonymous_file():
        fd, path = tempfile.mkstemp(prefix="assistd-capture-", dir="/tmp")
        os.unlink(path)
        # O_APPEND: after truncation, writes land at offset 0 instead of leaving a sparse hole.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        return fd

    def clear(self):
        """Empty both files: what was written since the last execution (say by a process it
        left behind, before the host stopped it) is not the next one's output."""
        for fd in self.files.values():
            os.ftruncate(fd, 0)

    def reset(self):
        """Point fds 0-2 and sys.std* back at our files (user code may have changed them)."""
        os.dup2(self.devnull, 0)
        os.dup2(self.files["stdout"], 1)
        os.dup2(self.files["stderr"], 2)
        # The streams of the last reset stay while they are in place and open: they write
        # through to fds 1 and 2 and hold nothing between executions (Capture.flush).
        if not self._streams_in_place():
            self.streams = (
                io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8"),
                self._text_stream(1),
                self._text_stream(2),
            )
            sys.stdin, sys.stdout, sys.stderr = self.streams

    def _streams_in_place(self):
        if self.streams is None:
            return False
        stdin, stdout, stderr = self.streams
        return (sys.stdin is stdin and sys.stdout is stdout and sys.stderr is stderr
                and not (stdin.closed or stdout.closed or stderr.closed))

    @staticmethod
    def _text_stream(fd):
        return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                                errors="backslashreplace", line_buffering=True, write_through=True)

    def write_stdout(self, text):
        """Text the driver shows for the cell (display() output), after what it printed."""
        view = memoryview(text.encode("utf-8", "replace"))
        while view:
            view = view[os.write(self.files["stdout"], view):]

    def flush(self):
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass
        if self.libc is not None:
            self.libc.fflush(None)  # C stdio buffers (printf from extensions)

    def read(self, max_output):
        """(stdout, stderr, truncated), together at most max_output bytes of captured text."""
        sizes = {name: os.fstat(fd).st_size for name, fd in self.files.items()}
        budgets = split_budget(sizes["stdout"], sizes["stderr"], max_output)
        texts = {name: read_capped(self.files[name], sizes[name], budgets[name]) for name in sizes}
        truncated = any(sizes[name] > budgets[name] for name in sizes)
        return texts["stdout"], texts["stderr"], truncated


def split_budget(out_size, err_size, limit):
    """Share `limit` bytes between stdout and stderr; neither can starve the other."""
    if out_size + err_size <= limit:
        return {"stdout": out_size, "stderr": err_size}
    err = min(err_size, max(limit // 2, limit - out_size))
    return {"stdout": limit - err, "stderr": err}


def truncation_marker(omitted):
    return f"\n[... output truncated: {omitted} bytes omitted ...]\n"


def read_capped(fd, size, budget):
    """Head and tail of the file, `budget` bytes in all, with a marker in between if cut."""
    if size == 0:
        return ""
    if size <= budget:
        return os.pread(fd, size, 0).decode("utf-8", "replace")
    head = budget // 2
    tail = budget - head
    data = os.pread(fd, head, 0)
    data_tail = os.pread(fd, tail, size - tail) if tail else b""
    return (data.decode("utf-8", "replace") + truncation_marker(size - budget)
            + data_tail.decode("utf-8", "replace"))


def cap_text(text, limit):
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return (data[:head].decode("utf-8", "replace") + truncation_marker(len(data) - limit)
            + data[len(data) - tail:].decode("utf-8", "replace"))
