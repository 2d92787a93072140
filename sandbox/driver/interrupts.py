"""Interrupts: the timeout (SIGALRM via setitimer) and SIGINT from the host."""

import _signal
import signal

# After the timeout fires, keep interrupting this often in case user code swallowed the exception.
TIMEOUT_REPEAT_S = 0.5


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
