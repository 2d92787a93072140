"""The E2B surface's latencies through E2B's own Python SDK (see run.sh)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import assistd_process  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "50"))
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
        "ASSISTD_SANDBOX_POOL_SIZE": "2",
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

        sbx = Sandbox.create()
        started = time.perf_counter()
        sbx.run_code("x = 1")
        first = time.perf_counter() - started
        report("first run_code (session from the warm pool)", [first])
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
