"""Streaming runs: event order (FACTS.md), text deltas, tool-call deltas, streamed submit_tool_outputs."""

from __future__ import annotations

import json

import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from helpers import last_assistant_message, text_of
from upstream import tool_outputs

pytestmark = pytest.mark.runs

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}

PLAIN_ORDER = [
    "thread.run.created", "thread.run.queued", "thread.run.in_progress",
    "thread.run.step.created", "thread.run.step.in_progress",
    "thread.message.created", "thread.message.in_progress", "thread.message.delta",
    "thread.message.completed", "thread.run.step.completed", "thread.run.completed",
]


class Recorder(AssistantEventHandler):
    """Records every event name and assembles text deltas as a client UI would."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.text = ""
        self.tool_calls_done: list = []
        self.errors: list[Exception] = []

    @override
    def on_event(self, event) -> None:
        self.events.append(event.event)

    @override
    def on_text_delta(self, delta, snapshot) -> None:
        self.text += delta.value or ""

    @override
    def on_tool_call_done(self, tool_call) -> None:
        self.tool_calls_done.append(tool_call)

    @override
    def on_exception(self, exception: Exception) -> None:
        self.errors.append(exception)


def collapse(events: list[str]) -> list[str]:
    """Runs of the same delta event collapse to one, so orders can be compared exactly."""
    out: list[str] = []
    for e in events:
        if e.endswith(".delta") and out and out[-1] == e:
            continue
        out.append(e)
    return out


def test_a_streamed_plain_run_emits_events_in_order_and_deltas_assemble_the_text(client, script):
    answer = "Streaming works, one small piece at a time."
    script.push_text(answer)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "stream please"}])
    rec = Recorder()
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id, event_handler=rec) as stream:
        stream.until_done()
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    assert not rec.errors
    assert collapse(rec.events) == PLAIN_ORDER
    assert rec.events.count("thread.message.delta") >= 2, "the text should arrive in several deltas"
    assert rec.text == answer
    assert run.status == "completed"
    assert [text_of(m) for m in messages] == [answer]
    assert text_of(last_assistant_message(client, t.id)) == answer
    # The upstream was streamed from too (chunk deltas became message deltas).
    assert script.requests[-1].get("stream") is True


def test_the_raw_event_stream_has_the_openai_wire_format(client, script, http):
    script.push_text("raw")
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    with http.stream("POST", f"/threads/{t.id}/runs", json={"assistant_id": a.id, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    blocks = [b for b in body.split("\n\n") if b.strip()]
    pairs = []
    for b in blocks:
        lines = dict(line.split(": ", 1) for line in b.split("\n") if line and not line.startswith(":"))
        pairs.append((lines.get("event"), lines.get("data")))
    assert pairs[-1] == ("done", "[DONE]")
    for name, data in pairs[:-1]:
        obj = json.loads(data)
        if name.startswith("thread.run.step"):
            assert obj["object"] in ("thread.run.step", "thread.run.step.delta"), name
        elif name.startswith("thread.run"):
            assert obj["object"] == "thread.run", name
        elif name.startswith("thread.message"):
            assert obj["object"] in ("thread.message", "thread.message.delta"), name
    assert collapse([n for n, _ in pairs[:-1]]) == PLAIN_ORDER


def test_a_streamed_code_run_reports_the_tool_call_and_its_output(client, script):
    script.push_tool_call("code_interpreter", {"code": "print(6 * 7)"})
    script.push_text(lambda req: "It is 42." if "42" in tool_outputs(req)[-1] else "missing")
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "6*7?"}])
    rec = Recorder()
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id, event_handler=rec) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert not rec.errors
    assert run.status == "completed"
    events = [e for e in collapse(rec.events)]
    assert events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert events[-1] == "thread.run.completed"
    # The tool_calls step comes (created → completed) before the message_creation step.
    first_step_done = events.index("thread.run.step.completed")
    assert events.index("thread.run.step.created") < first_step_done < events.index("thread.message.created")
    # The SDK reports a finished tool call at step.completed and again at run.completed: dedupe by id.
    (call,) = {c.id: c for c in rec.tool_calls_done}.values()
    assert call.type == "code_interpreter"
    # As OpenAI streams it: the step is created with no calls, then step deltas carry the call (input in
    # fragments, once) and finally its outputs; the SDK builds this snapshot from those deltas alone.
    assert call.code_interpreter.input == "print(6 * 7)"
    assert [o.logs.strip() for o in call.code_interpreter.outputs if o.type == "logs"] == ["42"]
    assert rec.text == "It is 42."


def test_streamed_submit_tool_outputs_resumes_the_run(client, script):
    script.push_function_call("get_weather", {"city": "Rome"})
    script.push_text(lambda req: f"Rome: {tool_outputs(req)[-1]}.")
    a = client.beta.assistants.create(model=script.model, tools=[WEATHER_TOOL])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])

    first = Recorder()
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id, event_handler=first) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert not first.errors
    assert first.events[-1] == "thread.run.requires_action", "the stream closes after requires_action"
    assert run.status == "requires_action"
    (tc,) = run.required_action.submit_tool_outputs.tool_calls
    assert tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == {"city": "Rome"}

    second = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
            run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": tc.id, "output": "25C"}],
            event_handler=second) as stream:
        stream.until_done()
        done = stream.get_final_run()
    assert not second.errors
    assert done.status == "completed"
    events = collapse(second.events)
    assert events[-1] == "thread.run.completed"
    for name in ("thread.message.created", "thread.message.delta", "thread.message.completed"):
        assert name in events
    assert events.index("thread.message.created") < events.index("thread.message.completed")
    assert second.text == "Rome: 25C."
    assert text_of(last_assistant_message(client, t.id)) == "Rome: 25C."


def test_create_and_run_stream(client, script):
    script.push_text("new thread, streamed")
    a = client.beta.assistants.create(model=script.model)
    rec = Recorder()
    with client.beta.threads.create_and_run_stream(
            assistant_id=a.id, thread={"messages": [{"role": "user", "content": "hi"}]}, event_handler=rec) as s:
        s.until_done()
        run = s.get_final_run()
    assert not rec.errors
    assert run.status == "completed"
    # Assumed: create-and-run streams thread.created first, then the plain run order.
    assert collapse(rec.events) in (PLAIN_ORDER, ["thread.created"] + PLAIN_ORDER)
    assert rec.text == "new thread, streamed"


def test_a_failing_upstream_during_a_stream_ends_with_run_failed(client, script):
    script.push_error(500, sticky=True)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    rec = Recorder()
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id, event_handler=rec) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    assert rec.events[-1] == "thread.run.failed"


def test_a_streamed_run_still_reports_token_usage(client, script):
    script.push_text("counted", usage=(40, 2))
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "count"}])
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert (run.usage.prompt_tokens, run.usage.completion_tokens, run.usage.total_tokens) == (40, 2, 42)
    # Usage only arrives on a streamed completion when asked for.
    assert script.requests[-1].get("stream_options", {}).get("include_usage") is True


# ---------------------------------------------------------------------------------------------------------------
# The read cache: a run's messages are seen as they are written, even by a client that read the
# thread mid-run. The change-feed triggers are off here so that only the executor's own cache
# drops count (the feed would otherwise cover for a forgotten one within a millisecond).


@pytest.fixture
def triggers_off(database_url):
    import psycopg

    tables = ("assistants", "threads", "messages")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for t in tables:
            conn.execute(f"ALTER TABLE {t} DISABLE TRIGGER {t}_announce")
        try:
            yield
        finally:
            for t in tables:
                conn.execute(f"ALTER TABLE {t} ENABLE TRIGGER {t}_announce")


def test_a_thread_read_mid_run_shows_the_finished_answer_afterwards(client, script, triggers_off):
    script.push_text("The answer is forty-two.", chunk_delay=0.05)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Answer?"}])
    assert [m.role for m in client.beta.threads.messages.list(t.id).data] == ["user"]

    mid_run = []
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta" and not mid_run:
                mid_run = client.beta.threads.messages.list(t.id).data
                # Read twice: the second read is the one a stale cache would answer.
                mid_run = client.beta.threads.messages.list(t.id).data
    assert [m.role for m in mid_run] == ["assistant", "user"]
    assert mid_run[0].status == "in_progress"

    after = client.beta.threads.messages.list(t.id).data
    assert after[0].status == "completed"
    assert text_of(after[0]) == "The answer is forty-two."
    assert text_of(client.beta.threads.messages.retrieve(after[0].id, thread_id=t.id)) == \
        "The answer is forty-two."
