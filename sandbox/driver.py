#!/usr/bin/env python3
"""assistd code_interpreter driver: runs inside the sandbox container, one per session.

Protocol (newline-delimited JSON, one object per line, both directions):
  driver -> {"type":"ready","pid":N}                        once, after the heavy imports
  host   -> {"type":"exec","id":..,"code":..,"timeout":secs,"max_output":bytes}
  driver -> {"type":"result","id":..,"stdout":..,"stderr":..,"output_truncated":..,
             "result":..,"error":null|{"ename","evalue","traceback"},"images":[b64 png],
             "files":[{"path","size"}],"timed_out":..,"duration_ms":..}
  driver -> {"type":"error","id":..|null,"message":..}      for a request it cannot parse

The protocol uses private duplicates of the original fd 0 and fd 1. User code gets stdin from
/dev/null and fd 1/2 redirected into capture files, so output from os.system() and C code is
captured too and nothing user code does with sys.stdout can corrupt the protocol stream.
"""

import ast
import base64
import ctypes
import fcntl
import io
import json
import linecache
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
import types

DATA_DIR = os.environ.get("ASSISTD_DATA_DIR", "/mnt/data")
MPL_CACHE_SEED = "/opt/assistd/mpl-cache"
MAX_IMAGES = 10
CJK_FONT = "WenQuanYi Micro Hei"
DEFAULT_MAX_OUTPUT = 20_000
# After the timeout fires, keep interrupting this often in case user code swallowed the exception.
TIMEOUT_REPEAT_S = 0.5
DRIVER_FILE = os.path.abspath(__file__)


# ---------------------------------------------------------------------------------------------
# Protocol channel

class Channel:
    """JSON lines over the original stdin/stdout, kept on private (non-inheritable) fds."""

    def __init__(self):
        self.out_fd = os.dup(1)
        self.reader = os.fdopen(os.dup(0), "rb")

    def send(self, obj):
        # ensure_ascii=False keeps the line compact; "replace" guards against lone surrogates,
        # which are not valid UTF-8 (and which serde would reject as escapes).
        data = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            written = os.write(self.out_fd, view)
            view = view[written:]

    def receive(self):
        """The next request as a dict, None at EOF. Raises ValueError on a malformed line."""
        while True:
            line = self.reader.readline()
            if not line:
                return None
            if line.strip():
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("request is not a JSON object")
                return request


# ---------------------------------------------------------------------------------------------
# Output capture at the file-descriptor level

class Capture:
    """fd 1 and 2 point at anonymous files under /tmp; truncated at the start of every exec."""

    def __init__(self):
        self.files = {"stdout": self._anonymous_file(), "stderr": self._anonymous_file()}
        self.devnull = os.open(os.devnull, os.O_RDONLY)
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

    def reset(self):
        """Point fds 0-2 and sys.std* back at our files (user code may have changed them)."""
        for fd in self.files.values():
            os.ftruncate(fd, 0)
        os.dup2(self.devnull, 0)
        os.dup2(self.files["stdout"], 1)
        os.dup2(self.files["stderr"], 2)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = self._text_stream(1)
        sys.stderr = self._text_stream(2)

    @staticmethod
    def _text_stream(fd):
        return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                                errors="backslashreplace", line_buffering=True, write_through=True)

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


# ---------------------------------------------------------------------------------------------
# Files under /mnt/data

def snapshot_files(root):
    """{path: (mtime_ns, size)} for every regular file below root."""
    found = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[path] = (st.st_mtime_ns, st.st_size)
    return found


def changed_files(before, after):
    return [{"path": path, "size": meta[1]}
            for path, meta in sorted(after.items()) if before.get(path) != meta]


# ---------------------------------------------------------------------------------------------
# Figures

class Figures:
    """Collects matplotlib figures as PNG: on plt.show() / fig.show(), and those left open."""

    def __init__(self, pyplot):
        self.plt = pyplot
        self.images = []
        self.dropped = 0
        if pyplot is None:
            return
        import matplotlib.figure

        def show(*_args, **_kwargs):
            for num in pyplot.get_fignums():
                self.capture(pyplot.figure(num))

        def figure_show(fig, *_args, **_kwargs):
            self.capture(fig)

        pyplot.show = show
        matplotlib.figure.Figure.show = figure_show

    def start(self):
        self.images = []
        self.dropped = 0

    def capture(self, fig):
        try:
            if len(fig.get_children()) > 1:  # the background patch alone is an empty figure
                if len(self.images) < MAX_IMAGES:
                    buf = io.BytesIO()
                    fig.savefig(buf, format="png", bbox_inches="tight")
                    self.images.append(base64.b64encode(buf.getvalue()).decode("ascii"))
                else:
                    self.dropped += 1
        finally:
            self.plt.close(fig)

    def finish(self):
        """Capture figures still open; returns (images, note for stderr or '')."""
        if self.plt is not None:
            for num in self.plt.get_fignums():
                try:
                    self.capture(self.plt.figure(num))
                except Exception as exc:
                    self.plt.close(num)
                    sys.stderr.write(f"[could not render figure {num}: {exc!r}]\n")
        note = ""
        if self.dropped:
            note = (f"\n[{self.dropped} more figure(s) not shown: "
                    f"the limit is {MAX_IMAGES} images per execution]\n")
        return self.images, note


# ---------------------------------------------------------------------------------------------
# Interrupts: the timeout (SIGALRM via setitimer) and SIGINT from the host

class ExecTimeout(BaseException):
    """Raised inside user code when its time is up. BaseException, so `except Exception` in
    user code does not swallow it; reported as TimeoutError."""


ExecTimeout.__name__ = ExecTimeout.__qualname__ = "TimeoutError"
ExecTimeout.__module__ = "builtins"


class Interrupts:
    """The handlers raise only while user code runs (armed) and never in the frames that arm and
    disarm, so a late signal cannot escape into the driver's own bookkeeping. A signal that lands
    there is dropped; the repeating timer fires again if user code is still running."""

    def __init__(self):
        self.armed = False
        self.timeout = 0.0
        self.protected = set()

    def protect(self, *functions):
        self.protected.update(f.__code__ for f in functions)

    def install(self):
        # Reinstalled before every exec, in case user code replaced them.
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGINT, self._on_sigint)

    def arm(self, timeout):
        self.timeout = timeout
        self.armed = True
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout, TIMEOUT_REPEAT_S)

    def disarm(self):
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _interruptible(self, frame):
        return self.armed and (frame is None or frame.f_code not in self.protected)

    def _on_alarm(self, _signum, frame):
        if self._interruptible(frame):
            raise ExecTimeout(f"Execution timed out after {self.timeout:g} seconds")

    def _on_sigint(self, _signum, frame):
        # Only user code is interruptible; between execs the driver ignores SIGINT.
        if self._interruptible(frame):
            raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# Running code

class Session:
    def __init__(self, pyplot):
        # User code runs in a real module registered as __main__, like a notebook kernel, so
        # pickle and multiprocessing can find classes and functions defined by the user.
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = __builtins__
        self.driver_module = sys.modules["__main__"]  # keep the driver's own globals alive
        sys.modules["__main__"] = self.module
        self.capture = Capture()
        self.figures = Figures(pyplot)
        self.interrupts = Interrupts()
        self.interrupts.protect(Session.execute, Interrupts.arm, Interrupts.disarm)
        self.cell_count = 0

    def execute(self, request):
        started = time.monotonic()
        code = request.get("code")
        if not isinstance(code, str):
            raise ValueError("exec request needs a string 'code'")
        timeout = float(request.get("timeout") or 0)  # 0 or absent: no timeout
        max_output = request.get("max_output")
        max_output = DEFAULT_MAX_OUTPUT if max_output is None else max(0, int(max_output))

        reap_children()
        self.capture.reset()
        self.interrupts.install()
        self.figures.start()
        before = snapshot_files(DATA_DIR)

        # Keep this block free of calls into other Python functions: see Interrupts.
        shown, failure = None, None
        try:
            self.interrupts.arm(timeout)
            shown = self._run(code)
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything, even SystemExit
            failure = exc
        finally:
            self.interrupts.disarm()

        error = describe_error(failure) if failure is not None else None
        images, note = self.figures.finish()
        self.capture.flush()
        stdout, stderr, truncated = self.capture.read(max_output)
        return {
            "type": "result",
            "id": request.get("id"),
            "stdout": stdout,
            "stderr": stderr + note,
            "output_truncated": truncated,
            "result": cap_text(shown, max_output) if shown is not None else None,
            "error": error,
            "images": images,
            "files": changed_files(before, snapshot_files(DATA_DIR)),
            "timed_out": isinstance(failure, ExecTimeout),
            "processes_left": count_other_processes(),
            "duration_ms": int((time.monotonic() - started) * 1000),
        }

    def _run(self, code):
        """Run the cell; returns repr() of a trailing expression's value, None if there is none
        (or if it is None), like a notebook. repr runs here so that the timeout covers it."""
        self.cell_count += 1
        filename = f"<cell {self.cell_count}>"
        # Register the source so tracebacks can show the offending lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename=filename, mode="exec")
        trailing = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
            trailing = ast.Expression(tree.body.pop().value)
        namespace = self.module.__dict__
        exec(compile(tree, filename, "exec"), namespace)
        if trailing is not None:
            value = eval(compile(trailing, filename, "eval"), namespace)
            if value is not None:
                return repr(value)
        return None


def count_other_processes():
    """Live processes of our user besides this driver and init: what the cell left running."""
    me, uid, count = os.getpid(), os.getuid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += 1
    return count


def reap_children():
    """Collect children that earlier cells started and never waited for (the sandbox kills
    what a cell leaves running, but its zombies stay ours and would use up the pids limit)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def user_frames(stack, top):
    """Drop the driver's frames, and everything called before the first frame of a cell
    (for the top exception: a SyntaxError raised by ast.parse shows no frames at all)."""
    frames = [frame for frame in stack if frame.filename != DRIVER_FILE]
    for index, frame in enumerate(frames):
        if frame.filename.startswith("<cell "):
            return frames[index:]
    return [] if top else frames


def describe_error(exc):
    """{"ename","evalue","traceback"}, the traceback formatted without the driver's frames."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen = set()
    pending = [(te, True)]
    while pending:
        current, top = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(user_frames(current.stack, top))
        pending += [(current.__cause__, False), (current.__context__, False)]
    try:
        evalue = str(exc)
    except Exception:  # noqa: BLE001
        evalue = "<exception str() failed>"
    return {"ename": type(exc).__name__, "evalue": evalue, "traceback": "".join(te.format())}


# ---------------------------------------------------------------------------------------------
# Start-up

def seed_matplotlib_cache():
    """Copy the font cache built into the image into MPLCONFIGDIR (a tmpfs at run time)."""
    target = os.environ.get("MPLCONFIGDIR")
    if not target or not os.path.isdir(MPL_CACHE_SEED):
        return
    try:
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(MPL_CACHE_SEED):
            if not os.path.exists(os.path.join(target, name)):
                shutil.copy(os.path.join(MPL_CACHE_SEED, name), target)
    except OSError:
        pass  # matplotlib rebuilds the cache itself, just more slowly


def import_libraries():
    """Import the heavy libraries up front so the first exec is fast; returns pyplot or None."""
    seed_matplotlib_cache()
    for name in ("numpy", "pandas"):
        try:
            __import__(name)
        except ImportError:
            pass  # host-side tests run without them
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        return None
    # Fall back to a CJK font for glyphs DejaVu lacks: matplotlib >= 3.6 falls back per glyph
    # along the font.family list (not along font.sans-serif).
    from matplotlib import font_manager
    if any(font.name == CJK_FONT for font in font_manager.fontManager.ttflist):
        matplotlib.rcParams["font.family"] = ["sans-serif", CJK_FONT]
    return pyplot


def main():
    try:
        # Own process group, so the host can signal the driver with its children (kill -- -PID).
        os.setsid()
    except OSError:
        pass  # already a session leader
    channel = Channel()
    diagnostics = os.dup(2)  # the original stderr, for the driver's own failures
    session = Session(import_libraries())
    session.capture.reset()  # from here on, stray output cannot reach the protocol stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel.send({"type": "ready", "pid": os.getpid()})

    while True:
        request_id = None
        try:
            request = channel.receive()
            if request is None:
                return 0
            request_id = request.get("id")
            if request.get("type") != "exec":
                raise ValueError(f"unknown request type {request.get('type')!r}")
            response = session.execute(request)
        except (ValueError, TypeError) as exc:
            response = {"type": "error", "id": request_id, "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a driver bug: report it, keep serving
            os.write(diagnostics, traceback.format_exc().encode("utf-8", "replace"))
            response = {"type": "error", "id": request_id, "message": f"driver error: {exc!r}"}
        channel.send(response)


if __name__ == "__main__":
    sys.exit(main())
