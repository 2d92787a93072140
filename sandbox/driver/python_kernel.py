"""The IPython shell the Python cells run in."""

import contextlib
import os
import subprocess
import sys
import tempfile
import types
import warnings

from .outputs import Outputs


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
