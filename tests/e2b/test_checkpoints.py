"""An E2B sandbox's state across a checkpoint: on a server whose sessions go idle after two seconds,
the session is checkpointed and dropped, and the next run_code restores it into another container. The
Python variables and the JavaScript context's globals are both there again."""

from __future__ import annotations

import os
import time

import pytest
from e2b_code_interpreter import Sandbox

from conftest import point_sdks_at, serve

IDLE_SECS = 2


@pytest.fixture(scope="module")
def idle_server(server):
    """A second server whose sandbox sessions expire after IDLE_SECS; the SDKs point at it meanwhile."""
    saved = {k: os.environ[k] for k in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY")}
    for url in serve("idle", ASSISTD_SANDBOX_IDLE_TIMEOUT=str(IDLE_SECS), ASSISTD_SANDBOX_CHECKPOINT_SECS="0"):
        point_sdks_at(url)
        try:
            yield url
        finally:
            os.environ.update(saved)


def same_container(sbx: Sandbox) -> bool:
    """Whether the session still runs where mark() ran: /dev/shm is the container's own (no checkpoint keeps it)."""
    return sbx.run_code("import os\nos.path.exists('/dev/shm/e2b-test-mark')").text == "True"


def test_javascript_and_python_state_survive_a_checkpoint_into_another_container(idle_server):
    sbx = Sandbox.create(timeout=120)
    try:
        assert sbx.run_code("x = 41").error is None
        for cell in ["let n = 41\nconst o = {a: [1, 2]}\nvar word = 'hi'",
                     "function inc(a) { return a + 1 }\nclass Point { constructor(x) { this.x = x } }",
                     "globalThis.m = new Map([[1, 'one']])\nlet withFn = {f: () => 1}"]:
            assert sbx.run_code(cell, language="js").error is None
        assert sbx.run_code("open('/dev/shm/e2b-test-mark', 'w').close()").error is None
        assert same_container(sbx)

        # Idle: the session is checkpointed and its container removed; the next cell restores it.
        time.sleep(IDLE_SECS * 3)
        assert not same_container(sbx), "the idle session was not checkpointed"

        assert sbx.run_code("x + 1").text == "42"
        assert sbx.run_code("inc(n)", language="js").text == "42"
        assert sbx.run_code("o.a.length + word.length + new Point(3).x", language="js").text == "7"
        assert sbx.run_code("m.get(1)", language="js").text == "'one'"
        # What v8 cannot copy (an object holding a function) is gone; the rest can be used as before.
        assert sbx.run_code("typeof withFn", language="js").text == "'undefined'"
        assert sbx.run_code("n += 1", language="js").text == "42"
        assert sbx.run_code("o = 1", language="js").error.name == "TypeError"
    finally:
        sbx.kill()
