"""The heavy libraries models import (numpy, pandas, matplotlib.pyplot): imported ahead of the
first cell while a sandbox waits unclaimed, and set up for the driver whenever they are imported.

The driver is `ready` before they are imported: a sandbox waiting in the warm pool imports them
in the background (`Prewarm`), so a cell run there finds them loaded, as before; a sandbox
launched for a session that is already waiting (a pool miss, a burst of new threads) skips what
has not started yet, and the session's cells import what they use. Those imports are about half
of a launch's CPU, which decides how many sandboxes a host can start per second.

Whoever imports matplotlib.pyplot first (the prewarm, a cell, a restored checkpoint), the driver's
hooks run once it is loaded (`on_pyplot`): figures are captured on show() and at a cell's end.
"""

import gc
import importlib.abc
import importlib.util
import os
import shutil
import sys
import threading

MPL_CACHE_SEED = "/opt/assistd/mpl-cache"
CJK_FONT = "WenQuanYi Micro Hei"
PYPLOT = "matplotlib.pyplot"
# What a waiting sandbox imports, in order; each is one step the prewarm may stop after.
PREWARMED = ("numpy", "pandas", PYPLOT)


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


def prepare_matplotlib():
    """Before anything imports matplotlib: its font cache, and the Agg backend (no display here;
    the environment carries it to the processes cells start, as a notebook's would)."""
    seed_matplotlib_cache()
    os.environ.setdefault("MPLBACKEND", "agg")


class PyplotHook(importlib.abc.MetaPathFinder):
    """Runs `callbacks` once matplotlib.pyplot is loaded, whoever imports it. It is imported
    without the property tables matplotlib renders into docstrings as it defines each Artist
    class (`set()` of every subclass, the `%(X:kwdoc)s` fields): that parses every setter's
    docstring, a tenth of pyplot's import. Those docstrings point to matplotlib.artist.kwdoc
    instead, which still gives the table."""

    def __init__(self):
        self.callbacks = []

    def find_spec(self, fullname, path, target=None):
        if fullname != PYPLOT:
            return None
        sys.meta_path.remove(self)  # once: find the real spec without this finder
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, hook = spec.loader, self

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                import matplotlib.artist as artist
                full_kwdoc = artist.kwdoc
                artist.kwdoc = lambda _artist: "Properties: see matplotlib.artist.kwdoc(<class>)."
                try:
                    loader.exec_module(module)
                finally:
                    artist.kwdoc = full_kwdoc
                spec.loader = module.__loader__ = loader
                hook.loaded(module)

        spec.loader = Loader()
        return spec

    def loaded(self, pyplot):
        use_cjk_fallback()
        for callback in self.callbacks:
            callback(pyplot)


def use_cjk_fallback():
    """Fall back to a CJK font for glyphs DejaVu lacks: matplotlib >= 3.6 falls back per glyph
    along the font.family list (not along font.sans-serif)."""
    import matplotlib
    from matplotlib import font_manager
    if any(font.name == CJK_FONT for font in font_manager.fontManager.ttflist):
        matplotlib.rcParams["font.family"] = ["sans-serif", CJK_FONT]


def on_pyplot(callback):
    """Calls callback(pyplot) once matplotlib.pyplot is loaded (now, if it already is)."""
    if PYPLOT in sys.modules:
        callback(sys.modules[PYPLOT])
        return
    hook = next((f for f in sys.meta_path if isinstance(f, PyplotHook)), None)
    if hook is None:
        hook = PyplotHook()
        sys.meta_path.insert(0, hook)
    hook.callbacks.append(callback)


def idle_cpu_ticks():
    """The host's idle and total CPU time so far, in ticks (/proc/stat is the host's, not the
    container's), or None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)


class Prewarm:
    """Imports PREWARMED in a background thread once the driver is ready, unless a request comes
    first: a request within DELAY_S means a session was waiting for this sandbox. While the host
    is busy (less than half a core idle: a burst of launches, most likely, whose sandboxes are
    taken as soon as they are ready) it waits, up to MAX_WAIT_S, so the burst's launches stay
    cheap. A request during the prewarm stops it after the import under way (an import cannot be
    stopped halfway; a cell importing the same module waits for it, as it would have to import
    it anyway)."""

    DELAY_S = 0.25
    MAX_WAIT_S = 10.0
    IDLE_CORES = 0.5

    def __init__(self, modules=PREWARMED):
        self.modules = modules
        self.claimed = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="assistd-prewarm", daemon=True)

    def start(self):
        self.thread.start()

    def claim(self):
        self.claimed.set()

    def _host_quiet(self):
        """Waits until the host has IDLE_CORES idle (or MAX_WAIT_S passed); False when claimed."""
        cores = os.cpu_count() or 1
        waited = 0.0
        before = idle_cpu_ticks()
        while True:
            if self.claimed.wait(self.DELAY_S):
                return False
            waited += self.DELAY_S
            after = idle_cpu_ticks()
            if before is None or after is None or waited >= self.MAX_WAIT_S:
                return True
            total = after[1] - before[1]
            if total > 0 and (after[0] - before[0]) / total * cores >= self.IDLE_CORES:
                return True
            before = after

    def _run(self):
        try:
            if not self._host_quiet():
                return
            # As at the start: no cyclic collection over the imports' objects, which are then
            # frozen (later full collections skip them) unless a cell's objects came meanwhile.
            gc.disable()
            try:
                for name in self.modules:
                    if self.claimed.is_set():
                        break
                    try:
                        importlib.import_module(name)
                    except Exception:  # noqa: BLE001 - a missing or broken library: the cell says so
                        pass
                if not self.claimed.is_set():
                    gc.freeze()
            finally:
                gc.enable()
        finally:
            self.done.set()
