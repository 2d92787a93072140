"""Property-based conformance: schemathesis drives the server from the repo's own openapi.yaml.

Checks: no 5xx for any generated request (valid or not), and every response matches the documented schema.
Bounded (few examples per operation) so it finishes well under two minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import KEY_FUZZ, ROOT, WORK

SPEC = ROOT / "openapi.yaml"
MAX_EXAMPLES = 6


@pytest.mark.timeout(300)
def test_the_server_conforms_to_its_openapi_yaml(server):
    assert SPEC.exists(), f"{SPEC} does not exist yet"
    spec = yaml.safe_load(SPEC.read_text())
    paths = list(spec.get("paths", {}))
    assert paths, "openapi.yaml documents no paths"
    # Paths written as /v1/... get the bare origin; paths written relative to /v1 get it appended.
    base = server if any(p.startswith("/v1/") for p in paths) else server + "/v1"
    schemathesis = Path(sys.executable).with_name("schemathesis")
    WORK.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(schemathesis), "run", str(SPEC),
        "--url", base,
        "-H", f"Authorization: Bearer {KEY_FUZZ}",
        "-H", "OpenAI-Beta: assistants=v2",
        # E2B's routes (/e2b) take other credentials and are documented by path only; tests/e2b covers them.
        "--exclude-tag", "E2B",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES),
        "--phases", "examples,coverage,fuzzing",
        "--workers", "1",  # hypothesis caches are not thread-safe: 2 workers gave spurious FlakyFailure errors
        "--seed", "1",
        "--request-timeout", "20",
        "--generation-database", "none",
        "--no-shrink",
        "--no-color",
        "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(WORK / "schemathesis-junit.xml"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=WORK)
    out = proc.stdout + proc.stderr
    (WORK / "schemathesis.log").write_text(out)
    assert proc.returncode == 0, f"schemathesis failed (full log in {WORK / 'schemathesis.log'}):\n{out[-12000:]}"
