"""Start-up and the request loop."""

import gc
import os
import shutil
import signal
import traceback

from . import processes
from .checkpoint import Checkpoints
from .protocol import Channel
from .session import Session

MPL_CACHE_SEED = "/opt/assistd/mpl-cache"
CJK_FONT = "WenQuanYi Micro Hei"


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
    processes.SUBREAPER = processes.become_subreaper()
    channel = Channel()
    diagnostics = os.dup(2)  # the original stderr, for the driver's own failures
    # Start-up allocates hundreds of thousands of objects and frees few: the cyclic collector would
    # scan them again and again (~15 % of the start's CPU). Frozen afterwards, they are never
    # scanned again (later full collections are cheaper too).
    gc.disable()
    session = Session(import_libraries())
    session.channel = channel
    checkpoints = Checkpoints(session.shell, session.js)
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
