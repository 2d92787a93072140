"""Runs the Node.js SDK suite (tests/node/*.test.mjs) against the real assistd binary.

    .venv/bin/python tests/node/harness.py [`node --test` arguments, e.g. --test-name-pattern=streamed, or files]

Starts what tests/sdk/conftest.py starts for the Python suite — a fresh database, the scripted upstream model
(tests/sdk/upstream.py) and `target/debug/assistd serve` — plus a small HTTP control endpoint through which
the JavaScript tests script the upstream, then runs `node --test` and stops everything again, also on failure
or interruption. Exits with node's exit code.

Environment:
  DATABASE_URL   a PostgreSQL server to create the run's database on (else `scripts/pg.sh start .tmp/pg`)
  ASSISTD_BIN    the server binary (default target/debug/assistd)
  ASSISTD_SANDBOX_IMAGE  passed through to the server (default assistd-sandbox:latest)
The server's log goes to .tmp/node-tests/server.log; its tail is printed when the server fails to start or a
test fails.

The tests get:
  ASSISTD_BASE_URL         the server's /v1 URL
  ASSISTD_API_KEY          a key of project node_a
  ASSISTD_OTHER_API_KEY    a key of project node_b (must not see node_a's objects)
  ASSISTD_ISOLATED_KEYS    comma-separated keys, each of a project of its own (for exact list assertions)
  ASSISTD_UPSTREAM_CONTROL the control endpoint's URL:
      POST {control}/scripts                      -> {"model": "scripted-<hex>"}  a fresh script
      POST {control}/scripts/{model}/turns        push one turn, a JSON object of one of these shapes:
            {"text": "..."}                                 a plain answer
            {"text_template": "It is {tool_output}."}       {tool_output}: the last tool message, stripped
            {"text_cite": "It is so{mark}."}                {mark}: the first 【n:m†file】 mark of the last tool message
            {"tool_calls": [{"name": "...", "arguments": {...}}, ...], "arg_chunk": 7}
                                                            arguments streamed arg_chunk characters a chunk
            {"error": 429, "message": "...", "sticky": false}
        optional on any turn: "delay", "chunk_delay" (seconds)
      GET  {control}/scripts/{model}/requests     -> every chat request that model received, in order
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = ROOT / ".tmp" / "node-tests"
sys.path.insert(0, str(ROOT / "tests" / "sdk"))

import assistd_process  # noqa: E402
from upstream import Script, ToolCall, Turn, Upstream, _error_body, tool_outputs  # noqa: E402

KEY_A = "sk-node-a"
KEY_B = "sk-node-b"
ISOLATED_KEYS = [f"sk-node-iso{i}" for i in range(8)]
UPSTREAM_KEY = "sk-upstream-secret"


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def _problems(path: Path, lines: int = 30) -> str:
    try:
        found = [line for line in path.read_text(errors="replace").splitlines() if " WARN " in line or " ERROR " in line]
    except OSError:
        return "(no log)"
    return "\n".join(found[-lines:]) or "(none)"


# -- the control endpoint -----------------------------------------------------------------------------------

def _turn_from_json(spec: dict[str, Any]) -> Turn:
    timing = {"delay": float(spec.get("delay", 0)), "chunk_delay": float(spec.get("chunk_delay", 0))}
    if "error" in spec:
        status = int(spec["error"])
        return Turn(error_status=status, error_body=_error_body(status, spec.get("message")),
                    sticky=bool(spec.get("sticky", False)), delay=timing["delay"])
    if "tool_calls" in spec:
        calls = [ToolCall(c["name"], c.get("arguments", {}), **({"id": c["id"]} if c.get("id") else {}))
                 for c in spec["tool_calls"]]
        return Turn(tool_calls=calls, arg_chunk=int(spec.get("arg_chunk", 7)), **timing)
    if "text_template" in spec:
        template = str(spec["text_template"])

        def render(req: dict[str, Any]) -> str:
            outs = tool_outputs(req)
            return template.replace("{tool_output}", outs[-1].strip() if outs else "<no tool output>")

        return Turn(text=render, **timing)
    if "text_cite" in spec:
        template = str(spec["text_cite"])

        def cite(req: dict[str, Any]) -> str:
            outs = tool_outputs(req)
            marks = re.findall(r"【\d+:\d+†[^】]*】", outs[-1]) if outs else []
            return template.replace("{mark}", marks[0] if marks else "<no citation mark>")

        return Turn(text=cite, **timing)
    if "text" in spec:
        return Turn(text=str(spec["text"]), **timing)
    raise ValueError(f"a turn needs text, text_template, tool_calls or error: {spec!r}")


def _control_server(upstream: Upstream) -> ThreadingHTTPServer:
    scripts: dict[str, Script] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _script(self, model: str) -> Script | None:
            with lock:
                return scripts.get(model)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            except json.JSONDecodeError as exc:
                self._reply(400, {"error": f"bad JSON: {exc}"})
                return
            parts = [p for p in self.path.split("/") if p]
            if parts == ["scripts"]:
                script = upstream.script(body.get("model"))
                with lock:
                    scripts[script.model] = script
                self._reply(200, {"model": script.model})
            elif len(parts) == 3 and parts[0] == "scripts" and parts[2] == "turns":
                script = self._script(parts[1])
                if script is None:
                    self._reply(404, {"error": f"no script for model {parts[1]}"})
                    return
                try:
                    script.push(_turn_from_json(body))
                except (ValueError, KeyError, TypeError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                self._reply(200, {"remaining": script.remaining})
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("/") if p]
            if len(parts) == 3 and parts[0] == "scripts" and parts[2] == "requests":
                script = self._script(parts[1])
                if script is None:
                    self._reply(404, {"error": f"no script for model {parts[1]}"})
                    return
                with script._lock:
                    requests = list(script.requests)
                self._reply(200, {"requests": requests, "remaining": script.remaining})
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="upstream-control", daemon=True).start()
    return server


# -- the run ------------------------------------------------------------------------------------------------

def _start_server(database_url: str, upstream: Upstream, data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    keys = [f"proj_node_a:{KEY_A}", f"proj_node_b:{KEY_B}"]
    keys += [f"proj_node_iso{i}:{k}" for i, k in enumerate(ISOLATED_KEYS)]
    env = {
        "DATABASE_URL": database_url,
        "ASSISTD_API_KEYS": ",".join(keys),
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_UPSTREAM_BASE_URL": upstream.base_url,
        "ASSISTD_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "ASSISTD_SANDBOX_IMAGE": os.environ.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
        # Its own sandbox label, so the orphan sweep at start leaves other servers' containers alone.
        "ASSISTD_SANDBOX_INSTANCE": f"node-tests-{os.getpid()}",
        "ASSISTD_SANDBOX_POOL_SIZE": "1",
        "ASSISTD_SANDBOX_POOL_MAX": "1",
        "ASSISTD_UPSTREAM_RETRY_BASE_MS": "50",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        "ASSISTD_SANDBOX_EXEC_TIMEOUT": os.environ.get("ASSISTD_SANDBOX_EXEC_TIMEOUT", "20"),
    }
    try:
        return assistd_process.start(env, log_path)
    except assistd_process.StartError as e:
        raise SystemExit(f"harness: {e}")


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    import psycopg  # from the venv (scripts/venv.sh)

    WORK.mkdir(parents=True, exist_ok=True)
    if not (HERE / "node_modules" / "openai").is_dir():
        print("harness: tests/node/node_modules is missing; run `make test-node` (or `npm ci` in tests/node)",
              file=sys.stderr)
        return 2

    base = os.environ.get("DATABASE_URL")
    if not base:
        base = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start", str(ROOT / ".tmp" / "pg")],
                              check=True, capture_output=True, text=True).stdout.strip()
    dbname = "assistd_node_" + uuid.uuid4().hex[:10]
    upstream: Upstream | None = None
    control: ThreadingHTTPServer | None = None
    server: subprocess.Popen | None = None
    node: subprocess.Popen | None = None
    data_dir: Path | None = None
    created_db = False
    code = 1
    log_path = WORK / "server.log"
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        created_db = True
        upstream = Upstream().start()
        control = _control_server(upstream)
        data_dir = WORK / f"data-{os.getpid()}"
        data_dir.mkdir(parents=True, exist_ok=True)
        server, url = _start_server(assistd_process.with_dbname(base, dbname), upstream, data_dir, log_path)

        # Extra arguments go to `node --test` as given; the whole suite unless they name test files.
        files = [] if any(a.endswith((".mjs", ".js")) for a in argv) else sorted(glob.glob(str(HERE / "*.test.mjs")))
        env = dict(os.environ)
        env.update({
            "ASSISTD_BASE_URL": url + "/v1",
            "ASSISTD_API_KEY": KEY_A,
            "ASSISTD_OTHER_API_KEY": KEY_B,
            "ASSISTD_ISOLATED_KEYS": ",".join(ISOLATED_KEYS),
            "ASSISTD_UPSTREAM_CONTROL": f"http://127.0.0.1:{control.server_address[1]}",
        })
        started = time.monotonic()
        node = subprocess.Popen(["node", "--test", *argv, *files], env=env, cwd=HERE)
        code = node.wait()
        print(f"harness: node --test exited {code} after {time.monotonic() - started:.1f} s", file=sys.stderr)
        if code != 0:
            print(f"harness: the server's warnings and errors (whole log: {log_path}):\n{_problems(log_path)}",
                  file=sys.stderr)
    except Interrupted as exc:
        print(f"harness: interrupted ({exc}); stopping", file=sys.stderr)
        code = 130
    finally:
        # Ignore further signals while cleaning up, so a second Ctrl-C cannot strand a process.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assistd_process.stop(node, timeout=5)
        assistd_process.stop(server)
        if control is not None:
            control.shutdown()
            control.server_close()
        if upstream is not None:
            upstream.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
        if created_db:
            try:
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"harness: could not drop database {dbname}: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
