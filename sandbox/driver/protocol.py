"""The protocol channel: JSON lines over the driver's original stdin and stdout."""

import json
import os


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
