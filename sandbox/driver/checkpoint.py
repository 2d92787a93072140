"""Checkpoints: the user namespace as far as it pickles."""

import contextlib
import importlib
import io
import os
import pickle
import re
import time
import types


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
    removes it once loaded (or not).

    The session's JavaScript context, when one is running, travels in the same pickle (see
    js_kernel.js for what of it is kept): the replies then carry a "javascript" object with its
    names, {"kept", "skipped"} and {"restored", "failed"}, apart from the Python ones."""

    def __init__(self, shell, js):
        self.shell = shell
        self.js = js

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
        javascript = self.checkpoint_js()
        if javascript is not None:
            state["js"] = javascript
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # Straight to `path`: the host reads it only after this answer, and removes it either way.
        try:
            with open(path, "wb") as out:
                pickle.dump(state, out, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        reply = {"type": "checkpointed", "id": request.get("id"), "path": path,
                 "size": os.path.getsize(path), "kept": kept, "modules": modules,
                 "skipped": skipped, "duration_ms": int((time.monotonic() - started) * 1000)}
        if javascript is not None:
            reply["javascript"] = {"kept": javascript["kept"], "skipped": javascript["skipped"]}
        return reply

    def checkpoint_js(self):
        """The JavaScript context's part of the pickle, None without a running context."""
        try:
            saved = self.js.checkpoint()
        except Exception as exc:  # noqa: BLE001 - the Python namespace is still kept
            return {"values": {}, "kept": [],
                    "skipped": [{"name": "*", "type": "javascript", "reason": reason_text(exc)}]}
        if saved is None:
            return None
        return {"values": saved.get("values") or {}, "kept": saved.get("kept") or [],
                "skipped": saved.get("skipped") or []}

    def restore_js(self, javascript):
        """Puts the saved JavaScript globals back into a (new) context: {"restored", "failed"}."""
        failed = list(javascript.get("skipped") or [])
        values = javascript.get("values") or {}
        if not values:
            return {"restored": [], "failed": failed}
        try:
            answer = self.js.restore(values)
        except Exception as exc:  # noqa: BLE001
            return {"restored": [], "failed": failed + [
                {"name": name, "type": "", "reason": f"could not be loaded: {reason_text(exc)}"}
                for name in values]}
        return {"restored": answer.get("restored") or [],
                "failed": (answer.get("failed") or []) + failed}

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
        reply = {"type": "restored", "id": request.get("id"), "restored": restored,
                 "modules": modules, "failed": failed}
        if isinstance(state.get("js"), dict):
            reply["javascript"] = self.restore_js(state["js"])
        reply["duration_ms"] = int((time.monotonic() - started) * 1000)
        return reply
