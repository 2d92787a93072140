"""Runs inside a sandbox container (bench/sandbox/launch-cpu.sh): starts the driver N times two ways and prints, per
start, the CPU it used as JSON lines:
- "claimed": an exec of print(1) is waiting when it starts (a pool miss: a session waits for this sandbox): CPU until
  that reply, and until ready;
- "unclaimed": nobody uses it (a warm pool's sandbox): CPU once its background imports are done (pyplot's under
  way, then no more CPU for half a second), and its resident memory then."""

import json
import os
import shutil
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 // TICK


def rss_mib(pid):
    with open(f"/proc/{pid}/statm") as f:
        return round(int(f.read().split()[1]) * PAGE / 2**20)


def start(claimed):
    shutil.rmtree("/tmp/mpl", ignore_errors=True)  # as in a new container: the driver seeds it
    started = time.monotonic()
    driver = subprocess.Popen(["python3", "/opt/assistd/driver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    if claimed:
        driver.stdin.write(b'{"type":"exec","id":"1","code":"print(1)","timeout":30}\n')
        driver.stdin.flush()
    ready = json.loads(driver.stdout.readline())
    out = {"kind": "claimed" if claimed else "unclaimed", "ready": ready["type"] == "ready",
           "ready_cpu_ms": cpu_ms(driver.pid), "ready_wall_ms": round((time.monotonic() - started) * 1000)}
    if claimed:
        reply = json.loads(driver.stdout.readline())
        out["ready"] = out["ready"] and reply["stdout"] == "1\n"
        out["cpu_ms"] = cpu_ms(driver.pid)
    else:
        # The prewarm waits while the host is busy (up to 10 s): until pyplot's import is under way
        # (matplotlib's font library mapped), then until the CPU time stops growing.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(f"/proc/{driver.pid}/maps") as f:
                if "ft2font" in f.read():
                    break
            time.sleep(0.05)
        last, still = cpu_ms(driver.pid), 0.0
        while still < 0.5:
            time.sleep(0.1)
            now = cpu_ms(driver.pid)
            still = still + 0.1 if now == last else 0.0
            last = now
        out["cpu_ms"] = last
    out["rss_mib"] = rss_mib(driver.pid)
    driver.stdin.close()
    driver.wait()
    return out


for _ in range(int(sys.argv[1])):
    for claimed in (True, False):
        print(json.dumps(start(claimed)), flush=True)
