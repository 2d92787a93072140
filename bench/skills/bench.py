"""A new container with a 20 MB skill attached against one without, in the same run (see run.sh)."""

from __future__ import annotations

import io
import os
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import assistd_process  # noqa: E402
import httpx  # noqa: E402
from openai import OpenAI  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "20"))
PAUSE = float(os.environ.get("BENCH_PAUSE", "0.5"))
POOL = 3
IMAGE = os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest")
KEY = "sk-bench-skills"
GOAL_MS = 50


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(name, ms):
    print(f"{name:<52} p50 {pct(ms, 50):8.2f} ms   p99 {pct(ms, 99):8.2f} ms   (n={len(ms)})", flush=True)


def big_skill() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("big-data/SKILL.md", "---\nname: big-data\ndescription: A 20 MB reference table.\n---\nRead data.bin.\n")
        z.writestr("big-data/data.bin", os.urandom(20 * 1024 * 1024))
    return buf.getvalue()


def main() -> int:
    work = Path(os.environ["BENCH_WORK"])
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "ASSISTD_API_KEYS": f"bench:{KEY}",
        "ASSISTD_DATA_DIR": str(work / "data"),
        "ASSISTD_UPSTREAM_BASE_URL": "http://127.0.0.1:9",
        "ASSISTD_UPSTREAM_API_KEY": "unused",
        "ASSISTD_SANDBOX_IMAGE": IMAGE,
        "ASSISTD_SANDBOX_INSTANCE": f"bench-skills-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": str(POOL),
        "ASSISTD_SANDBOX_POOL_MAX": str(POOL),
        "RUST_LOG": "warn",
    }
    proc, url = assistd_process.start(env, work / "server.log")
    try:
        client = OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
        skill = client.skills.create(files=("big-data.zip", big_skill(), "application/zip"))
        skills = [{"type": "skill_reference", "skill_id": skill.id}]

        def one(with_skill: bool) -> float:
            started = time.perf_counter()
            c = client.containers.create(name="bench", **({"skills": skills} if with_skill else {}))
            # The first use: the session is open (with the skill, since creation).
            client.containers.files.create(c.id, file=("x.txt", b"x"))
            took = time.perf_counter() - started
            client.containers.delete(c.id)
            return took * 1000

        def pool_full():
            # Every sample takes a warm sandbox: a launch inside the timing would swamp the figure.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                metrics = httpx.get(url + "/metrics").text
                pooled = [line for line in metrics.splitlines() if line.startswith("assistd_sandbox_sessions_pooled")]
                if pooled and float(pooled[0].split()[-1]) >= POOL:
                    return
                time.sleep(0.2)

        one(True)  # the host's bundle cache, filled from the blob store
        plain, skilled = [], []
        for i in range(SAMPLES):
            for with_skill in ((False, True) if i % 2 else (True, False)):
                pool_full()
                time.sleep(PAUSE)
                (skilled if with_skill else plain).append(one(with_skill))
        report("new container + first upload, no skill", plain)
        report("new container + first upload, 20 MB skill", skilled)
        diff = pct(skilled, 50) - pct(plain, 50)
        missed = diff > GOAL_MS
        print(f"{'p50 difference':<52} {diff:8.2f} ms   goal <= {GOAL_MS} ms: {'MISSED' if missed else 'met'}",
              flush=True)
        return 1 if missed else 0
    finally:
        assistd_process.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
