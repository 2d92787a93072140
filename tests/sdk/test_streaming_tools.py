"""Streamed tool calls: the code (and function arguments) arrive in run-step deltas while the model writes them.

The handler is written like the one in OpenAI's Assistants streaming docs: `on_tool_call_created`, then
`on_tool_call_delta` printing `delta.code_interpreter.input`, then the logs. The SDK treats the first delta of
a call's index as its creation, so the code must come in the deltas after it, piece by piece.
"""

from __future__ import annotations

import json

import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from helpers import text_of
from upstream import tool_outputs

pytestmark = pytest.mark.runs

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}

# Every escape a JSON encoder writes, and characters that json.dumps sends as \u escapes: é as \u00e9 and
# the emoji as a surrogate pair \ud83d\ude00. With 3-character chunks each of them is cut somewhere.
TRICKY_CODE = (
    'word = "caf\u00e9 \U0001F600"\n'
    'print("tab:\\t|", "quote:\\"", "backslash:\\\\", word)\n'
    "print(len(word), 'path/to/x')\n"
)


class DocsHandler(AssistantEventHandler):
    """OpenAI's streaming docs handler, recording instead of printing."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.created: list = []
        self.inputs: dict[int, list[str]] = {}
        self.arguments: dict[int, list[str]] = {}
        self.logs: list[str] = []
        self.done: list = []
        self.errors: list[Exception] = []

    @override
    def on_event(self, event) -> None:
        self.events.append(event.event)

    @override
    def on_tool_call_created(self, tool_call) -> None:
        self.created.append(tool_call)

    @override
    def on_tool_call_delta(self, delta, snapshot) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter:
            if delta.code_interpreter.input:
                self.inputs.setdefault(delta.index, []).append(delta.code_interpreter.input)
            for output in delta.code_interpreter.outputs or []:
                if output.type == "logs":
                    self.logs.append(output.logs)
        if delta.type == "function" and delta.function and delta.function.arguments:
            self.arguments.setdefault(delta.index, []).append(delta.function.arguments)

    @override
    def on_tool_call_done(self, tool_call) -> None:
        self.done.append(tool_call)

    @override
    def on_exception(self, exception: Exception) -> None:
        self.errors.append(exception)

    def done_by_id(self) -> dict:
        # The SDK reports a finished call at step.completed and again at the run's end.
        return {c.id: c for c in self.done}


def stream_run(client, thread_id: str, assistant_id: str) -> tuple[DocsHandler, object]:
    handler = DocsHandler()
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id,
                                         event_handler=handler) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert not handler.errors, handler.errors
    return handler, run


def tool_step(client, thread_id: str, run_id: str):
    steps = client.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id, order="asc").data
    (step,) = [s for s in steps if s.type == "tool_calls"]
    return step


def code_run(client, script, *, tools=({"type": "code_interpreter"},)):
    a = client.beta.assistants.create(model=script.model, tools=list(tools))
    t = client.beta.threads.create(messages=[{"role": "user", "content": "run it"}])
    return a, t


def test_the_code_streams_in_pieces_through_on_tool_call_delta_and_equals_what_ran(client, script):
    script.push_tool_call("code_interpreter", {"code": TRICKY_CODE}, arg_chunk=3)
    script.push_text(lambda req: "ran: " + tool_outputs(req)[-1].strip())
    a, t = code_run(client, script)
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "completed"

    (created,) = handler.created
    assert created.type == "code_interpreter"
    assert created.code_interpreter.input == "", "the call is announced before its code"
    pieces = handler.inputs[0]
    assert len(pieces) > 10, pieces
    assert "".join(pieces) == TRICKY_CODE

    # What was streamed is what the step stored and what ran, byte for byte.
    (call,) = tool_step(client, t.id, run.id).step_details.tool_calls
    assert call.code_interpreter.input == TRICKY_CODE
    expected_logs = 'tab:\t| quote:" backslash:\\ caf\u00e9 \U0001F600\n6 path/to/x\n'
    assert [o.logs for o in call.code_interpreter.outputs if o.type == "logs"] == [expected_logs]
    # The logs follow the code, in a later delta; the finished call has both.
    assert handler.logs == [expected_logs]
    (done,) = handler.done_by_id().values()
    assert done.id == created.id
    assert done.code_interpreter.input == TRICKY_CODE
    assert [o.logs for o in done.code_interpreter.outputs if o.type == "logs"] == [expected_logs]
    assert tool_outputs(script.requests[-1])[-1] == expected_logs


def test_arguments_sent_whole_in_the_naming_chunk_still_reach_on_tool_call_delta(client, script):
    script.push_tool_call("code_interpreter", {"code": "print(3 * 14)"}, args_with_name=True)
    script.push_text("done")
    a, t = code_run(client, script)
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "completed"
    assert handler.created[0].code_interpreter.input == ""
    assert "".join(handler.inputs[0]) == "print(3 * 14)"
    assert handler.logs == ["42\n"]


def test_raw_code_arguments_stream_as_the_code(client, script):
    raw = "x = 5\nprint(x * x)"
    script.push_tool_call("code_interpreter", raw, arg_chunk=2)
    script.push_text("done")
    a, t = code_run(client, script)
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "completed"
    assert len(handler.inputs[0]) > 1
    assert "".join(handler.inputs[0]) == raw
    assert tool_step(client, t.id, run.id).step_details.tool_calls[0].code_interpreter.input == raw
    assert handler.logs == ["25\n"]


def test_code_arguments_that_are_broken_json_are_not_run_and_the_model_is_told(client, script):
    script.push_tool_call("code_interpreter", '{"code": "open(\'/mnt/data/ran.txt\', \'w\').write(\'x\')', arg_chunk=5)
    script.push_text(lambda req: "told: " + tool_outputs(req)[-1])
    script.push_tool_call("code_interpreter", {"code": "import os; print(os.path.exists('/mnt/data/ran.txt'))"})
    script.push_text("checked")
    a, t = code_run(client, script)
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "completed", run.last_error
    told = tool_outputs(script.requests[1])[-1]
    assert "not valid JSON" in told and "code_interpreter" in told
    # The step shows the same explanation, and the code it streamed is what it recorded.
    (call,) = tool_step(client, t.id, run.id).step_details.tool_calls
    assert call.code_interpreter.input == "open('/mnt/data/ran.txt', 'w').write('x')"
    assert "".join(handler.inputs[0]) == call.code_interpreter.input
    assert [o.logs for o in call.code_interpreter.outputs] == [told]
    # Nothing ran: a later run in the same sandbox finds no file.
    run2 = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run2.status == "completed"
    assert tool_outputs(script.requests[3])[-1].strip() == "False"


def test_function_arguments_stream_raw_and_add_up_to_the_required_action(client, script):
    arguments = {"city": "S\u00e3o Paulo \"SP\"", "units": "celsius"}
    script.push_function_call("get_weather", arguments, arg_chunk=4)
    a = client.beta.assistants.create(model=script.model, tools=[WEATHER_TOOL])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "requires_action"
    (created,) = handler.created
    assert created.type == "function" and created.function.name == "get_weather"
    assert created.function.arguments == ""
    pieces = handler.arguments[0]
    assert len(pieces) > 5
    (required,) = run.required_action.submit_tool_outputs.tool_calls
    assert "".join(pieces) == required.function.arguments
    assert json.loads(required.function.arguments) == arguments
    assert required.id == created.id


def test_two_calls_in_one_turn_keep_their_own_index(client, script):
    script.push_tool_calls([("code_interpreter", {"code": "print('first')"}),
                            ("code_interpreter", {"code": "print('second')"})], arg_chunk=4)
    script.push_text("both ran")
    a, t = code_run(client, script)
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "completed"
    assert [c.type for c in handler.created] == ["code_interpreter", "code_interpreter"]
    assert len({c.id for c in handler.created}) == 2
    assert "".join(handler.inputs[0]) == "print('first')"
    assert "".join(handler.inputs[1]) == "print('second')"
    stored = tool_step(client, t.id, run.id).step_details.tool_calls
    assert [c.code_interpreter.input for c in stored] == ["print('first')", "print('second')"]
    assert [c.id for c in stored] == [c.id for c in handler.created]
    assert sorted(handler.logs) == ["first\n", "second\n"]


def test_text_before_a_tool_call_is_a_message_finished_before_the_call_streams(client, script):
    script.push_tool_call("code_interpreter", {"code": "print(2 + 2)"}, text="Let me compute that.")
    script.push_text("It is 4.")
    a, t = code_run(client, script)
    handler, run = stream_run(client, t.id, a.id)
    assert run.status == "completed"
    ev = handler.events
    first_done = ev.index("thread.message.completed")
    assert first_done < ev.index("thread.run.step.delta"), "the message closes before the call begins"
    messages = client.beta.threads.messages.list(thread_id=t.id, order="asc").data
    assert [text_of(m) for m in messages if m.role == "assistant"] == ["Let me compute that.", "It is 4."]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["message_creation", "tool_calls", "message_creation"]
    assert "".join(handler.inputs[0]) == "print(2 + 2)"


def test_a_polled_run_stores_the_same_step_as_a_streamed_one(client, script):
    script.push_tool_call("code_interpreter", {"code": TRICKY_CODE}, arg_chunk=3)
    script.push_text("ok")
    a, t = code_run(client, script)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "completed"
    (call,) = tool_step(client, t.id, run.id).step_details.tool_calls
    assert call.code_interpreter.input == TRICKY_CODE
    assert "caf\u00e9 \U0001F600" in call.code_interpreter.outputs[0].logs


def test_the_raw_stream_of_a_code_run_has_only_the_assistants_events(client, script, http):
    script.push_tool_call("code_interpreter", {"code": "print(6 * 7)"})
    script.push_text("42")
    a, t = code_run(client, script)
    with http.stream("POST", f"/threads/{t.id}/runs", json={"assistant_id": a.id, "stream": True}) as r:
        assert r.status_code == 200
        names = [line.split(":", 1)[1].strip() for line in r.iter_lines() if line.startswith("event:")]
    assert "thread.run.step.delta" in names and names[-1] == "done"
    assert all(n.startswith("thread.") or n == "done" for n in names), names
