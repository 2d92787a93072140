"""Runs inside a sandbox container (bench/sandbox/launch-cpu.sh): starts the driver N times and prints, per start,
the CPU it used until it said ready, the wall time, and its resident memory, as JSON lines."""

import json
import os
import shutil
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")

for _ in range(int(sys.argv[1])):
    shutil.rmtree("/tmp/mpl", ignore_errors=True)  # as in a new container: the driver seeds it
    started = time.monotonic()
    driver = subprocess.Popen(["python3", "/opt/assistd/driver.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    ready = json.loads(driver.stdout.readline())
    wall = time.monotonic() - started
    with open(f"/proc/{driver.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{driver.pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    print(json.dumps({"ready": ready["type"] == "ready", "cpu_ms": (int(fields[11]) + int(fields[12])) * 1000 // TICK,
                      "wall_ms": round(wall * 1000), "rss_mib": round(rss / 2**20)}), flush=True)
    driver.stdin.close()
    driver.wait()
