#!/usr/bin/env bash
# Creates a venv at the repo root (idempotent) with pinned SDK-test requirements:
#   scripts/venv.sh                      -> .venv with tests/sdk/requirements.txt (openai 1.x)
#   scripts/venv.sh .venv-sdk3 tests/sdk/requirements-sdk3.txt   (the newest openai)
# Re-installs only when the requirements file changes (stamp keyed by its hash).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/${1:-.venv}"
req="$root/${2:-tests/sdk/requirements.txt}"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/pytest" ]; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian splits venv support out of python3.
    echo "venv.sh: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi

"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
