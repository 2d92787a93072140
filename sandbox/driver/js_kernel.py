"""A stateful JavaScript context (the E2B surface's `language: "js"`).

One long-lived `node` per session runs js_kernel.js, started on the first JavaScript cell (see
there for how cells run). console.log writes to the inherited fd 1/2, so it is captured (and
streamed) like print. Requests go to node's fd ASSISTD_JS_IN, answers come from ASSISTD_JS_OUT,
one JSON line each."""

import json
import os
import subprocess

JS_KERNEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js_kernel.js")


class JsKernel:
    """The session's Node.js process, started on first use (or ahead of it, see spawn) and
    again after it died."""

    def __init__(self):
        self.proc = None
        self.requests = None
        self.answers = None
        self.buffer = b""
        self.ready = False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return {str(self.proc.pid)} if self.running() else set()

    def spawn(self):
        """Starts node without waiting for it: the first request waits for its ready line."""
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        env = dict(os.environ, ASSISTD_JS_IN=str(req_r), ASSISTD_JS_OUT=str(ans_w),
                   HOME=os.environ.get("HOME", "/tmp"))
        try:
            self.proc = subprocess.Popen(["node", JS_KERNEL], stdin=subprocess.DEVNULL,
                                         pass_fds=(req_r, ans_w), env=env, cwd=os.getcwd())
        except BaseException:
            for fd in (req_w, ans_r):
                os.close(fd)
            raise
        finally:
            os.close(req_r)
            os.close(ans_w)
        self.requests, self.answers, self.buffer, self.ready = req_w, ans_r, b"", False

    def _started(self):
        if not self.running():
            self.stop()
            self.spawn()
        if not self.ready:
            if not self._answer().get("ready"):
                self.stop()
                raise RuntimeError("the JavaScript process did not start")
            self.ready = True

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
        self.ready = False

    def _answer(self):
        while b"\n" not in self.buffer:
            chunk = os.read(self.answers, 1 << 20)
            if not chunk:
                self.stop()
                raise RuntimeError("the JavaScript process exited; its variables are gone")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def _request(self, request):
        data = (json.dumps(request) + "\n").encode()
        while data:
            data = data[os.write(self.requests, data):]
        return self._answer()

    def run_cell(self, code, outputs):
        try:
            self._started()
            answer = self._request({"code": code})
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

    def checkpoint(self):
        """The context's globals as js_kernel.js saves them ({"values", "kept", "skipped"}),
        None when no context is running (then there is nothing to keep)."""
        if not self.running():
            return None
        try:
            self._started()
            answer = self._request({"op": "checkpoint"})
        except BaseException:
            self.stop()
            raise
        if not answer.get("ok"):
            raise RuntimeError(answer.get("message") or "the JavaScript context could not be saved")
        return answer

    def restore(self, values):
        """Defines the saved globals in the context (started for them); the kernel's answer
        ({"restored", "failed"})."""
        try:
            self._started()
            answer = self._request({"op": "restore", "values": values})
        except BaseException:
            self.stop()
            raise
        if not answer.get("ok"):
            raise RuntimeError(answer.get("message") or "the JavaScript context could not be restored")
        return answer
