"""Warm-thread code runs through the replica holding the thread's session against the one that does not.

Two assistd processes on one Postgres, the scripted upstream of the SDK tests (zero latency). Each measured
run is a streamed run whose model asks for `print(1)` and then answers: the time from the POST to the
stream's `done`. Threads are made warm on replica A; runs then alternate between A (local) and B (relayed
through Postgres to A), so both see the same machine state. Prints p50/p99 of each and the p50 difference
against the goal (B - A <= 5 ms at p50). Exit status 3 when the goal is missed.

With BENCH_HOPS=1 the replicas also log each hop of a relayed run (target `assistd::relay`, JSON), and the
p50 of each hop is printed: queued on B -> woken on A -> claimed -> first batch published -> delivered on B,
and the last batch (the run's `done`) published -> delivered. The logging itself costs a little.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))

import assistd_process  # noqa: E402
from upstream import Upstream  # noqa: E402

KEY = "sk-bench-replicas"
GOAL_MS = 5.0


def start(database_url: str, upstream: Upstream, work: Path, name: str, hops: bool):
    env = {
        "DATABASE_URL": database_url,
        "ASSISTD_API_KEYS": KEY,
        "ASSISTD_DATA_DIR": str(work / "data"),
        "ASSISTD_UPSTREAM_BASE_URL": upstream.base_url,
        "ASSISTD_SANDBOX_INSTANCE": f"bench-replicas-{name}-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "1",
        "ASSISTD_SANDBOX_POOL_MAX": "1",
        "RUST_LOG": "warn,assistd::relay=debug" if hops else "warn",
        "ASSISTD_LOG_FORMAT": "json" if hops else "text",
    }
    return assistd_process.start(env, work / f"server-{name}.log")


def hop_events(log: Path) -> list[dict]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("target") == "assistd::relay" and "run_id" in event:
            ts = event["timestamp"]  # 2026-12-01T11:08:56.123456Z
            seconds = ts[ts.index("T") + 1:].rstrip("Z").split(":")
            event["t"] = (int(seconds[0]) * 3600 + int(seconds[1]) * 60 + float(seconds[2])) * 1000
            events.append(event)
    return events


def hop_figures(logs: list[Path]) -> list[tuple[str, float]]:
    """p50 in ms of each hop of the relayed runs found in the replicas' logs."""
    runs: dict[str, dict[str, list[float]]] = {}
    for log in logs:
        for e in hop_events(log):
            runs.setdefault(e["run_id"], {}).setdefault(e["message"], []).append(e["t"])
    hops: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        hops.setdefault(name, []).append(value)

    for marks in runs.values():
        try:
            queued, woken = marks["relay: queued"][0], marks["relay: woken"][0]
            claimed = marks["relay: claimed"][0]
            published, delivered = marks["relay: published"], marks["relay: delivered"]
        except KeyError:
            continue
        add("queued on B -> woken on A", woken - queued)
        add("woken -> claimed", claimed - woken)
        add("claimed -> first batch published", published[0] - claimed)
        add("first batch published -> delivered on B", delivered[0] - published[0])
        add("last batch (done) published -> delivered on B", delivered[-1] - published[-1])
        add("queued on B -> done delivered on B", delivered[-1] - queued)
        add("batches (statements) per run", len(published))
    return [(name, statistics.median(values)) for name, values in hops.items()]


def streamed_run(http: httpx.Client, script, assistant_id: str, thread_id: str) -> float:
    script.push_tool_call("code_interpreter", {"code": "print(1)"})
    script.push_text("1")
    started = time.perf_counter()
    with http.stream("POST", f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}) as r:
        r.raise_for_status()
        body = r.read().decode()
    elapsed = (time.perf_counter() - started) * 1000
    if "thread.run.completed" not in body or "event: done" not in body:
        raise SystemExit(f"a run did not complete: {body[-500:]}")
    return elapsed


def main() -> int:
    runs = int(os.environ.get("BENCH_RUNS", "100"))
    hops = os.environ.get("BENCH_HOPS") == "1"
    threads = int(os.environ.get("BENCH_THREADS", "4"))
    database_url = os.environ["DATABASE_URL"]
    work = Path(os.environ.get("BENCH_WORK", "/tmp")) / f"bench-replicas-{uuid.uuid4().hex[:6]}"
    upstream = Upstream().start()
    procs = []
    try:
        for name in ("a", "b"):
            procs.append(start(database_url, upstream, work, name, hops))
        headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
        a = httpx.Client(base_url=procs[0][1] + "/v1", headers=headers, timeout=60)
        b = httpx.Client(base_url=procs[1][1] + "/v1", headers=headers, timeout=60)
        script = upstream.script()
        assistant = a.post("/assistants", json={"model": script.model,
                                                "tools": [{"type": "code_interpreter"}]}).json()["id"]
        ids = [a.post("/threads", json={}).json()["id"] for _ in range(threads)]
        for t in ids:  # warm: each thread's session now lives on A
            streamed_run(a, script, assistant, t)
            streamed_run(b, script, assistant, t)
        local, remote = [], []
        for i in range(runs):
            t = ids[i % threads]
            local.append(streamed_run(a, script, assistant, t))
            remote.append(streamed_run(b, script, assistant, t))
    finally:
        for proc, _ in procs:
            assistd_process.stop(proc)
        upstream.stop()

    def figures(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=100)
        return f"p50 {statistics.median(xs):7.2f} ms   p99 {q[98]:7.2f} ms"

    extra = statistics.median(remote) - statistics.median(local)
    print(f"bench-replicas: {runs} streamed print(1) runs each, {threads} warm threads held by replica A")
    print(f"  through A (holds the session)     {figures(local)}")
    print(f"  through B (relayed through A)     {figures(remote)}")
    print(f"  B - A at p50: {extra:+.2f} ms   ratio {statistics.median(remote) / statistics.median(local):.2f}x"
          f"   goal <= {GOAL_MS:.0f} ms: {'met' if extra <= GOAL_MS else 'MISSED'}")
    if hops:
        print("  hops of the relayed runs (p50):")
        for name, value in hop_figures([work / "server-a.log", work / "server-b.log"]):
            print(f"    {name:48} {value:8.2f}")
    return 0 if extra <= GOAL_MS else 3


if __name__ == "__main__":
    sys.exit(main())
