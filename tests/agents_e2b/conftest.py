"""OpenAI's Agents SDK (`openai-agents[e2b]`, its `E2BSandboxClient`) against the E2B surface: the same server
fixture as tests/e2b (a fresh database, the real binary, E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY set), run
from the venv `make venv-agents-e2b` makes, whose pinned e2b checks keys against `^e2b_[0-9a-f]+$`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2b"))

from conftest import KEY_A, KEY_B, server  # noqa: E402,F401  (fixtures are used by name)
