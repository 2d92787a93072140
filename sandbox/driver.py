#!/usr/bin/env python3
"""assistd code_interpreter driver: runs inside the sandbox container, one per session.

Cells run in an in-process IPython shell (`Kernel`, its namespace `shell.user_ns`), so they
behave as in a notebook: the trailing expression is shown, display(), !cmd, %magics, %%cell
magics. Each displayed MIME bundle becomes an image (PNG, JPEG and SVG as PNG) or its plain
text in stdout, where the output caps apply to it as to anything printed.

Protocol (newline-delimited JSON, one object per line, both directions):
  driver -> {"type":"ready","pid":N}                        once, after the heavy imports
  host   -> {"type":"exec","id":..,"code":..,"timeout":secs,"max_output":bytes}
  driver -> {"type":"result","id":..,"stdout":..,"stderr":..,"output_truncated":..,
             "result":..,"error":null|{"ename","evalue","traceback"},"images":[b64 png],
             "files":[{"path","size"}],"removed":[paths],"timed_out":..,"duration_ms":..}
  host   -> {"type":"checkpoint","id":..,"path":..}         pickle the namespace into `path`
  driver -> {"type":"checkpointed","id":..,"path":..,"size":bytes,"kept":[names],
             "modules":{name: module},"skipped":[{"name","type","reason"}],"duration_ms":..}
  host   -> {"type":"checkpoint","id":..,"path":..,"discard":true}   remove that pickle again
  host   -> {"type":"restore","id":..,"path":..}            load such a pickle into the namespace
                                                             (and remove it)
  driver -> {"type":"restored","id":..,"restored":[names],"modules":{name: module},
             "failed":[{"name","type","reason"}],"duration_ms":..}
  driver -> {"type":"error","id":..|null,"message":..}      for a request it cannot parse
An exec with "language": "javascript" runs the code in the session's Node.js context instead (see
JsKernel). An exec with "stream": true (the E2B surface) is also answered, while it runs, by
  driver -> {"type":"output","id":..,"name":"stdout"|"stderr","text":..}   output as written
  driver -> {"type":"output","id":..,"name":"result","bundle":{mime: data},"main":bool}
and its result then carries only what was not streamed (no stdout/stderr, no "result" text;
displayed bundles are not turned into images or text).

The protocol uses private duplicates of the original fd 0 and fd 1. User code gets stdin from
/dev/null and fd 1/2 redirected into capture files, so output from os.system() and C code is
captured too and nothing user code does with sys.stdout can corrupt the protocol stream.
"""

import _signal
import base64
import contextlib
import ctypes
import fcntl
import gc
import html.parser
import importlib
import io
import json
import os
import pickle
import re
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings

DATA_DIR = os.environ.get("ASSISTD_DATA_DIR", "/mnt/data")
MPL_CACHE_SEED = "/opt/assistd/mpl-cache"
MAX_IMAGES = 10
# One image larger than this (as PNG) is dropped with a note rather than sent.
MAX_IMAGE_BYTES = 8 * 1024 * 1024
CJK_FONT = "WenQuanYi Micro Hei"
DEFAULT_MAX_OUTPUT = 20_000
# After the timeout fires, keep interrupting this often in case user code swallowed the exception.
TIMEOUT_REPEAT_S = 0.5


# ---------------------------------------------------------------------------------------------
# Protocol channel

class Channel:
    """JSON lines over the original stdin/stdout, kept on private (non-inheritable) fds."""

    def __init__(self):
        self.out_fd = os.dup(1)
        self.reader = os.fdopen(os.dup(0), "rb")
        # ensure_ascii=False keeps the line compact; "replace" below guards against lone
        # surrogates, which are not valid UTF-8 (and which serde would reject as escapes).
        self.encode = json.JSONEncoder(ensure_ascii=False).encode

    def send(self, obj):
        data = (self.encode(obj) + "\n").encode("utf-8", "replace")
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


# ---------------------------------------------------------------------------------------------
# Files under /mnt/data

def snapshot_files(root):
    """{path: (mtime_ns, size)} for every regular file below root (symbolic links are neither
    followed nor listed). Plain scandir: os.walk's generators cost several times more for the
    handful of files a session usually has, twice per execution."""
    found = {}
    pending = [root]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[entry.path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
    return found


def changed_files(before, after):
    return [{"path": path, "size": meta[1]}
            for path, meta in sorted(after.items()) if before.get(path) != meta]


def removed_files(before, after):
    """Files there before the cell and gone after it (deleted or renamed by the code)."""
    return sorted(path for path in before if path not in after)


class DataFiles:
    """The snapshot a cell's changes are measured against. Taken between cells (remember())
    and used as it is while the directory itself is unchanged: whatever the host puts into
    /mnt/data between cells (an uploaded file, a restored checkpoint) adds entries to it,
    which changes its mtime and ctime, and then the cell lists the files afresh."""

    def __init__(self, root):
        self.root = root
        self.remembered = None  # (the directory's identity, snapshot)

    def _identity(self):
        try:
            st = os.stat(self.root)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns

    def remember(self):
        # The identity first: a change during the walk then makes it stale.
        identity = self._identity()
        self.remembered = (identity, snapshot_files(self.root))

    def before(self):
        remembered, self.remembered = self.remembered, None
        if remembered is not None and remembered[0] is not None \
                and remembered[0] == self._identity():
            return remembered[1]
        return snapshot_files(self.root)


# ---------------------------------------------------------------------------------------------
# Images: matplotlib figures and displayed PNG / JPEG / SVG, at most MAX_IMAGES per execution

class Images:
    def __init__(self):
        self.start()

    def start(self):
        self.encoded = []
        self.dropped = 0
        self.too_big = 0

    def full(self):
        return len(self.encoded) >= MAX_IMAGES

    def add_png(self, png):
        if self.full():
            self.dropped += 1
        elif len(png) > MAX_IMAGE_BYTES:
            self.too_big += 1
        else:
            self.encoded.append(base64.b64encode(png).decode("ascii"))

    def notes(self):
        note = ""
        if self.dropped:
            note += (f"\n[{self.dropped} more image(s) not shown: "
                     f"the limit is {MAX_IMAGES} images per execution]\n")
        if self.too_big:
            note += (f"\n[{self.too_big} image(s) not shown: larger than "
                     f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB as PNG]\n")
        return note


class Figures:
    """matplotlib figures as PNG: on plt.show() / fig.show(), display(fig), a trailing `fig`,
    and those left open at the end. Each is closed once rendered, so none is returned twice."""

    def __init__(self, pyplot, images):
        self.plt = pyplot
        self.images = images
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

    def png(self, fig):
        """The figure as PNG bytes (None when empty), closing it: the display formatter."""
        try:
            if len(fig.get_children()) <= 1:  # the background patch alone is an empty figure
                return None
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()
        finally:
            self.plt.close(fig)

    def capture(self, fig):
        if self.images.full():
            self.images.dropped += 1
            self.plt.close(fig)
            return
        png = self.png(fig)
        if png is not None:
            self.images.add_png(png)

    def finish(self):
        """Capture figures still open."""
        if self.plt is None:
            return
        for num in self.plt.get_fignums():
            try:
                self.capture(self.plt.figure(num))
            except Exception as exc:
                self.plt.close(num)
                sys.stderr.write(f"[could not render figure {num}: {exc!r}]\n")


# ---------------------------------------------------------------------------------------------
# MIME bundles: what display() and a trailing expression produce

# The text/plain IPython gives objects that only have rich forms (HTML(), Markdown(), JSON()).
BARE_REPR = re.compile(r"<[\w.]+ object(?: at 0x[0-9a-fA-F]+)?>")


class HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML fragment, one line per block element or table row."""

    BLOCKS = {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre"}

    def __init__(self):
        super().__init__()
        self.parts = []
        self.hidden = 0

    def handle_starttag(self, tag, _attrs):
        if tag in ("script", "style"):
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.hidden = max(0, self.hidden - 1)

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)

    @classmethod
    def convert(cls, markup):
        parser = cls()
        parser.feed(markup)
        parser.close()
        lines = (line.strip() for line in "".join(parser.parts).splitlines())
        return "\n".join(line for line in lines if line)


def as_bytes(value):
    """Image data from a bundle: raw bytes, or base64 text (IPython.display.Image gives that)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return base64.b64decode(value)


def to_png(mime, value):
    data = value.encode("utf-8") if mime == "image/svg+xml" and isinstance(value, str) else value
    if mime == "image/png":
        return as_bytes(data)
    if mime == "image/jpeg":
        from PIL import Image
        out = io.BytesIO()
        Image.open(io.BytesIO(as_bytes(data))).save(out, format="PNG")
        return out.getvalue()
    import cairosvg
    return cairosvg.svg2png(bytestring=data)


def bundle_text(bundle):
    """The text a log shows for a bundle: text/plain, unless that is only a bare object repr
    and a textual form exists (Markdown, LaTeX, JSON, HTML reduced to its text)."""
    text = bundle.get("text/plain")
    if isinstance(text, str) and not BARE_REPR.fullmatch(text.strip()):
        return text
    if isinstance(bundle.get("text/markdown"), str):
        return bundle["text/markdown"]
    if isinstance(bundle.get("text/latex"), str):
        return bundle["text/latex"]
    if "application/json" in bundle:
        return json.dumps(bundle["application/json"], indent=2, ensure_ascii=False, default=str)
    if isinstance(bundle.get("text/html"), str):
        return HtmlText.convert(bundle["text/html"])
    return text


class Outputs:
    """What one execution produced besides its stdout/stderr files."""

    IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")

    def __init__(self, capture):
        self.capture = capture
        self.images = Images()
        self.start()

    def start(self):
        self.images.start()
        self.result = None
        self.error = None
        self.sink = None  # for a streamed execution: called with (bundle, is_main_result)

    def _image(self, bundle):
        """Take the bundle's image, if it has one; True when it did."""
        for mime in self.IMAGE_TYPES:
            if mime in bundle and bundle[mime]:
                if self.images.full():
                    self.images.dropped += 1
                    return True
                try:
                    self.images.add_png(to_png(mime, bundle[mime]))
                    return True
                except Exception as exc:  # noqa: BLE001 - a broken image is reported, not fatal
                    sys.stderr.write(f"[could not convert {mime} output to PNG: {exc!r}]\n")
        return False

    def display(self, bundle):
        """display(): an image, or its text in stdout, in order with what was printed."""
        if self.sink is not None:
            self.sink(bundle, False)
            return
        if self._image(bundle):
            return
        text = bundle_text(bundle)
        if text is not None:
            self.capture.write_stdout(text if text.endswith("\n") else text + "\n")

    def trailing(self, bundle):
        """The value of a trailing expression: an image, or the `result` text."""
        if self.sink is not None:
            self.sink(bundle, True)
            return
        if not self._image(bundle):
            self.result = bundle_text(bundle)

    def failed(self, ename, evalue, traceback_text):
        self.error = {"ename": ename, "evalue": evalue, "traceback": traceback_text}


# ---------------------------------------------------------------------------------------------
# Interrupts: the timeout (SIGALRM via setitimer) and SIGINT from the host

class ExecTimeout(BaseException):
    """Raised inside user code when its time is up. BaseException, so `except Exception` in
    user code does not swallow it; reported as TimeoutError."""


ExecTimeout.__name__ = ExecTimeout.__qualname__ = "TimeoutError"
ExecTimeout.__module__ = "builtins"


class Interrupts:
    """The handlers raise only while a cell runs (armed) and never in the frames that arm and
    disarm, so a late signal cannot escape into the driver's own bookkeeping. A signal that lands
    there is dropped; the repeating timer fires again if user code is still running."""

    def __init__(self):
        self.armed = False
        self.timeout = 0.0
        self.timed_out = False
        self.protected = set()
        self.handlers = ((signal.SIGALRM, self._on_alarm), (signal.SIGINT, self._on_sigint))

    def protect(self, *functions):
        self.protected.update(f.__code__ for f in functions)

    def install(self):
        # Reinstalled before every exec, in case user code replaced them (even with sigaction
        # through ctypes). With _signal.signal, the C function that signal.signal wraps: the
        # wrapper's conversion of the old handler to an enum (an exception raised and caught
        # inside enum when it is a Python function) costs more than the system calls.
        for signum, handler in self.handlers:
            _signal.signal(signum, handler)

    def arm(self, timeout):
        self.timeout = timeout
        self.timed_out = False
        self.armed = True
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout, TIMEOUT_REPEAT_S)

    def disarm(self):
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def drop_handler_frames(self, tb):
        """Cut the signal handler's own frame off a traceback: the user's line is the last."""
        handlers = (Interrupts._on_alarm.__code__, Interrupts._on_sigint.__code__)
        while tb is not None and tb.tb_next is not None:
            if tb.tb_next.tb_frame.f_code in handlers:
                tb.tb_next = None
            tb = tb.tb_next

    def _interruptible(self, frame):
        return self.armed and (frame is None or frame.f_code not in self.protected)

    def _on_alarm(self, _signum, frame):
        if self._interruptible(frame):
            self.timed_out = True
            raise ExecTimeout(f"Execution timed out after {self.timeout:g} seconds")

    def _on_sigint(self, _signum, frame):
        # Only a running cell is interruptible; between execs the driver ignores SIGINT.
        if self._interruptible(frame):
            raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# The IPython shell

@contextlib.contextmanager
def terminal_modules_hidden():
    """Keeps two imports that only a terminal needs out of every session's memory while IPython
    loads and builds its shell: jedi (tab completion, ~6 MiB) and IPython.terminal.embed, which
    `import IPython` loads for IPython.embed and which pulls in prompt_toolkit (~5 MiB).
    Afterwards user code imports either normally; IPython.embed loads the real one when called."""
    def embed(**kwargs):
        from IPython.terminal.embed import embed as terminal_embed
        return terminal_embed(**kwargs)

    stub = types.ModuleType("IPython.terminal.embed")
    stub.embed = embed
    hidden = {name: module for name, module in (("jedi", None), ("IPython.terminal.embed", stub))
              if name not in sys.modules}
    sys.modules.update(hidden)
    try:
        yield
    finally:
        for name in hidden:
            sys.modules.pop(name, None)


def make_kernel(outputs, interrupts):
    with terminal_modules_hidden():
        return build_kernel(outputs, interrupts)


def build_kernel(outputs, interrupts):
    """An InteractiveShell whose display hook, display publisher and traceback printer report
    to `outputs`, with shell commands run on the captured fds."""
    from IPython.core.autocall import IPyAutocall
    from IPython.core.compilerop import CachingCompiler
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.history import HistoryManager
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.macro import Macro
    from IPython.core.splitinput import LineInfo
    from IPython.utils.text import LSString, SList
    from traitlets import Type
    from traitlets.config import Config

    # IPython keeps some per-cell bookkeeping in traitlets. Setting one validates the value and
    # dispatches change notifications: ~30 us each from a cold CPU cache (the usual state when
    # a cell arrives), nine per cell. Nothing observes these, so the subclasses below shadow
    # them with plain attributes.

    class CellDisplayHook(DisplayHook):
        """The trailing expression: kept in Out / _ as IPython does, shown by `outputs`."""

        exec_result = None

        def start_displayhook(self):
            pass

        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            outputs.trailing(format_dict)

        def finish_displayhook(self):
            pass

    class CellPublisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            outputs.display(data)

        def clear_output(self, wait=False):
            pass

    class CellCompiler(CachingCompiler):
        """IPython's compiler, which takes the syntax tree Kernel.transform_cell already parsed
        instead of parsing the same cell again."""

        parsed = None  # (source, filename, flags, tree), used once

        def ast_parse(self, source, filename="<unknown>", symbol="exec"):
            parsed, self.parsed = self.parsed, None
            if parsed is not None and symbol == "exec" \
                    and parsed[:3] == (source, filename, self.flags):
                return parsed[3]
            return super().ast_parse(source, filename, symbol)

        last_name = None  # ((raw, transformed, number), name)

        def get_code_name(self, raw_code, transformed_code, number):
            # Asked twice per cell (Kernel.transform_cell, then cache()); a hash of the cell.
            key = (raw_code, transformed_code, number)
            if self.last_name is None or self.last_name[0] != key:
                self.last_name = (key, super().get_code_name(raw_code, transformed_code, number))
            return self.last_name[1]

    # The default cleanup and line transforms look only at the start of the first two lines
    # (blank lines and indentation, >>> and ... prompts, In [n]: prompts, a %%cell magic).
    # When neither line starts with anything like those, calling them changes nothing.
    defaults = TransformerManager()
    plain_transforms = defaults.cleanup_transforms + defaults.line_transforms
    prompt_like = (">>>", "...", "In [", "[nav]", "[ins]", "%%")

    def cleanup_needed(lines):
        first = lines[0]
        second = lines[1] if len(lines) > 1 else ""
        return (first[:1].isspace() or first.lstrip().startswith(prompt_like)
                or second.lstrip().startswith(prompt_like))

    # IPython's own token transformers (%magic, !cmd, a = %magic, a = !cmd, obj?): each rewrites
    # only syntax that is not Python, so a cell that parses as Python leaves them nothing to do.
    python_only_tokens = defaults.token_transformers

    class CellHistory(HistoryManager):
        _i = _ii = _iii = _i00 = ""

        def store_inputs(self, line_num, source, source_raw=None):
            """HistoryManager.store_inputs (In, _i, _ii, _iii, _iN) without the queue for the
            database writer: with the history disabled nothing empties it, so it only grew,
            and queueing woke a threading.Event after every cell."""
            if self.enabled:
                return super().store_inputs(line_num, source, source_raw)
            source_raw = (source if source_raw is None else source_raw).rstrip("\n")
            source = source.rstrip("\n")
            if self._exit_re.match(source_raw.strip()):
                return None
            self.input_hist_parsed.append(source)
            self.input_hist_raw.append(source_raw)
            self._iii, self._ii, self._i, self._i00 = self._ii, self._i, self._i00, source_raw
            if self.shell is not None:
                self.shell.push({"_i": self._i, "_ii": self._ii, "_iii": self._iii,
                                 f"_i{line_num}": self._i00}, interactive=False)
            return None

    class Kernel(InteractiveShell):
        displayhook_class = Type(CellDisplayHook)
        display_pub_class = Type(CellPublisher)
        compiler_class = Type(CellCompiler)
        execution_count = 1
        last_execution_succeeded = True
        last_execution_result = None

        def init_history(self):
            self.history_manager = CellHistory(shell=self, parent=self)
            self.configurables.append(self.history_manager)

        def init_prefilter(self):
            super().init_prefilter()
            manager = self.prefilter_manager
            # The prefilter as built; a change to a checker's settings or to autocall ends
            # the shortcut in prefilter_keeps for good.
            self.plain_prefilter = (list(manager._checkers), manager._handlers.get("normal"))
            for checker in manager._checkers:
                checker.observe(self._prefilter_changed, names=["enabled", "priority"])
            self.observe(self._prefilter_changed, names=["autocall"])

        def _prefilter_changed(self, _change):
            self.plain_prefilter = None

        def prefilter_keeps(self, line):
            """Whether IPython's prefilter (applied to one-line cells) would return this line,
            which parses as Python, as it is. With the default checkers and autocall off only
            three can change such a line, all keyed on its first name (LineInfo.ifun): a
            macro or an IPyAutocall (exit, quit) under that name, or a magic of that name
            (automagic). Anything else takes the checkers' normal handler, which returns the
            line. The full prefilter costs as much as the rest of a small cell."""
            plain, manager = self.plain_prefilter, self.prefilter_manager
            if (plain is None or manager._transformers or manager._checkers != plain[0]
                    or manager._handlers.get("normal") is not plain[1]):
                return False
            name = LineInfo(line).ifun
            return not (self.find_magic(name)
                        or isinstance(self.user_ns.get(name), (Macro, IPyAutocall)))

        def transform_cell(self, raw_cell):
            """IPython's transform_cell, but a cell that parses as Python after the cleanup
            transforms skips the token transforms: they tokenize the cell in pure Python, the
            largest part of IPython's cost for a small cell, and would change nothing."""
            manager = self.input_transformer_manager
            if manager.token_transformers != python_only_tokens:
                return super().transform_cell(raw_cell)
            # TransformerManager.transform_cell, with the token transforms made conditional.
            cell = raw_cell if raw_cell.endswith("\n") else raw_cell + "\n"
            lines = cell.splitlines(keepends=True)
            transforms = manager.cleanup_transforms + manager.line_transforms
            if transforms != plain_transforms or cleanup_needed(lines):
                for transform in transforms:
                    lines = transform(lines)
                cell = "".join(lines)
            parsed = None
            try:
                name = self.compile.get_code_name(raw_cell, cell, self.execution_count)
                parsed = (cell, name, self.compile.flags, self.compile.ast_parse(cell, name))
            except Exception:  # noqa: BLE001 - not Python (or not yet): IPython's way
                cell = "".join(manager.do_token_transforms(lines))
            # The rest of InteractiveShell.transform_cell.
            if len(cell.splitlines()) == 1:
                line = cell.rstrip("\n")
                if parsed is not None and self.prefilter_keeps(line):
                    self._last_input_line = line  # what prefilter_line records
                else:
                    with self.builtin_trap:
                        cell = self.prefilter_manager.prefilter_lines(cell) + "\n"
            if self.input_transformers_post:
                lines = cell.splitlines(keepends=True)
                for transform in self.input_transformers_post:
                    lines = transform(lines)
                cell = "".join(lines)
            # Handed to run_cell's own parse, which uses it only if nothing changed it since.
            self.compile.parsed = parsed
            return cell

        def run_cell(self, *args, **kwargs):
            # One activation of the builtins (exit, quit, get_ipython) for the whole cell: IPython
            # activates and restores them twice, around the prefilter and around the execution.
            with self.builtin_trap:
                return super().run_cell(*args, **kwargs)

        def should_run_async(self, raw_cell, *, transformed_cell=None,
                             preprocessing_exc_tuple=None):
            # Only await, async for and async with make a cell a coroutine; IPython finds out
            # by compiling the whole cell once more.
            if (transformed_cell is not None and "await" not in transformed_cell
                    and "async" not in transformed_cell):
                return False
            return super().should_run_async(raw_cell, transformed_cell=transformed_cell,
                                            preprocessing_exc_tuple=preprocessing_exc_tuple)

        def showtraceback(self, *args, **kwargs):
            # The cell is over: no timer tick may interrupt the formatting of its traceback.
            interrupts.disarm()
            interrupts.drop_handler_frames(sys.exc_info()[2])
            super().showtraceback(*args, **kwargs)

        def _showtraceback(self, etype, evalue, stb):
            try:
                text = str(evalue)
            except Exception:  # noqa: BLE001
                text = "<exception str() failed>"
            outputs.failed(etype.__name__, text, self.InteractiveTB.stb2text(stb))

        def show_usage_error(self, exc):
            # A misused or unknown magic: IPython prints one line instead of a traceback.
            outputs.failed("UsageError", str(exc), f"UsageError: {exc}")

        # !cmd: straight on fds 1 and 2 (captured there), not through a pty as IPython's default.
        def system(self, cmd):
            return self.system_raw(cmd)

        def getoutput(self, cmd, split=True, depth=0):
            """!!cmd and `x = !cmd`: stdout and stderr together, as IPython gives them."""
            cmd = self.var_expand(cmd, depth=depth + 1)
            if cmd.rstrip().endswith("&"):
                raise OSError("Background processes not supported.")
            completed = subprocess.run(cmd, shell=True, executable=os.environ.get("SHELL"),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            out = LSString(completed.stdout.decode("utf-8", "replace"))
            return SList(out.splitlines()) if split else out

    # run_code's SystemExit branch adds this hint for terminal users; a cell has no Ctrl-D.
    warnings.filterwarnings("ignore", message="To exit: use 'exit', 'quit', or Ctrl-D.")
    os.environ.setdefault("IPYTHONDIR", os.path.join(tempfile.gettempdir(), ".ipython"))
    config = Config()
    # No history database and no history thread: nothing to keep across processes.
    config.HistoryManager.enabled = False
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "NoColor"  # the model reads tracebacks: no ANSI codes
    config.InteractiveShell.autocall = 0
    config.InteractiveShell.autoindent = False
    module = types.ModuleType("__main__")
    # User code runs in a real module registered as __main__ (IPython does that), so pickle
    # and multiprocessing find classes and functions defined in cells.
    kernel = Kernel.instance(config=config, user_module=module, user_ns=module.__dict__)
    kernel.display_formatter.active_types = [
        "text/plain", "text/html", "text/markdown", "text/latex", "application/json",
        *Outputs.IMAGE_TYPES,
    ]
    return kernel


# ---------------------------------------------------------------------------------------------
# Streaming an execution's output as it is written (exec with "stream": true)

def bundle_json(bundle):
    """A MIME bundle as JSON: bytes (PNG, JPEG, PDF) base64, JSON kept, anything else text."""
    out = {}
    for mime, value in bundle.items():
        if isinstance(value, (bytes, bytearray)):
            out[mime] = base64.b64encode(value).decode("ascii")
        elif mime == "application/json" or mime.endswith("+json"):
            out[mime] = json.loads(json.dumps(value, default=str))
        elif isinstance(value, str):
            out[mime] = value
        else:
            out[mime] = str(value)
    return out


def complete_utf8(data):
    """(text, bytes used): a UTF-8 character cut at the end waits for its rest."""
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            return data[:exc.start].decode("utf-8", "replace"), exc.start
        return data.decode("utf-8", "replace"), len(data)


class Streamer:
    """Sends what the cell writes to fd 1 and 2 as it is written: a thread polls the capture
    files (every write from any process lands there) and sends the new bytes. Bundles are
    sent by the main thread, through the same lock, in order with the text before them."""

    POLL_S = 0.02

    def __init__(self, channel, capture, request_id, max_output):
        self.channel = channel
        self.capture = capture
        self.id = request_id
        self.budget = max_output
        self.sent = {"stdout": 0, "stderr": 0}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        while not self.stopped.wait(self.POLL_S):
            self.pump()

    def pump(self):
        with self.lock:
            for name, fd in self.capture.files.items():
                size = os.fstat(fd).st_size
                offset = self.sent[name]
                if size <= offset or self.budget <= 0:
                    continue
                take = min(size - offset, self.budget, 1 << 20)
                data = os.pread(fd, take, offset)
                text, used = complete_utf8(data)
                if not used:
                    continue
                self.sent[name] = offset + used
                self.budget -= used
                self.channel.send({"type": "output", "id": self.id, "name": name, "text": text})

    def bundle(self, bundle, main):
        self.capture.flush()
        self.pump()
        with self.lock:
            self.channel.send({"type": "output", "id": self.id, "name": "result",
                               "bundle": bundle_json(bundle), "main": bool(main)})

    def finish(self):
        self.stopped.set()
        self.thread.join()
        self.capture.flush()
        self.pump()


# ---------------------------------------------------------------------------------------------
# A stateful JavaScript context (the E2B surface's `language: "js"`)

# Runs in one long-lived `node` per session, started on the first JavaScript cell. Cells run in
# node's own global context as scripts, so globals and top-level let/const/function persist and the
# last expression is the value; a cell with top-level `await` runs as an async function whose
# top-level declarations are made globals and whose last line, when it is an expression, is the
# value. console.log writes to the inherited fd 1/2, so it is captured (and streamed) like print.
# Requests come on fd 3, answers go to fd 4, one JSON line each.
JS_KERNEL = r"""
const fs = require('fs'), vm = require('vm'), util = require('util'), readline = require('readline');
globalThis.require = require;
const out = Number(process.env.ASSISTD_JS_OUT);
const KEYWORD = /^(const|let|var|if|else|for|while|do|return|function|async\s+function|class|try|catch|finally|switch|throw|import|export|break|continue|\}|\/\/|\/\*|\*)/;
function asyncBody(code, value) {
  const lines = code.split('\n');
  for (let i = 0; i < lines.length; i++) {
    lines[i] = lines[i]
      .replace(/^(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=/, 'globalThis.$1 =')
      .replace(/^(async\s+)?function\s*(\*?)\s*([A-Za-z_$][\w$]*)/, 'globalThis.$3 = $1function$2 $3')
      .replace(/^class\s+([A-Za-z_$][\w$]*)/, 'globalThis.$1 = class $1');
  }
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === '') last--;
  if (value && last >= 0) {
    const line = lines[last];
    const bare = line.replace(/;\s*$/, '');
    const cut = bare.lastIndexOf(';');
    const expr = bare.slice(cut + 1).trim();
    if (line === line.trimStart() && !KEYWORD.test(expr) && !/[{,(\[]\s*$/.test(line) && expr) {
      lines[last] = bare.slice(0, cut + 1) + ' return (' + expr + ');';
    }
  }
  return '(async () => {\n' + lines.join('\n') + '\n})()';
}
async function run(code) {
  let value;
  try {
    new vm.Script(code, { filename: 'cell.js' });
    value = vm.runInThisContext(code, { filename: 'cell.js' });
  } catch (e) {
    if (!(e instanceof SyntaxError && /await/.test(e.message))) throw e;
    // The last line taken for the value may not be an expression after all: then no value.
    let body = asyncBody(code, true);
    try { new vm.Script(body); } catch (_) { body = asyncBody(code, false); }
    value = await vm.runInThisContext(body, { filename: 'cell.js' });
  }
  if (value && typeof value.then === 'function') value = await value;
  return value;
}
function send(obj) { fs.writeSync(out, JSON.stringify(obj) + '\n'); }
const lines = readline.createInterface({ input: fs.createReadStream(null, { fd: Number(process.env.ASSISTD_JS_IN) }) });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    const { code } = JSON.parse(line);
    try {
      const value = await run(code);
      send({ ok: true, text: value === undefined ? null : util.inspect(value, { depth: 4, colors: false }) });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      send({ ok: false, name: err.name || 'Error', message: err.message, stack: err.stack || String(err) });
    }
  });
});
lines.on('close', () => process.exit(0));
send({ ready: true });
"""


class JsKernel:
    """The session's Node.js process, started on first use and again after it died."""

    def __init__(self):
        self.proc = None
        self.requests = None
        self.answers = None
        self.buffer = b""

    def pids(self):
        return {str(self.proc.pid)} if self.proc is not None and self.proc.poll() is None else set()

    def _start(self):
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        env = dict(os.environ, ASSISTD_JS_IN=str(req_r), ASSISTD_JS_OUT=str(ans_w), HOME=os.environ.get("HOME", "/tmp"))
        try:
            self.proc = subprocess.Popen(["node", "-e", JS_KERNEL], stdin=subprocess.DEVNULL,
                                         pass_fds=(req_r, ans_w), env=env, cwd=os.getcwd())
        finally:
            os.close(req_r)
            os.close(ans_w)
        self.requests, self.answers, self.buffer = req_w, ans_r, b""
        if not self._answer().get("ready"):
            raise RuntimeError("the JavaScript process did not start")

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - gone already
                pass
        for fd in (self.requests, self.answers):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.proc = self.requests = self.answers = None

    def _answer(self):
        while b"\n" not in self.buffer:
            chunk = os.read(self.answers, 1 << 20)
            if not chunk:
                self.stop()
                raise RuntimeError("the JavaScript process exited; its variables are gone")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def run_cell(self, code, outputs):
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self._start()
        try:
            data = (json.dumps({"code": code}) + "\n").encode()
            while data:
                data = data[os.write(self.requests, data):]
            answer = self._answer()
        except BaseException:
            # Interrupted (time limit, cancel) or broken mid-cell: the context cannot be trusted.
            self.stop()
            raise
        if answer.get("ok"):
            if answer.get("text") is not None:
                outputs.trailing({"text/plain": answer["text"]})
        else:
            outputs.failed(answer.get("name") or "Error", answer.get("message") or "",
                           answer.get("stack") or "")


# ---------------------------------------------------------------------------------------------
# Running code

class Session:
    def __init__(self, pyplot):
        self.driver_module = sys.modules["__main__"]  # keep the driver's own globals alive
        self.capture = Capture()
        self.outputs = Outputs(self.capture)
        self.figures = Figures(pyplot, self.outputs.images)
        self.interrupts = Interrupts()
        self.interrupts.protect(Session.execute, Interrupts.arm, Interrupts.disarm, Channel.send,
                                Streamer.pump, Streamer.bundle)
        self.shell = make_kernel(self.outputs, self.interrupts)
        if pyplot is not None:
            import matplotlib.figure
            self.shell.display_formatter.formatters["image/png"].for_type(
                matplotlib.figure.Figure, self.figures.png)
        self.user_site = add_user_site()
        self.data_files = DataFiles(DATA_DIR)
        self.guardians = container_processes()
        self.prepared = False
        self.channel = None  # set by main(), for streamed executions
        self.js = JsKernel()

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


STATUS_FIELDS = re.compile(rb"^State:\s*(\S).*?^Uid:\s*(\d+)", re.MULTILINE | re.DOTALL)
PARENT_FIELD = re.compile(rb"^PPid:\s*(\d+)", re.MULTILINE)


def process_status(pid):
    """The start of /proc/PID/status (its State, PPid and Uid lines), None if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None


def container_processes():
    """Pids of root's processes whose parent is init (the container's guardian): they live as
    long as the container (init exits with its child), so their pids are never reused and
    count_other_processes need not read their status after every cell."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != "1":
            status = process_status(entry)
            parent = status and PARENT_FIELD.search(status)
            fields = status and STATUS_FIELDS.search(status)
            if parent and fields and parent[1] == b"1" and fields[2] == b"0":
                found.add(entry)
    return found


def count_other_processes(skip=()):
    """Live processes of our user besides this driver and init: what the cell left running.
    None when the driver, a subreaper, has no children (all a cell starts descends from it).
    Otherwise by the real uid in /proc/PID/status (a process that made itself undumpable has
    its /proc directory owned by root, so the directory's owner would not do)."""
    me, uid, count = str(os.getpid()), os.getuid(), 0
    if SUBREAPER and not has_children():
        return 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry in (me, "1") or entry in skip:
            continue
        status = process_status(entry)
        fields = status and STATUS_FIELDS.search(status)
        if fields and fields[1] != b"Z" and int(fields[2]) == uid:
            count += 1
    return count


PR_SET_CHILD_SUBREAPER = 36
SUBREAPER = False  # set by main()


def become_subreaper():
    """Orphaned descendants (`!cmd &`, double forks) become the driver's children instead of
    init's, so that no children at all means no process left behind: count_other_processes can
    tell that with one waitid() instead of reading /proc. True when the kernel agreed."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def has_children():
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


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


# ---------------------------------------------------------------------------------------------
# Checkpoints: the user namespace as far as it pickles

CHECKPOINT_FORMAT = 1
# IPython's own bookkeeping in the namespace: input/output history and its shortcuts.
HISTORY_NAME = re.compile(r"_+|_i+|_i?\d+|_[ido]h|In|Out|__\w+__")
SHELL_NAMES = {"get_ipython", "exit", "quit"}


def checkpoint_payload(value, pickler_classes):
    """`value` pickled and whether dill did it, or raise with the reason it cannot be kept.
    The C pickler first (a DataFrame's arrays go through it at memory speed); dill, pure
    Python but able to pickle functions and classes defined in cells by value, for what the C
    pickler refuses or would only reference by name in __main__ (the pickle then names
    `__main__`). `pickler_classes()` gives dill's pickler, imported on first need."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if b"__main__" not in data:
            return data, False
    except Exception:  # noqa: BLE001 - dill gets its chance and the final word
        pass
    buffer = io.BytesIO()
    pickler_classes()(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue(), True


def not_kept_reason(value):
    """Why a value is never checkpointed even where dill could write something for it: the
    restored object would only look like the original (a file handle reopened elsewhere, a
    thread that never runs)."""
    import threading
    if isinstance(value, io.IOBase):
        return "open file"
    if isinstance(value, threading.Thread):
        return "thread"
    if isinstance(value, types.GeneratorType):
        return "generator"
    return None


def make_pickler_class():
    import dill

    class Pickler(dill.Pickler):
        """dill's pickler that refuses, wherever they are nested, the objects not_kept_reason
        names."""

        def reducer_override(self, obj):
            reason = not_kept_reason(obj)
            if reason is not None:
                raise pickle.PicklingError(f"{reason} ({type(obj).__name__})")
            return NotImplemented

    return Pickler


def type_name(value):
    kind = type(value)
    module = getattr(kind, "__module__", "")
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


def reason_text(exc):
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    return first[:200]


class Checkpoints:
    """Writes and reads the namespace pickle. Each variable is pickled on its own, so one that
    does not pickle (or no longer loads) costs only itself; objects shared between variables
    come back as separate copies. dill is imported only when a variable needs it (importing it
    costs more than pickling a 10 MB DataFrame).

    The host has the pickle written into /mnt/data (hidden), so that it leaves and re-enters
    the sandbox in the same archive as the files; `{"type":"checkpoint","path":..,"discard":true}`
    removes it once copied out (answered like a checkpoint that kept nothing), and a restore
    removes it once loaded (or not)."""

    def __init__(self, shell):
        self.shell = shell

    def user_names(self):
        hidden = self.shell.user_ns_hidden
        for name, value in list(self.shell.user_ns.items()):
            if HISTORY_NAME.fullmatch(name) or name in SHELL_NAMES:
                continue
            if name in hidden and hidden[name] is value:
                continue
            yield name, value

    def checkpoint(self, request):
        started = time.monotonic()
        path = request.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("checkpoint request needs a string 'path'")
        if request.get("discard"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return {"type": "checkpointed", "id": request.get("id"), "path": path, "size": 0,
                    "kept": [], "modules": {}, "skipped": [],
                    "duration_ms": int((time.monotonic() - started) * 1000)}
        pickler_class = []

        def pickler_classes():
            if not pickler_class:
                pickler_class.append(make_pickler_class())
            return pickler_class[0]

        modules, values, by_dill, kept, skipped = {}, {}, [], [], []
        for name, value in self.user_names():
            if isinstance(value, types.ModuleType):
                modules[name] = value.__name__
                continue
            try:
                reason = not_kept_reason(value)
                if reason is not None:
                    raise pickle.PicklingError(reason)
                values[name], dilled = checkpoint_payload(value, pickler_classes)
                if dilled:
                    by_dill.append(name)
                kept.append(name)
            except RecursionError:
                skipped.append({"name": name, "type": type_name(value),
                                "reason": "too deeply nested to pickle"})
            except Exception as exc:  # noqa: BLE001 - whatever fails is named, not fatal
                skipped.append({"name": name, "type": type_name(value), "reason": reason_text(exc)})
        state = {"format": CHECKPOINT_FORMAT, "modules": modules, "values": values,
                 "dill": by_dill, "skipped": skipped}
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # Straight to `path`: the host reads it only after this answer, and removes it either way.
        try:
            with open(path, "wb") as out:
                pickle.dump(state, out, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return {"type": "checkpointed", "id": request.get("id"), "path": path,
                "size": os.path.getsize(path), "kept": kept, "modules": modules,
                "skipped": skipped, "duration_ms": int((time.monotonic() - started) * 1000)}

    def restore(self, request):
        started = time.monotonic()
        path = request.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("restore request needs a string 'path'")
        try:
            with open(path, "rb") as source:
                state = pickle.load(source)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a checkpoint this driver can read")
        # Pickles from before the "dill" list may all need dill.
        by_dill = set(state.get("dill", state.get("values", {})))
        user_ns = self.shell.user_ns
        restored, modules, failed = [], {}, []
        for name, module in state.get("modules", {}).items():
            try:
                user_ns[name] = importlib.import_module(module)
                modules[name] = module
            except Exception as exc:  # noqa: BLE001
                failed.append({"name": name, "type": "module", "reason": f"import {module}: {reason_text(exc)}"})
        for name, payload in state.get("values", {}).items():
            try:
                if name in by_dill:
                    import dill
                    user_ns[name] = dill.loads(payload)
                else:
                    user_ns[name] = pickle.loads(payload)
                restored.append(name)
            except Exception as exc:  # noqa: BLE001 - e.g. a class from a package no longer installed
                failed.append({"name": name, "type": "", "reason": f"could not be loaded: {reason_text(exc)}"})
        # What did not pickle at checkpoint time is not here either: say so again.
        failed.extend(state.get("skipped", []))
        return {"type": "restored", "id": request.get("id"), "restored": restored,
                "modules": modules, "failed": failed,
                "duration_ms": int((time.monotonic() - started) * 1000)}


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


def import_pyplot():
    """matplotlib.pyplot, imported without the property tables matplotlib renders into docstrings
    as it defines each Artist class (`set()` of every subclass, the `%(X:kwdoc)s` fields): that
    parses every setter's docstring, a tenth of the driver's start-up CPU. Those docstrings point
    to matplotlib.artist.kwdoc instead, which still gives the table."""
    import matplotlib.artist as artist
    full_kwdoc = artist.kwdoc
    artist.kwdoc = lambda _artist: "Properties: see matplotlib.artist.kwdoc(<class>)."
    try:
        import matplotlib.pyplot as pyplot
    finally:
        artist.kwdoc = full_kwdoc
    return pyplot


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
        pyplot = import_pyplot()
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
    global SUBREAPER
    SUBREAPER = become_subreaper()
    channel = Channel()
    diagnostics = os.dup(2)  # the original stderr, for the driver's own failures
    # Start-up allocates hundreds of thousands of objects and frees few: the cyclic collector would
    # scan them again and again (~15 % of the start's CPU). Frozen afterwards, they are never
    # scanned again (later full collections are cheaper too).
    gc.disable()
    session = Session(import_libraries())
    session.channel = channel
    checkpoints = Checkpoints(session.shell)
    gc.freeze()
    gc.enable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    session.prepare()  # from here on, stray output cannot reach the protocol stream
    channel.send({"type": "ready", "pid": os.getpid()})

    while True:
        request_id = None
        try:
            request = channel.receive()
            if request is None:
                return 0
            request_id = request.get("id")
            kind = request.get("type")
            if kind == "exec":
                response = session.execute(request)
            elif kind == "checkpoint":
                response = checkpoints.checkpoint(request)
            elif kind == "restore":
                response = checkpoints.restore(request)
            else:
                raise ValueError(f"unknown request type {kind!r}")
        except (ValueError, TypeError) as exc:
            response = {"type": "error", "id": request_id, "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a driver bug: report it, keep serving
            os.write(diagnostics, traceback.format_exc().encode("utf-8", "replace"))
            response = {"type": "error", "id": request_id, "message": f"driver error: {exc!r}"}
        channel.send(response)
        try:
            session.prepare()
        except Exception:  # noqa: BLE001 - the next execute() tries again and reports it
            os.write(diagnostics, traceback.format_exc().encode("utf-8", "replace"))


if __name__ == "__main__":
    sys.exit(main())
