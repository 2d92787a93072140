"""Running code: one session's kernels, capture and bookkeeping, and one execution."""

import importlib
import os
import site
import sys
import time
import traceback

from .capture import Capture, cap_text
from .files import DATA_DIR, DataFiles, changed_files, removed_files, snapshot_files
from .interrupts import Interrupts
from .js_kernel import JsKernel
from .libraries import on_pyplot
from .outputs import Figures, Outputs
from .processes import container_processes, count_other_processes, reap_children
from .protocol import Channel
from .python_kernel import make_kernel
from .stream import Streamer

DEFAULT_MAX_OUTPUT = 20_000


class Session:
    def __init__(self):
        self.driver_module = sys.modules["__main__"]  # keep the driver's own globals alive
        self.capture = Capture()
        self.outputs = Outputs(self.capture)
        self.figures = Figures(self.outputs.images)
        self.interrupts = Interrupts()
        self.interrupts.protect(Session.execute, Interrupts.arm, Interrupts.disarm, Channel.send,
                                Streamer.pump, Streamer.bundle)
        self.shell = make_kernel(self.outputs, self.interrupts)
        # By name: a Figure is shown as PNG once matplotlib is imported, which it need not be yet.
        self.shell.display_formatter.formatters["image/png"].for_type_by_name(
            "matplotlib.figure", "Figure", self.figures.png)
        on_pyplot(self.figures.attach)
        self.user_site = add_user_site()
        self.data_files = DataFiles(DATA_DIR)
        self.guardians = container_processes()
        self.prepared = False
        self.channel = None  # set by main(), for streamed executions
        self.js = JsKernel()
        # The E2B surface (streamed execs) serves JavaScript cells too: after its first cell, its
        # Node.js context starts between cells rather than when the first JavaScript cell waits.
        self.streamed = False
        self.warm_js = False

    def prepare(self):
        """Sets up what the next cell starts from. The main loop calls this right after each
        reply, while the CPU caches are still warm and nobody waits, rather than when the next
        cell arrives (from a cold cache, a gap of 100 ms is enough, it costs several times
        more). What user threads change between cells (sys.stdout, say), the next cell starts
        with, as in a notebook kernel."""
        self.capture.reset()
        self.interrupts.install()
        self.outputs.start()
        self.user_site.refresh()  # after a cell that installed something
        self.data_files.remember()
        self.prepared = True
        if self.warm_js:
            self.warm_js = False
            if not self.js.running():
                self.js.spawn()

    def execute(self, request):
        started = time.monotonic()
        code = request.get("code")
        if not isinstance(code, str):
            raise ValueError("exec request needs a string 'code'")
        timeout = float(request.get("timeout") or 0)  # 0 or absent: no timeout
        max_output = request.get("max_output")
        max_output = DEFAULT_MAX_OUTPUT if max_output is None else max(0, int(max_output))

        reap_children()
        if not self.prepared:  # prepare() failed after the last reply: try again, report here
            self.prepare()
        self.prepared = False
        self.capture.clear()
        before = self.data_files.before()
        streamer = None
        if request.get("stream") and not self.streamed:
            self.streamed = self.warm_js = True
        if request.get("stream") and self.channel is not None:
            streamer = Streamer(self.channel, self.capture, request.get("id"), max_output)
            self.outputs.sink = streamer.bundle
            streamer.start()

        javascript = request.get("language") == "javascript"

        # Keep this block free of calls into other Python functions: see Interrupts.
        failure = None
        try:
            self.interrupts.arm(timeout)
            if javascript:
                self.js.run_cell(code, self.outputs)
            else:
                self.shell.run_cell(code, store_history=True)
        except BaseException as exc:  # noqa: BLE001 - an interrupt that escaped IPython itself
            failure = exc
        finally:
            self.interrupts.disarm()

        if failure is not None and self.outputs.error is None:
            self.outputs.failed(type(failure).__name__, str(failure),
                                "".join(traceback.format_exception_only(type(failure), failure)))
        self.figures.finish()
        self.capture.flush()
        if streamer is not None:
            streamer.finish()
            self.outputs.sink = None
            stdout, stderr = "", ""
            truncated = streamer.budget <= 0
        else:
            stdout, stderr, truncated = self.capture.read(max_output)
        result = self.outputs.result
        after = snapshot_files(DATA_DIR)
        return {
            "type": "result",
            "id": request.get("id"),
            "stdout": stdout,
            "stderr": stderr + self.outputs.images.notes(),
            "output_truncated": truncated,
            "result": cap_text(result, max_output) if result is not None else None,
            "error": self.outputs.error,
            "images": self.outputs.images.encoded,
            "files": changed_files(before, after),
            "removed": removed_files(before, after),
            "timed_out": self.interrupts.timed_out,
            "processes_left": count_other_processes(self.guardians | self.js.pids()),
            "duration_ms": int((time.monotonic() - started) * 1000),
        }


class UserSite:
    """The per-session user site (below PYTHONUSERBASE, on /tmp) where `%pip install` puts
    packages; on sys.path from the start, ahead of the system's, so an install is importable in
    the running kernel at once."""

    def __init__(self, path):
        self.path = path
        self.mtime = self._mtime()

    def _mtime(self):
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def refresh(self):
        """After a cell that installed something: forget cached directory listings."""
        mtime = self._mtime()
        if mtime != self.mtime:
            self.mtime = mtime
            importlib.invalidate_caches()


def add_user_site():
    path = site.getusersitepackages()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        pass
    if path not in sys.path:
        system = [i for i, entry in enumerate(sys.path) if entry.endswith(("-packages", "-packages/"))]
        sys.path.insert(system[0] if system else len(sys.path), path)
    return UserSite(path)
