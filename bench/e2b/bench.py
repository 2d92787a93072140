"""The E2B surface's latencies through E2B's own Python SDK (see run.sh)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import assistd_process  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "50"))
# Sandboxes whose first cells are timed, each taken from a full pool.
FIRST_SAMPLES = int(os.environ.get("BENCH_FIRST_SAMPLES", "10"))
POOL_SIZE = 2
IMAGE = os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest")
KEY = "e2b_0123456789abcdef"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(name, seconds, goal_ms=None):
    ms = [s * 1000 for s in seconds]
    line = f"{name:<44} p50 {pct(ms, 50):8.2f} ms   p99 {pct(ms, 99):8.2f} ms   (n={len(ms)})"
    missed = goal_ms is not None and pct(ms, 50) > goal_ms
    if goal_ms is not None:
        line += f"   goal p50 <= {goal_ms} ms: {'MISSED' if missed else 'met'}"
    print(line, flush=True)
    return missed


def pooled(url):
    """How many warm sandboxes the pool holds, from the server's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("assistd_sandbox_sessions_pooled"):
                return int(float(line.split()[-1]))
    return 0


def wait_for_full_pool(url, timeout=120):
    deadline = time.monotonic() + timeout
    while pooled(url) < POOL_SIZE:
        if time.monotonic() > deadline:
            raise SystemExit(f"the pool did not fill up to {POOL_SIZE} within {timeout} s")
        time.sleep(0.1)
    time.sleep(0.5)  # the last one's start-up work settles


def first_cells(url, Sandbox, first_language):
    """For FIRST_SAMPLES sandboxes, each from a full pool: the first run_code (in `first_language`),
    the next one, and the first JavaScript cell after them (after a pause, as an app's next call)."""
    firsts, seconds, js_firsts = [], [], []
    for _ in range(FIRST_SAMPLES):
        wait_for_full_pool(url)
        sbx = Sandbox.create()
        try:
            code = "1 + 1"
            started = time.perf_counter()
            assert sbx.run_code(code, language=first_language).text == "2"
            firsts.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert sbx.run_code(code, language=first_language).text == "2"
            seconds.append(time.perf_counter() - started)
            if first_language == "python":
                time.sleep(0.5)
                started = time.perf_counter()
                assert sbx.run_code("1 + 1", language="js").text == "2"
                js_firsts.append(time.perf_counter() - started)
        finally:
            sbx.kill()
    return firsts, seconds, js_firsts


def main() -> int:
    work = Path(os.environ["BENCH_WORK"])
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "ASSISTD_API_KEYS": f"bench:{KEY}",
        "ASSISTD_DATA_DIR": str(work / "data"),
        "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused",
        "ASSISTD_SANDBOX_IMAGE": IMAGE,
        "ASSISTD_SANDBOX_INSTANCE": f"bench-e2b-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": str(POOL_SIZE),
        "RUST_LOG": "warn",
    }
    proc, url = assistd_process.start(env, work / "server.log")
    try:
        os.environ.update(E2B_API_URL=url + "/e2b", E2B_SANDBOX_URL=url + "/e2b/sandbox", E2B_API_KEY=KEY)
        from e2b_code_interpreter import Sandbox

        missed = False
        Sandbox.create().kill()  # the client's connection pool, warm
        creates = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            sbx = Sandbox.create()
            creates.append(time.perf_counter() - started)
            sbx.kill()
        missed |= report("Sandbox.create() (a container row; pool warm)", creates, 20)

        # Right after the start, the pool is still filling: a first run_code then waits for a launch.
        sbx = Sandbox.create()
        started = time.perf_counter()
        sbx.run_code("x = 1")
        first = time.perf_counter() - started
        report(f"first run_code, pool filling ({pooled(url)} warm now)", [first])
        sbx.kill()

        firsts, seconds, js_firsts = first_cells(url, Sandbox, "python")
        report("first run_code of a sandbox (pool hit)", firsts)
        report("its second run_code", seconds)
        report("its first JS cell, 0.5 s later", js_firsts)
        firsts, seconds, _ = first_cells(url, Sandbox, "js")
        report("first run_code of a sandbox in JS (pool hit)", firsts)
        report("its second JS cell", seconds)

        wait_for_full_pool(url)
        sbx = Sandbox.create()
        sbx.run_code("x = 1")
        runs = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            assert sbx.run_code("x+1").text == "2"
            runs.append(time.perf_counter() - started)
        missed |= report('run_code("x+1"), warm', runs, 5)
        sbx.run_code("const n = 1", language="js")
        js = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            assert sbx.run_code("n + 1", language="js").text == "2"
            js.append(time.perf_counter() - started)
        missed |= report('run_code("n + 1", language="js"), warm', js, 10)
        sbx.kill()

        cold = []
        for _ in range(min(SAMPLES, 5)):
            started = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "python3", "-c", "pass"],
                           check=True, capture_output=True)
            cold.append(time.perf_counter() - started)
        report("baseline: cold docker run python3 -c pass", cold)
        print("anchor: E2B publishes ~150 ms for a sandbox start")
        return 3 if missed else 0
    finally:
        assistd_process.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
