"""Sandbox checkpoints: a thread's variables and /mnt/data survive a graceful restart, an idle
expiry and (up to the last periodic checkpoint) a kill -9; checkpoints past the retention and
those of deleted threads are gone.

Each test starts its own assistd processes on a database of its own (see test_lifecycle.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from helpers import wait_for_run
from test_lifecycle import lifecycle_db, servers  # noqa: F401 - fixtures
from upstream import tool_outputs

SETUP = (
    "secret_value = 41\n"
    "import numpy as np\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'a': np.arange(10)})\n"
    "def bump(x):\n"
    "    return x + 1\n"
    "with open('/mnt/data/note.txt', 'w') as f:\n"
    "    f.write('kept on disk')\n"
    "handle = open('/mnt/data/open.txt', 'w')\n"
    "print('set up')\n"
)
CHECK = "print(bump(secret_value), int(df.a.sum()), np.__name__, open('/mnt/data/note.txt').read())"
EXPECTED = "42 45 numpy kept on disk"


def checkpoint_row(database_url: str, thread_id: str):
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT blob_key, size, metadata FROM sandbox_checkpoints WHERE thread_id = %s",
                            (thread_id,)).fetchone()


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def blob_path(tmp_path: Path, thread_id: str) -> Path:
    """Where the servers' blob store (ASSISTD_DATA_DIR = tmp_path/data) keeps the checkpoint."""
    return tmp_path / "data" / "checkpoints" / thread_id


def run_code(client, script, assistant_id: str, thread_id: str, code: str, timeout: float = 90):
    """Runs `code` through a scripted code_interpreter call; returns (logs, what the model read)."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("done")
    client.beta.threads.messages.create(thread_id=thread_id, role="user", content="go")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    run = wait_for_run(client, thread_id, run.id, timeout=timeout)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread_id).data
    logs = [o.logs for s in steps if s.type == "tool_calls"
            for c in s.step_details.tool_calls for o in c.code_interpreter.outputs if o.type == "logs"]
    return "\n".join(logs), tool_outputs(script.requests[-1])[-1]


def start_thread(server, script):
    client = server.client
    assistant = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    logs, _ = run_code(client, script, assistant.id, thread.id, SETUP)
    assert "set up" in logs
    return assistant, thread


def test_a_graceful_restart_keeps_variables_and_files_and_names_what_did_not_pickle(servers, script, lifecycle_db, tmp_path):
    first = servers(ASSISTD_SANDBOX_CHECKPOINT_SECS="0")
    assistant, thread = start_thread(first, script)
    assert checkpoint_row(lifecycle_db, thread.id) is None, "no periodic checkpoint when they are off"
    assert first.terminate() == 0
    row = checkpoint_row(lifecycle_db, thread.id)
    assert row is not None, "a graceful shutdown checkpoints the live session"
    assert row[0] == f"checkpoints/{thread.id}"
    assert blob_path(tmp_path, thread.id).stat().st_size == row[1]

    second = servers()
    logs, model_read = run_code(second.client, script, assistant.id, thread.id, CHECK)
    assert EXPECTED in logs
    # Checkpointed as the session ended: only what did not come back is news.
    assert "Sandbox restored" in model_read
    assert "handle (_io.TextIOWrapper: open file)" in model_read, model_read
    assert "lost" not in model_read and "secret_value" not in model_read, model_read
    assert model_read.index("Sandbox restored") < model_read.index(EXPECTED), "the note comes first"
    assert "Sandbox restored" not in logs, "the note is for the model, the logs are the code's"

    # Only the first output after a restore carries the note.
    _, model_read = run_code(second.client, script, assistant.id, thread.id, "print(secret_value)")
    assert "Sandbox restored" not in model_read and "41" in model_read


def test_an_idle_expired_session_is_restored_by_the_next_run(servers, script, lifecycle_db, tmp_path):
    server = servers(ASSISTD_SANDBOX_IDLE_TIMEOUT="2", ASSISTD_SANDBOX_CHECKPOINT_SECS="0")
    assistant, thread = start_thread(server, script)
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id), 30, "the idle session's checkpoint")
    logs, model_read = run_code(server.client, script, assistant.id, thread.id, CHECK)
    assert EXPECTED in logs
    assert "Sandbox restored" in model_read and "handle" in model_read


def test_after_a_kill_the_last_periodic_checkpoint_comes_back(servers, script, lifecycle_db, tmp_path):
    first = servers(ASSISTD_SANDBOX_CHECKPOINT_SECS="1")
    assistant, thread = start_thread(first, script)
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id), 30, "a periodic checkpoint")
    first.kill()

    second = servers()
    logs, model_read = run_code(second.client, script, assistant.id, thread.id, CHECK)
    assert EXPECTED in logs
    assert "Sandbox restored" in model_read
    assert "secret_value" in model_read and "np (numpy)" in model_read, "it names what came back"
    assert "since then are lost" in model_read, "and what may have been lost"
    assert "Sandbox restored" not in logs


# Restores that have nothing to tell: the checkpoint was taken as the session ended, everything pickles.
# (A `with open(...) as f` would leave `f`, a closed file, which does not pickle and is named.)
CLEAN_SETUP = (SETUP.replace("handle = open('/mnt/data/open.txt', 'w')\n", "")
               .replace("with open('/mnt/data/note.txt', 'w') as f:\n    f.write('kept on disk')",
                        "open('/mnt/data/note.txt', 'w').write('kept on disk')"))
assert CLEAN_SETUP.count("open(") == 1


def exactly_what_the_cell_printed(server, script, assistant, thread):
    logs, model_read = run_code(server.client, script, assistant.id, thread.id, CHECK)
    assert logs == EXPECTED + "\n", logs
    assert model_read == logs, f"the model reads the cell's output and nothing else: {model_read!r}"


def start_clean_thread(server, script):
    client = server.client
    assistant = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    logs, _ = run_code(client, script, assistant.id, thread.id, CLEAN_SETUP)
    assert "set up" in logs
    return assistant, thread


def test_after_a_graceful_restart_the_code_output_is_exactly_what_the_cell_printed(servers, script, lifecycle_db):
    first = servers()
    assistant, thread = start_clean_thread(first, script)
    assert first.terminate() == 0
    second = servers()
    exactly_what_the_cell_printed(second, script, assistant, thread)
    assert second.terminate() == 0
    assert "taken_at_end=true" in second.log_path.read_text(), "one neutral line in the server log"


def test_after_an_eviction_the_code_output_is_exactly_what_the_cell_printed(servers, script, lifecycle_db):
    server = servers(ASSISTD_SANDBOX_MAX_SESSIONS="1")
    assistant, thread = start_clean_thread(server, script)
    other = server.client.beta.threads.create()
    run_code(server.client, script, assistant.id, other.id, "print('takes the only place')")
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id), 30, "the evicted session's checkpoint")
    exactly_what_the_cell_printed(server, script, assistant, thread)


def test_after_an_idle_expiry_the_code_output_is_exactly_what_the_cell_printed(servers, script, lifecycle_db):
    server = servers(ASSISTD_SANDBOX_IDLE_TIMEOUT="2")
    assistant, thread = start_clean_thread(server, script)
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id), 30, "the idle session's checkpoint")
    exactly_what_the_cell_printed(server, script, assistant, thread)


def test_checkpoints_past_their_retention_are_deleted(servers, script, lifecycle_db, tmp_path):
    server = servers(ASSISTD_SANDBOX_IDLE_TIMEOUT="1", ASSISTD_SANDBOX_RETAIN_SECS="4")
    _, thread = start_thread(server, script)
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id), 30, "the checkpoint")
    assert blob_path(tmp_path, thread.id).exists()
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id) is None, 30, "the retention sweep")
    assert not blob_path(tmp_path, thread.id).exists()


def test_deleting_a_thread_deletes_its_checkpoint(servers, script, lifecycle_db, tmp_path):
    server = servers(ASSISTD_SANDBOX_CHECKPOINT_SECS="1")
    _, thread = start_thread(server, script)
    wait_until(lambda: checkpoint_row(lifecycle_db, thread.id), 30, "a periodic checkpoint")
    assert blob_path(tmp_path, thread.id).exists()
    with psycopg.connect(lifecycle_db) as conn:
        placed = conn.execute("SELECT count(*) FROM placements WHERE thread_id = %s", (thread.id,)).fetchone()[0]
    assert placed == 1
    server.client.beta.threads.delete(thread.id)
    assert checkpoint_row(lifecycle_db, thread.id) is None
    assert not blob_path(tmp_path, thread.id).exists()
    # No foreign key removes it any more (sessions may be containers'): the deletion does.
    with psycopg.connect(lifecycle_db) as conn:
        placed = conn.execute("SELECT count(*) FROM placements WHERE thread_id = %s", (thread.id,)).fetchone()[0]
    assert placed == 0
