"""Zero-latency OpenAI-compatible model for the load benchmark.

Serves tests/sdk/upstream.py's scripted upstream (every model answers its default text, streamed in
4-character chunks when the request asks for a stream) on 127.0.0.1 until killed, and prints
`PORT <n>` once it listens. Standard library only.
"""

import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "sdk"))

# The stdlib default listen backlog (5) drops SYNs when the server opens many connections at once.
ThreadingHTTPServer.request_queue_size = 1024

from upstream import Upstream  # noqa: E402


def main() -> None:
    up = Upstream().start()
    print(f"PORT {up.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    up.stop()


if __name__ == "__main__":
    main()
