"""Streaming an execution's output as it is written (exec with "stream": true)."""

import base64
import json
import os
import threading
import time


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
    files (every write from any process lands there) and sends the new bytes. A line still
    being written (print writes its text and its newline apart) waits up to HOLD_S for its
    end, so a client reading lines gets whole ones. Bundles are sent by the main thread,
    through the same lock, in order with the text before them."""

    POLL_S = 0.02
    HOLD_S = 0.2

    def __init__(self, channel, capture, request_id, max_output):
        self.channel = channel
        self.capture = capture
        self.id = request_id
        self.budget = max_output
        self.sent = {"stdout": 0, "stderr": 0}
        self.held = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        while not self.stopped.wait(self.POLL_S):
            self.pump(whole_lines=True)

    def pump(self, whole_lines=False):
        with self.lock:
            for name, fd in self.capture.files.items():
                size = os.fstat(fd).st_size
                offset = self.sent[name]
                if size <= offset or self.budget <= 0:
                    continue
                take = min(size - offset, self.budget, 1 << 20)
                data = os.pread(fd, take, offset)
                text, used = complete_utf8(data)
                if whole_lines:
                    used = self._whole_lines(name, data, used)
                    text = data[:used].decode("utf-8", "replace")
                if not used:
                    continue
                self.sent[name] = offset + used
                self.budget -= used
                self.channel.send({"type": "output", "id": self.id, "name": name, "text": text})

    def _whole_lines(self, name, data, used):
        """How much of data to send now: up to its last newline, or all of it once its
        unfinished line has waited HOLD_S (a progress bar redrawing with \\r)."""
        end = data.rfind(b"\n", 0, used) + 1
        if end == used:
            self.held.pop(name, None)
            return used
        now = time.monotonic()
        since = self.held.setdefault(name, now)
        if now - since >= self.HOLD_S:
            self.held.pop(name, None)
            return used
        if end:
            self.held[name] = now
        return end

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
