"""Start-up and the request loop."""

import gc
import os
import signal
import traceback

from . import processes
from .checkpoint import Checkpoints
from .libraries import Prewarm, prepare_matplotlib
from .protocol import Channel
from .session import Session


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
    prepare_matplotlib()
    session = Session()
    session.channel = channel
    checkpoints = Checkpoints(session.shell, session.js)
    gc.freeze()
    gc.enable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    session.prepare()  # from here on, stray output cannot reach the protocol stream
    channel.send({"type": "ready", "pid": os.getpid()})
    prewarm = Prewarm()
    prewarm.start()

    while True:
        request_id = None
        try:
            request = channel.receive()
            prewarm.claim()
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
