"""Imports each package of sandbox/openai-packages.txt in a fresh interpreter, two at a time.

Run as a cell (tests/sandbox.rs sends it with PACKAGES set to the list file's text) or as a
script: `python3 import_check.py openai-packages.txt`. Prints one JSON object: the packages that
imported with their versions, and the ones that failed with the last line of their error.
"""
import concurrent.futures
import json
import subprocess
import sys

PROBE = r"""
import importlib, importlib.metadata, sys
module = importlib.import_module(sys.argv[1])
try:
    version = importlib.metadata.version(sys.argv[2])
except importlib.metadata.PackageNotFoundError:
    version = getattr(module, "__version__", "?")
print(version)
"""


def listed(text):
    """(package, import name, distribution) for every line we provide (not skipped)."""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")]
        package, module, how = fields[0], fields[2], fields[3]
        if how.startswith("skipped"):
            continue
        words = how.split()
        dist = words[2] if words[:1] == ["base"] and len(words) > 3 else package
        if words[:1] == ["pypi"] and len(words) == 3:
            dist = words[1]  # provided under another distribution name (e.g. dlib-bin)
        yield package, module, dist.split("[")[0]


def probe(entry):
    package, module, dist = entry
    proc = subprocess.run([sys.executable, "-c", PROBE, module, dist], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode == 0:
        return package, True, proc.stdout.strip().splitlines()[-1]
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    return package, False, lines[-1] if lines else f"exit {proc.returncode}"


def check(text):
    entries = list(listed(text))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(probe, entries))
    return {
        "imported": {p: v for p, ok, v in results if ok},
        "failed": {p: why for p, ok, why in results if not ok},
    }


if "PACKAGES" in globals():  # run as a cell (a cell's __name__ is "__main__" too)
    print(json.dumps(check(PACKAGES)))
elif __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        print(json.dumps(check(f.read()), indent=1))
