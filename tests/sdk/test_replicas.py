"""Two replicas, one Postgres, one Docker engine: a thread's runs go where its sandbox session lives.

Each test starts two assistd processes on a database of their own. Whichever replica a request reaches, the
run is executed by the replica holding the thread's session, so variables and /mnt/data files are kept; a
streamed run executed by the other replica streams the same events, carried through Postgres.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import httpx
import psycopg
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from helpers import text_of
from test_lifecycle import Server, lifecycle_db  # noqa: F401  (the fixture is used by name)
from upstream import tool_outputs

pytestmark = pytest.mark.runs

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture
def replicas(lifecycle_db, upstream, tmp_path):  # noqa: F811
    """Replicas A and B sharing the database and the blob directory, each with its own sandbox label."""
    started = [Server(lifecycle_db, upstream, tmp_path, f"rep-{name}-{uuid.uuid4().hex[:6]}",
                      ASSISTD_SANDBOX_POOL_SIZE="1", ASSISTD_SANDBOX_CHECKPOINT_SECS="1")
               for name in ("a", "b")]
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.terminate()
    for s in started:  # what a killed replica left behind
        leftovers = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=assistd.instance={s.instance}"],
                                   capture_output=True, text=True).stdout.split()
        if leftovers:
            subprocess.run(["docker", "rm", "-f", "-v", *leftovers], capture_output=True)


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.inputs: list[str] = []
        self.logs: list[str] = []
        self.text = ""
        self.errors: list[Exception] = []

    @override
    def on_event(self, event) -> None:
        self.events.append(event.event)

    @override
    def on_text_delta(self, delta, snapshot) -> None:
        self.text += delta.value or ""

    @override
    def on_tool_call_delta(self, delta, snapshot) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter:
            if delta.code_interpreter.input:
                self.inputs.append(delta.code_interpreter.input)
            self.logs += [o.logs for o in delta.code_interpreter.outputs or [] if o.type == "logs"]

    @override
    def on_exception(self, exception: Exception) -> None:
        self.errors.append(exception)


def collapse(events: list[str]) -> list[str]:
    out: list[str] = []
    for e in events:
        if not (e.endswith(".delta") and out and out[-1] == e):
            out.append(e)
    return out


def run_code(server: Server, script, assistant_id: str, thread_id: str, code: str) -> str:
    """A polled run through `server` whose model runs `code`; returns what the code printed."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("ok")
    run = server.client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id,
                                                          poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    return tool_outputs(script.requests[-1])[-1]


def holder(database_url: str, thread_id: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT worker FROM placements WHERE thread_id = %s", (thread_id,)).fetchone()
    return row[0] if row else None


def setup_thread(server: Server, script, *, tools=({"type": "code_interpreter"},)):
    a = server.client.beta.assistants.create(model=script.model, tools=list(tools))
    t = server.client.beta.threads.create()
    return a, t


def test_ten_threads_alternating_replicas_keep_their_variables_and_files(replicas, script, lifecycle_db):  # noqa: F811
    a, b = replicas
    assistant = a.client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    kept = 0
    for i in range(10):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        thread = first.client.beta.threads.create()
        run_code(first, script, assistant.id, thread.id,
                 f"secret_value = {40 + i}\nopen('/mnt/data/note.txt', 'w').write('note {i}')\nNone")
        placed = holder(lifecycle_db, thread.id)
        assert placed is not None, "the replica that ran the code holds the thread's session"
        out = run_code(second, script, assistant.id, thread.id,
                       "print(secret_value + 1, open('/mnt/data/note.txt').read())")
        kept += out.strip() == f"{41 + i} note {i}"
        assert holder(lifecycle_db, thread.id) == placed, "the session did not move"
    assert kept == 10


def test_a_streamed_run_at_the_other_replica_streams_the_whole_event_sequence(replicas, script, lifecycle_db):  # noqa: F811
    a, b = replicas
    assistant, local = setup_thread(a, script)
    remote = a.client.beta.threads.create()
    for t in (local, remote):
        run_code(a, script, assistant.id, t.id, "secret_value = 99")

    def streamed(server: Server, thread_id: str) -> tuple[Recorder, object]:
        script.push_tool_call("code_interpreter", {"code": "print('secret', secret_value)"}, arg_chunk=3)
        script.push_text("The secret is " + "ninety-nine, said in several pieces.")
        rec = Recorder()
        with server.client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id,
                                                    event_handler=rec) as stream:
            stream.until_done()
            run = stream.get_final_run()
        assert not rec.errors, rec.errors
        return rec, run

    here, here_run = streamed(a, local.id)
    there, there_run = streamed(b, remote.id)
    assert there_run.status == here_run.status == "completed"
    assert collapse(there.events) == collapse(here.events)
    assert len(there.events) == len(here.events)
    assert "".join(there.inputs) == "print('secret', secret_value)"
    assert there.logs == ["secret 99\n"], "executed where the variable lives"
    assert there.text == here.text == "The secret is ninety-nine, said in several pieces."
    stored = b.client.beta.threads.messages.list(thread_id=remote.id, run_id=there_run.id).data
    assert [text_of(m) for m in stored] == [there.text]


def test_cancel_through_the_other_replica_stops_the_code_at_once(replicas, script):
    a, b = replicas
    assistant, thread = setup_thread(a, script)
    run_code(a, script, assistant.id, thread.id, "x = 1")
    script.push_tool_call("code_interpreter", {"code": "import time\ntime.sleep(60)"})
    run = a.client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        steps = a.client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
        if any(s.type == "tool_calls" for s in steps):
            break
        time.sleep(0.1)
    time.sleep(0.5)  # the code is sleeping now
    asked = time.monotonic()
    cancelled = b.client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    assert cancelled.status == "cancelling"
    while time.monotonic() < asked + 20:
        run = b.client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)
        if run.status == "cancelled":
            break
        time.sleep(0.1)
    assert run.status == "cancelled"
    assert time.monotonic() - asked < 5, "the holder heard the cancel at once, not after the code's minute"
    # The session survived the interrupt, on the replica holding it.
    assert run_code(b, script, assistant.id, thread.id, "print(x)").strip() == "1"


@pytest.mark.parametrize("stream", [False, True])
def test_submit_tool_outputs_through_the_other_replica_continues_where_the_session_is(
        replicas, script, stream):
    a, b = replicas
    assistant, thread = setup_thread(a, script, tools=({"type": "code_interpreter"}, WEATHER_TOOL))
    run_code(a, script, assistant.id, thread.id, "secret_value = 7")
    script.push_function_call("get_weather", {"city": "Oslo"})
    script.push_tool_call("code_interpreter", {"code": "print(secret_value * 6)"})
    script.push_text(lambda req: "weather and " + tool_outputs(req)[-1].strip())
    run = a.client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                     poll_interval_ms=100)
    assert run.status == "requires_action"
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    outputs = [{"tool_call_id": call.id, "output": "cold"}]
    if stream:
        rec = Recorder()
        with b.client.beta.threads.runs.submit_tool_outputs_stream(
                run_id=run.id, thread_id=thread.id, tool_outputs=outputs, event_handler=rec) as s:
            s.until_done()
            done = s.get_final_run()
        assert not rec.errors, rec.errors
        assert rec.events[0] == "thread.run.queued"
        assert rec.events[-1] == "thread.run.completed"
        assert rec.logs == ["42\n"]
        assert rec.text == "weather and 42"
    else:
        b.client.beta.threads.runs.submit_tool_outputs(run_id=run.id, thread_id=thread.id, tool_outputs=outputs)
        done = b.client.beta.threads.runs.poll(run_id=run.id, thread_id=thread.id, poll_interval_ms=100)
    assert done.status == "completed", done.last_error
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert text_of(b.client.beta.threads.messages.list(thread_id=thread.id).data[0]) == "weather and 42"


def test_a_thread_whose_replica_was_killed_runs_on_the_other_from_its_last_checkpoint(
        replicas, script, lifecycle_db):  # noqa: F811
    a, b = replicas
    assistant, thread = setup_thread(a, script)
    run_code(a, script, assistant.id, thread.id, "x = 5\nopen('/mnt/data/kept.txt', 'w').write('kept')\nNone")
    before = holder(lifecycle_db, thread.id)
    assert before is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the periodic checkpoint (ASSISTD_SANDBOX_CHECKPOINT_SECS=1)
        with psycopg.connect(lifecycle_db) as conn:
            if conn.execute("SELECT 1 FROM sandbox_checkpoints WHERE thread_id = %s", (thread.id,)).fetchone():
                break
        time.sleep(0.2)
    a.kill()
    # A's placement counts for nothing once its heartbeat is stale (15 s): B takes the thread and
    # restores A's last checkpoint before the code runs.
    out = run_code(b, script, assistant.id, thread.id, "print(x, open('/mnt/data/kept.txt').read())")
    assert out.strip().endswith("5 kept"), out
    assert "x" in out.split("5 kept")[0], "the model is told what came back"
    assert holder(lifecycle_db, thread.id) not in (None, before)


def live_sessions(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("assistd_sandbox_sessions_live")]
    return float(line.split()[-1])


def test_deleting_a_thread_through_the_other_replica_drops_its_sandbox_where_it_lives(replicas, script):
    a, b = replicas
    assistant, thread = setup_thread(a, script)
    run_code(a, script, assistant.id, thread.id, "x = 1")
    assert live_sessions(a) == 1
    assert b.client.beta.threads.delete(thread.id).deleted
    deadline = time.monotonic() + 10
    while live_sessions(a) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_sessions(a) == 0


def run_in_container(server: Server, script, container_id: str, code: str) -> str:
    """A response through `server` whose model runs `code` in the container; returns what it printed."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    r = server.client.responses.create(model=script.model, input="run it",
                                       tools=[{"type": "code_interpreter", "container": container_id}])
    assert r.status == "completed", r.error
    return r.output_text


def test_container_files_through_the_other_replica_act_on_the_live_session(replicas, script, lifecycle_db):  # noqa: F811
    a, b = replicas
    c = a.client.containers.create(name="shared")
    assert run_in_container(a, script, c.id, "secret = 5\nprint('set')") == "set"
    placed = holder(lifecycle_db, c.id)
    assert placed is not None

    # An upload through B lands in the session A holds, beside its variables.
    up = b.client.containers.files.create(c.id, file=("from_b.txt", b"hello from b"))
    assert up.path == "/mnt/data/from_b.txt"
    assert run_in_container(a, script, c.id, "print(open('/mnt/data/from_b.txt').read(), secret)") == \
        "hello from b 5"

    # What the code on A wrote or changed, B serves as it is now.
    run_in_container(a, script, c.id, "open('/mnt/data/from_b.txt', 'a').write(' and a')\n"
                                      "open('/mnt/data/from_a.txt', 'w').write('made on a')\nprint('ok')")
    assert b.client.containers.files.content.retrieve(up.id, container_id=c.id).read() == b"hello from b and a"
    listed = {f.path: f.id for f in b.client.containers.files.list(c.id).data}
    assert b.client.containers.files.content.retrieve(listed["/mnt/data/from_a.txt"],
                                                      container_id=c.id).read() == b"made on a"
    # Changed again: the new bytes.
    run_in_container(a, script, c.id, "import os\nwith open('/mnt/data/from_a.txt', 'w') as f: f.write('v2')\n"
                                      "print('ok')")
    assert b.client.containers.files.content.retrieve(listed["/mnt/data/from_a.txt"],
                                                      container_id=c.id).read() == b"v2"

    # A delete through B removes it from the session on A.
    b.client.containers.files.delete(up.id, container_id=c.id)
    assert run_in_container(a, script, c.id, "import os\nprint(os.path.exists('/mnt/data/from_b.txt'), secret)") == \
        "False 5"
    assert holder(lifecycle_db, c.id) == placed, "the session stayed where it was"
    # The same name is free again in A's session.
    again = b.client.containers.files.create(c.id, file=("from_b.txt", b"second"))
    assert again.path == "/mnt/data/from_b.txt"
