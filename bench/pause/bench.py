"""Pause and resume of a sandbox with a 100 MB workspace through E2B's own Python SDK (see run.sh).

Each sample: pause (the checkpoint of the whole box is in the blob store and the container is being freed when
the call returns), then connect (the sandbox's session restored from that checkpoint into a warm container
before the call returns), then the first command in it. The pool is let refill before each resume, so the
resume measures the restore, not a cold container launch."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import assistd_process  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "10"))
WORKSPACE_MB = int(os.environ.get("BENCH_WORKSPACE_MB", "100"))
WORKSPACE = os.environ.get("BENCH_WORKSPACE", "/home/user/workspace")
IMAGE = os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest")
KEY = "e2b_0123456789abcdef"
GOAL_MS = 1000


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(name, seconds, goal_ms=None):
    ms = [s * 1000 for s in seconds]
    line = f"{name:<52} p50 {pct(ms, 50):8.1f} ms   p99 {pct(ms, 99):8.1f} ms   (n={len(ms)})"
    missed = goal_ms is not None and pct(ms, 50) > goal_ms
    if goal_ms is not None:
        line += f"   goal p50 <= {goal_ms} ms: {'MISSED' if missed else 'met'}"
    print(line, flush=True)
    return missed


def pooled(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("assistd_sandbox_sessions_pooled "):
            return float(line.split()[1])
    return 0.0


def main() -> int:
    work = Path(os.environ["BENCH_WORK"])
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "ASSISTD_API_KEYS": f"bench:{KEY}",
        "ASSISTD_DATA_DIR": str(work / "data"),
        "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused",
        "ASSISTD_SANDBOX_IMAGE": IMAGE,
        "ASSISTD_SANDBOX_INSTANCE": f"bench-pause-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "2",
        "RUST_LOG": "warn",
    }
    proc, url = assistd_process.start(env, work / "server.log")
    try:
        os.environ.update(E2B_API_URL=url + "/e2b", E2B_SANDBOX_URL=url + "/e2b/sandbox", E2B_API_KEY=KEY)
        from e2b_code_interpreter import Sandbox

        sbx = Sandbox.create(timeout=3600)
        fill = (f"mkdir -p {WORKSPACE} && cd {WORKSPACE} && for i in $(seq 1 {WORKSPACE_MB}); do "
                f"head -c 1048576 /dev/urandom > blob-$i.bin; done && du -sm {WORKSPACE} | cut -f1")
        size = sbx.commands.run(fill, timeout=300).stdout.strip()
        sbx.run_code("state = {'n': 41}")
        print(f"workspace: {size} MB of random bytes in {WORKSPACE_MB} files under {WORKSPACE}", flush=True)

        baseline = []
        for _ in range(max(3, SAMPLES // 2)):
            started = time.perf_counter()
            sbx.commands.run(f"tar -cf - -C {WORKSPACE} . | wc -c", timeout=120)
            baseline.append(time.perf_counter() - started)

        pauses, resumes, firsts = [], [], []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            assert Sandbox.pause(sbx.sandbox_id) is True
            pauses.append(time.perf_counter() - started)
            deadline = time.monotonic() + 60
            while pooled(url) < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            started = time.perf_counter()
            sbx = Sandbox.connect(sbx.sandbox_id, timeout=3600)
            resumes.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert sbx.run_code("state['n'] + 1").text == "42"
            firsts.append(time.perf_counter() - started)
        count = sbx.commands.run(f"ls {WORKSPACE} | wc -l").stdout.strip()
        assert int(count) == WORKSPACE_MB, count

        report(f"baseline: tar of the {WORKSPACE_MB} MB workspace in the sandbox", baseline)
        missed = report(f"pause ({WORKSPACE_MB} MB workspace)", pauses, GOAL_MS)
        missed |= report(f"resume: connect ({WORKSPACE_MB} MB workspace restored)", resumes, GOAL_MS)
        report("first run_code after resume (variable restored)", firsts)
        print(f"pause+resume mean {statistics.mean(p + r for p, r in zip(pauses, resumes)) * 1000:.0f} ms",
              flush=True)
        sbx.kill()
        return 1 if missed else 0
    finally:
        assistd_process.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
