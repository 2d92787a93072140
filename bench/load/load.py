"""Load generator for bench/load/run.sh: N virtual clients against one assistd for a fixed time.

Each virtual client creates its own assistant and a "chat" thread, then loops until the deadline,
picking one operation at a time by weight:

  create_assistant, retrieve_assistant, list_assistants, create_thread, retrieve_thread,
  create_message, list_messages   plain CRUD on its own objects
  stream_run                      a new thread with one user message (counted as create_thread),
                                  then POST /v1/threads/{id}/runs {"stream": true}, reading the SSE
                                  until `event: done`; it counts as an error unless
                                  thread.run.completed came first. One thread per run, since a
                                  thread holds one active run at a time.

The clients are split over several processes (asyncio + httpx each) so that the generator is not
limited to one core. While they run, the parent samples the server's VmRSS every second.
Prints a report and writes it as JSON to --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import ssl
import threading
import time
from collections import defaultdict

import httpx

WEIGHTS = {
    "create_assistant": 4,
    "retrieve_assistant": 14,
    "list_assistants": 10,
    "create_thread": 6,
    "retrieve_thread": 12,
    "create_message": 16,
    "list_messages": 16,
    "stream_run": 22,
}
MODEL = "bench-load"
HEADERS_BASE = {"OpenAI-Beta": "assistants=v2", "Content-Type": "application/json"}


class Stats:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []

    def ok(self, op: str, seconds: float) -> None:
        self.lat[op].append(seconds * 1000.0)

    def err(self, op: str, what: str) -> None:
        self.errors[op] += 1
        if len(self.samples) < 20:
            self.samples.append(f"{op}: {what}")


async def timed(stats: Stats, op: str, coro) -> object | None:
    t = time.perf_counter()
    try:
        result = await coro
    except Exception as e:  # noqa: BLE001 - every failure is an error of that operation
        stats.err(op, f"{type(e).__name__}: {e}"[:300])
        return None
    stats.ok(op, time.perf_counter() - t)
    return result


async def stream_run(http: httpx.AsyncClient, thread_id: str, assistant_id: str) -> None:
    events: list[str] = []
    async with http.stream("POST", f"/v1/threads/{thread_id}/runs",
                           json={"assistant_id": assistant_id, "stream": True}) as r:
        if r.status_code != 200:
            body = (await r.aread()).decode(errors="replace")
            raise RuntimeError(f"HTTP {r.status_code}: {body[:200]}")
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                events.append(line[7:].strip())
                if events[-1] == "done":
                    break
    if not events or events[-1] != "done":
        raise RuntimeError(f"stream ended without done after {events[-3:]}")
    if "thread.run.completed" not in events:
        raise RuntimeError(f"run did not complete: {[e for e in events if e.startswith('thread.run.')]}")


async def client(n: int, http: httpx.AsyncClient, deadline: float, stats: Stats) -> None:
    rnd = random.Random(n)
    ops, weights = zip(*WEIGHTS.items())

    async def call(op: str, coro) -> dict | None:
        r = await timed(stats, op, coro)
        if r is None:
            return None
        if r.status_code != 200:
            # timed() counted it as a success; move it to the errors.
            stats.lat[op].pop()
            stats.err(op, f"HTTP {r.status_code}: {r.text[:200]}")
            return None
        return r.json()

    assistant = await call("create_assistant", http.post("/v1/assistants", json={
        "model": MODEL, "name": f"load-{n}", "instructions": "You answer briefly.",
        "tools": [{"type": "code_interpreter"}], "metadata": {"bench": "load"}}))
    chat = await call("create_thread", http.post("/v1/threads", json={"metadata": {"client": str(n)}}))
    if assistant is None or chat is None:
        return
    assistants = [assistant["id"]]
    threads = [chat["id"]]
    i = 0
    while time.monotonic() < deadline:
        i += 1
        op = rnd.choices(ops, weights)[0]
        if op == "create_assistant":
            a = await call(op, http.post("/v1/assistants", json={
                "model": MODEL, "name": f"load-{n}-{i}", "tools": [{"type": "code_interpreter"}]}))
            if a:
                assistants = (assistants + [a["id"]])[-8:]
        elif op == "retrieve_assistant":
            await call(op, http.get(f"/v1/assistants/{rnd.choice(assistants)}"))
        elif op == "list_assistants":
            await call(op, http.get("/v1/assistants", params={"limit": 20}))
        elif op == "create_thread":
            t = await call(op, http.post("/v1/threads", json={
                "messages": [{"role": "user", "content": f"Hello from client {n}, step {i}."}]}))
            if t:
                threads = (threads + [t["id"]])[-8:]
        elif op == "retrieve_thread":
            await call(op, http.get(f"/v1/threads/{rnd.choice(threads)}"))
        elif op == "create_message":
            # Only the chat thread: it never has a run, so adding a message is always allowed.
            await call(op, http.post(f"/v1/threads/{threads[0]}/messages", json={
                "role": "user", "content": f"Message {i} from client {n}: how did revenue grow last quarter?"}))
        elif op == "list_messages":
            await call(op, http.get(f"/v1/threads/{threads[0]}/messages", params={"limit": 20}))
        elif op == "stream_run":
            t = await call("create_thread", http.post("/v1/threads", json={
                "messages": [{"role": "user", "content": f"Say hello to client {n} (run {i})."}]}))
            if t:
                await timed(stats, op, stream_run(http, t["id"], rnd.choice(assistants)))


async def worker_main(base: str, key: str, first: int, count: int, start_at: float, seconds: float) -> dict:
    stats = Stats()
    headers = dict(HEADERS_BASE, Authorization=f"Bearer {key}")
    # One small client (keep-alive pool of 2) per virtual client: httpx's pool costs grow with the
    # number of connections and waiters it holds, so a shared pool of hundreds of connections
    # would make the generator, not the server, the bottleneck.
    # (Plain HTTP; one shared SSL context spares each client loading the CA bundle.)
    ssl_ctx = ssl.create_default_context()
    https = [httpx.AsyncClient(base_url=base, headers=headers, timeout=httpx.Timeout(60.0, connect=30.0),
                               limits=httpx.Limits(max_connections=2, max_keepalive_connections=2), verify=ssl_ctx)
             for _ in range(count)]
    try:
        late = time.time() - start_at
        if late > 0:
            print(f"load.py: a worker started {late:.1f} s late", flush=True)
        else:
            await asyncio.sleep(-late)
        deadline = time.monotonic() + seconds
        t0 = time.monotonic()
        await asyncio.gather(*(client(first + i, https[i], deadline, stats) for i in range(count)))
        elapsed = time.monotonic() - t0
    finally:
        await asyncio.gather(*(h.aclose() for h in https), return_exceptions=True)
    return {"lat": dict(stats.lat), "errors": dict(stats.errors), "samples": stats.samples, "elapsed": elapsed}


def worker(args: tuple) -> dict:
    return asyncio.run(worker_main(*args))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    procs = max(1, min(a.procs, a.clients))
    shares = [a.clients // procs + (1 if i < a.clients % procs else 0) for i in range(procs)]
    firsts = [sum(shares[:i]) for i in range(procs)]
    start_at = time.time() + 5.0  # every process starts its clients at the same moment

    rss: list[tuple[float, int]] = [(0.0, rss_kib(a.server_pid))]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(max(0.0, start_at - time.time()) if not rss[1:] else 1.0):
            rss.append((time.time() - start_at, rss_kib(a.server_pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, busy0 = cpu_seconds(a.server_pid), machine_busy()
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs) as pool:
        results = pool.map(worker, [(a.base, a.key, firsts[i], shares[i], start_at, a.seconds)
                                    for i in range(procs)])
    cpu1, busy1 = cpu_seconds(a.server_pid), machine_busy()
    done.set()
    sampler.join()
    time.sleep(5)  # idle again: the end figure is the server at rest after the load
    rss_end = rss_kib(a.server_pid)

    lat: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    samples: list[str] = []
    for r in results:
        for op, xs in r["lat"].items():
            lat[op].extend(xs)
        for op, c in r["errors"].items():
            errors[op] += c
        samples.extend(r["samples"])
    elapsed = max(r["elapsed"] for r in results)
    total_ok = sum(len(xs) for xs in lat.values())
    total_err = sum(errors.values())

    def at(t: float) -> int:
        return min(rss[1:] or rss, key=lambda s: abs(s[0] - t))[1]

    rss_start = rss[0][1]
    rss_warm = at(10.0)
    rss_peak = max(v for _, v in rss)
    rss_last = rss[-1][1]

    print()
    print(f"{a.clients} clients in {procs} processes for {a.seconds:.0f} s (all ops finished after {elapsed:.1f} s)")
    print(f"{'operation':20} {'ok':>8} {'errors':>7} {'per s':>8} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    rows = {}
    for op in WEIGHTS:
        xs = lat.get(op, [])
        rows[op] = {"ok": len(xs), "errors": errors.get(op, 0), "per_s": len(xs) / elapsed,
                    "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99), "max_ms": max(xs) if xs else float("nan")}
        r = rows[op]
        print(f"{op:20} {r['ok']:8d} {r['errors']:7d} {r['per_s']:8.1f} {r['p50_ms']:9.1f} {r['p99_ms']:9.1f} {r['max_ms']:9.1f}")
    all_lat = [x for xs in lat.values() for x in xs]
    print(f"{'all':20} {total_ok:8d} {total_err:7d} {total_ok / elapsed:8.1f} {pct(all_lat, 50):9.1f} "
          f"{pct(all_lat, 99):9.1f} {max(all_lat) if all_lat else float('nan'):9.1f}")
    server_cpu = cpu1 - cpu0
    machine = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    print(f"server CPU: {server_cpu:.1f} s over the run = {server_cpu * 1000 / max(1, total_ok):.2f} ms per operation; "
          f"all {os.cpu_count()} CPUs of the machine {machine * 100:.0f} % busy (load generator, upstream, Postgres, others)")
    print()
    mib = lambda k: k / 1024  # noqa: E731
    print(f"server RSS: before load {mib(rss_start):.1f} MiB, after 10 s {mib(rss_warm):.1f} MiB, "
          f"peak {mib(rss_peak):.1f} MiB, at the end of the load {mib(rss_last):.1f} MiB, "
          f"5 s after {mib(rss_end):.1f} MiB")
    trail = [f"{t:.0f}s:{mib(v):.0f}" for t, v in rss[1::10]]
    print("RSS every 10 s (MiB): " + " ".join(trail))
    if samples:
        print("first errors:")
        for s in samples[:10]:
            print("  " + s)
    # Flat: the end of the load is within 10 % (and 32 MiB) of the RSS after 10 s of it.
    flat = rss_last <= rss_warm * 1.10 or rss_last - rss_warm <= 32 * 1024
    print()
    print(f"goal errors = 0: {'met' if total_err == 0 else 'MISSED'} ({total_err}); "
          f"goal RSS flat: {'met' if flat else 'MISSED'} "
          f"({mib(rss_warm):.0f} -> {mib(rss_last):.0f} MiB from 10 s to the end)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"clients": a.clients, "seconds": a.seconds, "elapsed": elapsed, "ops": rows,
                       "total_ok": total_ok, "total_errors": total_err,
                       "server_cpu_s": server_cpu, "machine_busy": machine, "rss_kib": rss,
                       "rss_end_idle_kib": rss_end, "error_samples": samples}, f, indent=1)
    raise SystemExit(0 if total_err == 0 and flat else 1)


if __name__ == "__main__":
    main()
