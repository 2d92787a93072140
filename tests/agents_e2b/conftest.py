"""OpenAI's Agents SDK (`openai-agents[e2b]`, its `E2BSandboxClient`) against the E2B surface: the same server
fixture as tests/e2b (a fresh database, the real binary, E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY set), run
from the venv `make venv-agents-e2b` makes, whose pinned e2b checks keys against `^e2b_[0-9a-f]+$`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# tests/e2b/conftest.py under a name of its own: `import conftest` would find this very module.
_spec = importlib.util.spec_from_file_location(
    "e2b_conftest", Path(__file__).resolve().parents[1] / "e2b" / "conftest.py")
_e2b = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2b)

KEY_A, KEY_B = _e2b.KEY_A, _e2b.KEY_B
server_env, server = _e2b.server_env, _e2b.server  # fixtures are used by name
