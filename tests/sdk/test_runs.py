"""Runs: the executor end to end — scripted model turns, real code_interpreter sandbox, function tools.

The upstream model is scripted per test (`script`); assistd offers code_interpreter to it as a function named
`code_interpreter` with one string parameter `code`, runs that code in the thread's sandbox and sends the
output back as a `tool` message. Assumptions about what the model is shown are noted where made.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from helpers import (bad_request, last_assistant_message, not_found, png_bytes, text_of, upload, wait_for_run)
from upstream import message_text, prompt_text, tool_outputs

pytestmark = pytest.mark.runs

POLL_MS = 100  # keep polling tight; the server's openai-poll-after-ms header is tested separately

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def code_assistant(client, script, **kw):
    kw.setdefault("tools", [{"type": "code_interpreter"}])
    return client.beta.assistants.create(model=script.model, **kw)


def run_on(client, assistant, content="Go.", *, thread=None, **kw):
    """Creates a thread (or adds to one) with a user message and runs it to a terminal state."""
    if thread is None:
        thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content=content)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=POLL_MS, **kw)
    return thread, run


def code_steps(client, thread_id, run_id):
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc").data
    return [tc for s in steps if s.type == "tool_calls" for tc in s.step_details.tool_calls
            if tc.type == "code_interpreter"]


def seen(needle: str):
    """A text turn that proves what the model was sent: it answers OK only if `needle` was in the last tool output."""
    return lambda req: f"OK: {needle}" if tool_outputs(req) and needle in tool_outputs(req)[-1] \
        else f"MISSING {needle!r} in {tool_outputs(req)!r}"


# ---------------------------------------------------------------------------------------------------------------
# Plain answers


def test_a_plain_answer_via_create_and_poll(client, script):
    script.push_text("Hello! 2 + 2 = 4.")
    a = client.beta.assistants.create(model=script.model, instructions="Be brief.", temperature=0.3, top_p=0.8)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "What is 2+2?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)

    assert run.status == "completed", run.last_error
    assert run.id.startswith("run_")
    assert run.object == "thread.run"
    assert run.thread_id == t.id
    assert run.assistant_id == a.id
    assert run.model == script.model
    assert run.instructions == "Be brief."
    assert run.temperature == pytest.approx(0.3)
    assert run.top_p == pytest.approx(0.8)
    assert run.last_error is None
    assert run.started_at and run.completed_at and run.completed_at >= run.created_at
    assert run.expires_at is None  # only a non-terminal run has an expiry
    assert (run.usage.prompt_tokens, run.usage.completion_tokens, run.usage.total_tokens) == (11, 7, 18)

    msg = last_assistant_message(client, t.id)
    assert text_of(msg) == "Hello! 2 + 2 = 4."
    assert msg.run_id == run.id
    assert msg.assistant_id == a.id
    assert msg.status == "completed"

    req = script.requests[-1]
    assert req["model"] == script.model
    assert req["temperature"] == pytest.approx(0.3)
    assert req["top_p"] == pytest.approx(0.8)
    assert req["messages"][0]["role"] in ("system", "developer")
    assert "Be brief." in message_text(req["messages"][0])
    assert req["messages"][-1]["role"] == "user"
    assert "What is 2+2?" in prompt_text(req)
    assert script.headers[-1]["authorization"] == "Bearer sk-upstream-secret"

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data
    assert [s.type for s in steps] == ["message_creation"]
    assert steps[0].id.startswith("step_")
    assert steps[0].status == "completed"
    assert steps[0].run_id == run.id
    assert steps[0].step_details.message_creation.message_id == msg.id
    got = client.beta.threads.runs.steps.retrieve(steps[0].id, thread_id=t.id, run_id=run.id)
    assert got.model_dump() == steps[0].model_dump()


def test_the_whole_conversation_is_sent_to_the_model(client, script):
    script.push_text("first answer")
    script.push_text("second answer")
    a = client.beta.assistants.create(model=script.model)
    t, _ = run_on(client, a, "question one")
    _, run = run_on(client, a, "question two", thread=t)
    assert run.status == "completed"
    roles_and_text = [(m["role"], m["content"]) for m in script.requests[-1]["messages"] if m["role"] != "system"]
    texts = [c if isinstance(c, str) else "".join(p.get("text", "") for p in c) for _, c in roles_and_text]
    assert texts[-3:] == ["question one", "first answer", "question two"]
    assert [r for r, _ in roles_and_text][-3:] == ["user", "assistant", "user"]


def test_run_overrides_reach_the_model_and_the_run_object(client, script):
    script.push_text("overridden")
    a = client.beta.assistants.create(model="assistant-model-not-used", instructions="base instructions",
                                      temperature=1.0)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS,
        model=script.model, instructions="override instructions", additional_instructions="Also be kind.",
        additional_messages=[{"role": "user", "content": "extra message"}], temperature=0.2,
        metadata={"trace": "1"},
    )
    assert run.status == "completed", run.last_error
    assert run.model == script.model
    assert run.instructions.startswith("override instructions")
    assert run.temperature == pytest.approx(0.2)
    assert run.metadata == {"trace": "1"}
    text = prompt_text(script.requests[-1])
    assert "override instructions" in text and "Also be kind." in text
    assert "base instructions" not in text
    assert "extra message" in text
    assert script.requests[-1]["temperature"] == pytest.approx(0.2)
    # additional_messages become thread messages.
    assert "extra message" in [text_of(m) for m in client.beta.threads.messages.list(t.id).data]


def test_threads_create_and_run_poll(client, script):
    script.push_text("Created and answered.")
    a = client.beta.assistants.create(model=script.model)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "hello"}], "metadata": {"k": "v"}},
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed", run.last_error
    assert client.beta.threads.retrieve(run.thread_id).metadata == {"k": "v"}
    assert text_of(last_assistant_message(client, run.thread_id)) == "Created and answered."


def test_runs_list_retrieve_and_messages_filtered_by_run(client, script):
    script.push_text("one")
    script.push_text("two")
    a = client.beta.assistants.create(model=script.model)
    t, r1 = run_on(client, a, "q1")
    _, r2 = run_on(client, a, "q2", thread=t)
    runs = client.beta.threads.runs.list(t.id).data
    assert [r.id for r in runs] == [r2.id, r1.id]
    assert client.beta.threads.runs.retrieve(r1.id, thread_id=t.id).model_dump() == r1.model_dump()
    only = client.beta.threads.messages.list(t.id, run_id=r1.id).data
    assert [text_of(m) for m in only] == ["one"]
    assert all(m.run_id == r1.id for m in only)


def test_the_poll_helpers_get_a_poll_interval_hint(client, script):
    script.push_text("x", delay=0.5)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    raw = client.beta.threads.runs.with_raw_response.create(thread_id=t.id, assistant_id=a.id)
    run = raw.parse()
    got = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=t.id)
    assert int(got.headers["openai-poll-after-ms"]) > 0
    wait_for_run(client, t.id, run.id)


# ---------------------------------------------------------------------------------------------------------------
# code_interpreter


def test_the_model_is_offered_code_interpreter_as_a_function(client, script):
    script.push_text("no code needed")
    a = code_assistant(client, script)
    _, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    tools = script.requests[-1]["tools"]
    ci = [t for t in tools if t["type"] == "function" and t["function"]["name"] == "code_interpreter"]
    assert len(ci) == 1
    params = ci[0]["function"]["parameters"]
    assert params["type"] == "object"
    assert params["properties"]["code"]["type"] == "string"
    assert params.get("required") == ["code"]


def test_a_code_call_whose_output_the_model_uses(client, script):
    script.push_tool_call("code_interpreter", {"code": "print(6 * 7)"})
    script.push_text(lambda req: "The answer is 42." if "42" in (tool_outputs(req) or [""])[-1]
                     else f"no output seen: {tool_outputs(req)!r}")
    a = code_assistant(client, script)
    t, run = run_on(client, a, "What is 6 times 7?")
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "The answer is 42."

    # The second request carries the call and its result, linked by id, as the chat API requires.
    req = script.requests[-1]
    call_msgs = [m for m in req["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    tool_msgs = [m for m in req["messages"] if m["role"] == "tool"]
    assert len(call_msgs) == 1 and len(tool_msgs) == 1
    assert tool_msgs[0]["tool_call_id"] == call_msgs[0]["tool_calls"][0]["id"]
    assert json.loads(call_msgs[0]["tool_calls"][0]["function"]["arguments"]) == {"code": "print(6 * 7)"}

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in steps)
    (call,) = steps[0].step_details.tool_calls
    assert call.type == "code_interpreter"
    assert call.id.startswith("call_")
    assert call.code_interpreter.input == "print(6 * 7)"
    assert [(o.type, o.logs.strip()) for o in call.code_interpreter.outputs] == [("logs", "42")]
    assert run.usage.total_tokens == 36  # two model turns of 18 tokens each


def test_a_traceback_is_reported_to_the_model(client, script):
    script.push_tool_call("code_interpreter", {"code": "x = 1\n1 / 0"})
    script.push_text(seen("ZeroDivisionError"))
    a = code_assistant(client, script)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "OK: ZeroDivisionError"
    (call,) = code_steps(client, t.id, run.id)
    logs = "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")
    assert "ZeroDivisionError" in logs and "division by zero" in logs


def test_two_code_calls_in_one_run_share_state(client, script):
    script.push_tool_call("code_interpreter", {"code": "x = 20"})
    script.push_tool_call("code_interpreter", {"code": "print(x + 22)"})
    script.push_text(seen("42"))
    a = code_assistant(client, script)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "OK: 42"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    assert [c.code_interpreter.input for c in code_steps(client, t.id, run.id)] == ["x = 20", "print(x + 22)"]


def test_parallel_code_calls_in_one_turn_each_get_a_result(client, script):
    script.push_tool_calls([("code_interpreter", {"code": "print('alpha')"}),
                            ("code_interpreter", {"code": "print('beta')"})])

    def both(req):
        outs = tool_outputs(req)[-2:]
        return "both" if len(outs) == 2 and "alpha" in outs[0] and "beta" in outs[1] else f"got {outs!r}"

    script.push_text(both)
    a = code_assistant(client, script)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "both"
    calls = code_steps(client, t.id, run.id)
    assert [c.code_interpreter.input for c in calls] == ["print('alpha')", "print('beta')"]


def test_variables_and_files_persist_between_runs_of_a_thread_but_not_across_threads(client, script):
    script.push_tool_call("code_interpreter",
                          {"code": "secret = 1234\nopen('/mnt/data/keep.txt', 'w').write('kept')"})
    script.push_text("stored")
    script.push_tool_call("code_interpreter", {"code": "print(secret, open('/mnt/data/keep.txt').read())"})
    script.push_text(seen("1234 kept"))
    script.push_tool_call("code_interpreter",
                          {"code": "import os\nprint('secret' in globals(), os.path.exists('/mnt/data/keep.txt'))"})
    script.push_text(seen("False False"))
    a = code_assistant(client, script)

    t, r1 = run_on(client, a, "remember")
    assert r1.status == "completed", r1.last_error
    _, r2 = run_on(client, a, "recall", thread=t)
    assert r2.status == "completed", r2.last_error
    assert text_of(last_assistant_message(client, t.id)) == "OK: 1234 kept"

    other, r3 = run_on(client, a, "peek")
    assert r3.status == "completed", r3.last_error
    assert text_of(last_assistant_message(client, other.id)) == "OK: False False"


FIND_CSV = """
import glob, os
import pandas as pd
hits = [p for p in glob.glob('/mnt/data/**', recursive=True)
        if os.path.isfile(p) and open(p, 'rb').read(9) == b'city,temp']
print(len(hits), int(pd.read_csv(hits[0])['temp'].sum()))
"""
CSV = b"city,temp\nParis,21\nOslo,9\nRome,25\n"


def test_a_csv_attachment_is_readable_by_the_code(client, script):
    f = upload(client, "temps.csv", CSV)
    script.push_tool_call("code_interpreter", {"code": FIND_CSV})
    script.push_text(seen("1 55"))
    a = code_assistant(client, script)
    t = client.beta.threads.create()
    client.beta.threads.messages.create(t.id, role="user", content="Sum the temperatures.",
                                        attachments=[{"file_id": f.id, "tools": [{"type": "code_interpreter"}]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "OK: 1 55"
    # Assumed: the model is told where the file is (its path under /mnt/data, its id or its name).
    first = prompt_text(script.requests[0])
    assert "/mnt/data" in first or f.id in first or "temps.csv" in first


def test_files_in_the_assistants_tool_resources_are_readable_by_the_code(client, script):
    f = upload(client, "temps.csv", CSV)
    script.push_tool_call("code_interpreter", {"code": FIND_CSV})
    script.push_text(seen("1 55"))
    a = code_assistant(client, script, tool_resources={"code_interpreter": {"file_ids": [f.id]}})
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "OK: 1 55"


CHART = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9])
plt.title('squares')
plt.show()
"""


def test_a_chart_comes_back_as_an_image_file_and_a_step_image_output(client, script):
    script.push_tool_call("code_interpreter", {"code": CHART})
    script.push_text("Here is the chart.")
    a = code_assistant(client, script)
    t, run = run_on(client, a, "Plot squares.")
    assert run.status == "completed", run.last_error

    (call,) = code_steps(client, t.id, run.id)
    images = [o for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    file_id = images[0].image.file_id
    assert file_id.startswith("file-")
    meta = client.files.retrieve(file_id)
    assert meta.purpose == "assistants_output"
    assert client.files.content(file_id).content.startswith(b"\x89PNG\r\n\x1a\n")

    parts = [p for m in client.beta.threads.messages.list(t.id, run_id=run.id).data for p in m.content]
    assert [p.image_file.file_id for p in parts if p.type == "image_file"] == [file_id]
    assert "Here is the chart." in [p.text.value for p in parts if p.type == "text"]


WRITE_CSV = """
import pandas as pd
pd.DataFrame({'n': [1, 2, 3]}).to_csv('/mnt/data/out.csv', index=False)
print('saved')
"""


def test_a_written_csv_comes_back_through_a_file_path_annotation(client, script):
    reply = "Done. [Download out.csv](sandbox:/mnt/data/out.csv) now."
    script.push_tool_call("code_interpreter", {"code": WRITE_CSV})
    script.push_text(reply)
    a = code_assistant(client, script)
    t, run = run_on(client, a, "Write a CSV.")
    assert run.status == "completed", run.last_error

    msg = last_assistant_message(client, t.id)
    (part,) = [p for p in msg.content if p.type == "text"]
    assert part.text.value == reply
    (ann,) = part.text.annotations
    link = "sandbox:/mnt/data/out.csv"
    assert ann.type == "file_path"
    assert ann.text == link
    assert ann.start_index == reply.index(link)
    assert ann.end_index == reply.index(link) + len(link)
    meta = client.files.retrieve(ann.file_path.file_id)
    assert meta.purpose == "assistants_output"
    assert meta.filename.endswith("out.csv")
    assert client.files.content(ann.file_path.file_id).content == b"n\n1\n2\n3\n"


# ---------------------------------------------------------------------------------------------------------------
# Function tools


def test_a_function_tool_goes_through_requires_action_and_submit_tool_outputs(client, script):
    script.push_function_call("get_weather", {"city": "Paris"})
    script.push_text(lambda req: f"It is {tool_outputs(req)[-1]} in Paris.")
    a = client.beta.assistants.create(model=script.model, tools=[WEATHER_TOOL])
    t, run = run_on(client, a, "Weather in Paris?")

    assert run.status == "requires_action"
    assert run.required_action.type == "submit_tool_outputs"
    (tc,) = run.required_action.submit_tool_outputs.tool_calls
    assert tc.type == "function"
    assert tc.id.startswith("call_")
    assert tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == {"city": "Paris"}
    assert run.expires_at and run.expires_at > time.time()

    offered = [x["function"] for x in script.requests[0]["tools"] if x["type"] == "function"]
    assert {"name": "get_weather", "description": "Current weather for a city",
            "parameters": WEATHER_TOOL["function"]["parameters"]} in [
        {k: f.get(k) for k in ("name", "description", "parameters")} for f in offered]

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": tc.id, "output": "22C"}],
        poll_interval_ms=POLL_MS)
    assert done.status == "completed", done.last_error
    assert done.required_action is None
    assert text_of(last_assistant_message(client, t.id)) == "It is 22C in Paris."

    req = script.requests[-1]
    call_msg = next(m for m in req["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
    tool_msg = next(m for m in req["messages"] if m["role"] == "tool")
    assert tool_msg["tool_call_id"] == call_msg["tool_calls"][0]["id"]

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    (fn,) = steps[0].step_details.tool_calls
    assert fn.type == "function"
    assert fn.id == tc.id
    assert fn.function.output == "22C"


def test_submit_tool_outputs_rejects_wrong_ids_and_runs_not_waiting(client, script):
    script.push_function_call("get_weather", {"city": "Oslo"})
    script.push_text("fine")
    a = client.beta.assistants.create(model=script.model, tools=[WEATHER_TOOL])
    t, run = run_on(client, a)
    assert run.status == "requires_action"
    with bad_request():
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=t.id,
                                                      tool_outputs=[{"tool_call_id": "call_wrong", "output": "x"}])
    with bad_request():  # every pending call must get an output
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=t.id, tool_outputs=[])
    tc = run.required_action.submit_tool_outputs.tool_calls[0]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": tc.id, "output": "5C"}],
        poll_interval_ms=POLL_MS)
    assert done.status == "completed"
    with bad_request():
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=t.id,
                                                      tool_outputs=[{"tool_call_id": tc.id, "output": "again"}])


# ---------------------------------------------------------------------------------------------------------------
# Cancel, concurrency, upstream failures


def test_cancel_while_code_runs_then_the_thread_is_still_usable(client, script):
    script.push_tool_call("code_interpreter", {"code": "import time\ntime.sleep(30)\nprint('woke')"})
    script.push_tool_call("code_interpreter", {"code": "print('alive')"})
    script.push_text(seen("alive"))
    a = code_assistant(client, script)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "sleep"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)

    deadline = time.monotonic() + 30
    while not code_steps(client, t.id, run.id):
        assert time.monotonic() < deadline, "the code step never started"
        time.sleep(0.1)
    time.sleep(0.5)
    started = time.monotonic()
    c = client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    assert c.status in ("cancelling", "cancelled")
    final = wait_for_run(client, t.id, run.id, timeout=20)
    assert final.status == "cancelled"
    assert final.cancelled_at
    assert time.monotonic() - started < 15, "cancel waited for the sleep to finish"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data
    assert all(s.status in ("cancelled", "completed") for s in steps), [s.status for s in steps]

    with bad_request(message="Cannot cancel run with status 'cancelled'."):
        client.beta.threads.runs.cancel(run.id, thread_id=t.id)

    _, again = run_on(client, a, "are you there?", thread=t)
    assert again.status == "completed", again.last_error
    assert text_of(last_assistant_message(client, t.id)) == "OK: alive"


def test_a_thread_with_an_active_run_refuses_a_second_run_and_new_messages(client, script):
    script.push_text("slow answer", delay=4)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    with bad_request(message=f"Thread {t.id} already has an active run {run.id}."):
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    with bad_request(message=f"Can't add messages to {t.id} while a run {run.id} is active."):
        client.beta.threads.messages.create(t.id, role="user", content="too soon")
    assert wait_for_run(client, t.id, run.id).status == "completed"
    client.beta.threads.messages.create(t.id, role="user", content="now it is fine")


def test_cancelling_a_completed_run_is_400(client, script):
    script.push_text("done")
    a = client.beta.assistants.create(model=script.model)
    t, run = run_on(client, a)
    assert run.status == "completed"
    with bad_request(message="Cannot cancel run with status 'completed'."):
        client.beta.threads.runs.cancel(run.id, thread_id=t.id)


def test_upstream_429_fails_the_run_with_rate_limit_exceeded(client, script):
    script.push_error(429, sticky=True)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    final = wait_for_run(client, t.id, run.id, timeout=90)
    assert final.status == "failed"
    assert final.last_error.code == "rate_limit_exceeded"
    assert final.last_error.message
    assert final.failed_at


def test_upstream_500_fails_the_run_with_server_error(client, script):
    script.push_error(500, sticky=True)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    final = wait_for_run(client, t.id, run.id, timeout=90)
    assert final.status == "failed"
    assert final.last_error.code == "server_error"
    # The thread is usable after a failed run.
    script.turns.clear()
    script.push_text("recovered")
    _, ok = run_on(client, a, "again", thread=t)
    assert ok.status == "completed", ok.last_error


# ---------------------------------------------------------------------------------------------------------------
# Unknown ids and isolation on the run routes


def test_unknown_ids_on_run_routes_are_404(client, other_client, script):
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create()
    with not_found(message="No assistant found with id 'asst_nope'."):
        client.beta.threads.runs.create(thread_id=t.id, assistant_id="asst_nope")
    with not_found(message="No thread found with id 'thread_nope'."):
        client.beta.threads.runs.create(thread_id="thread_nope", assistant_id=a.id)
    with not_found(message="No run found with id 'run_nope'."):
        client.beta.threads.runs.retrieve("run_nope", thread_id=t.id)
    with not_found(message="No run found with id 'run_nope'."):
        client.beta.threads.runs.cancel("run_nope", thread_id=t.id)
    with not_found():
        client.beta.threads.runs.steps.list("run_nope", thread_id=t.id)
    with not_found():
        other_client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    assert client.beta.threads.runs.list(t.id).data == []


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/threads/thread_x/runs"), ("GET", "/v1/threads/thread_x/runs"), ("POST", "/v1/threads/runs"),
    ("GET", "/v1/threads/thread_x/runs/run_x/steps"), ("POST", "/v1/threads/thread_x/runs/run_x/cancel"),
])
def test_every_run_route_needs_a_key(server, method, path):
    import httpx
    r = httpx.request(method, server + path, json={} if method == "POST" else None)
    assert r.status_code == 401, (method, path, r.status_code, r.text)


def test_a_run_with_an_invalid_body_is_400(client, script):
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create()
    with bad_request(param="temperature"):
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id, temperature=5)
    with bad_request(param="assistant_id"):
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=None)
    with bad_request(param="truncation_strategy"):  # last_messages has minimum 1 in the spec
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id,
                                        truncation_strategy={"type": "last_messages", "last_messages": 0})
    with bad_request(param="truncation_strategy"):  # found by schemathesis: accepted, then echoed, with type auto
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id,
                                        truncation_strategy={"type": "auto", "last_messages": 0})
    assert client.beta.threads.runs.list(t.id).data == []


# ---------------------------------------------------------------------------------------------------------------
# What reaches the model, run bookkeeping, and the sandbox's boundaries


def test_tool_choice_and_response_format_reach_the_model(client, script):
    script.push_function_call("get_weather", {"city": "Lima"})
    script.push_text("{}")
    script.push_text("{}")
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}, WEATHER_TOOL],
                                      response_format={"type": "json_object"})
    t, run = run_on(client, a, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert run.status == "requires_action"
    assert run.tool_choice.type == "function" and run.tool_choice.function.name == "get_weather"
    req = script.requests[-1]
    assert req["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert req["response_format"] == {"type": "json_object"}
    client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    assert wait_for_run(client, t.id, run.id, statuses={"cancelled"}).status == "cancelled"

    _, run = run_on(client, a, tool_choice="none", thread=t)
    assert run.status == "completed", run.last_error
    assert script.requests[-1]["tool_choice"] == "none"
    # Assumed: forcing code_interpreter maps onto the function it is offered as.
    _, run = run_on(client, a, tool_choice={"type": "code_interpreter"}, thread=t)
    assert script.requests[-1]["tool_choice"] == {"type": "function", "function": {"name": "code_interpreter"}}


def test_cancelling_a_run_that_waits_for_tool_outputs(client, script):
    script.push_function_call("get_weather", {"city": "Kyiv"})
    a = client.beta.assistants.create(model=script.model, tools=[WEATHER_TOOL])
    t, run = run_on(client, a)
    assert run.status == "requires_action"
    client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    final = wait_for_run(client, t.id, run.id, statuses={"cancelled"}, timeout=10)
    assert final.required_action is None
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=t.id).data
    assert [(s.type, s.status) for s in steps] == [("tool_calls", "cancelled")]
    assert steps[0].cancelled_at is not None
    client.beta.threads.messages.create(t.id, role="user", content="the thread is free again")


def test_a_runs_metadata_can_be_modified(client, script):
    script.push_text("meta")
    a = client.beta.assistants.create(model=script.model)
    t, run = run_on(client, a, metadata={"a": "1"})
    u = client.beta.threads.runs.update(run.id, thread_id=t.id, metadata={"a": "2", "b": "3"})
    assert u.metadata == {"a": "2", "b": "3"}
    assert u.status == "completed"
    assert client.beta.threads.runs.retrieve(run.id, thread_id=t.id).metadata == {"a": "2", "b": "3"}


def test_huge_output_is_truncated_for_the_model_and_the_step(client, script):
    script.push_tool_call("code_interpreter", {"code": "print('x' * 5_000_000)\nprint('tail')"})
    script.push_text(lambda req: f"len={len(tool_outputs(req)[-1])}")
    a = code_assistant(client, script)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    seen_len = int(text_of(last_assistant_message(client, t.id)).split("=")[1])
    assert 0 < seen_len < 1_000_000, "the model must not be sent megabytes of output"
    (call,) = code_steps(client, t.id, run.id)
    logs = "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")
    assert len(logs) < 1_000_000
    assert "truncated" in logs


def test_the_sandbox_runs_as_an_unprivileged_user_without_a_network(client, script):
    code = "import os\nprint(os.getuid(), sorted(os.listdir('/sys/class/net')))"
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text(lambda req: tool_outputs(req)[-1])
    a = code_assistant(client, script)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    out = text_of(last_assistant_message(client, t.id))
    uid, _, nets = out.partition(" ")
    assert uid.strip() != "0", out
    assert nets.strip() == "['lo']", f"the sandbox should have no network interface but loopback: {out}"


def test_runs_on_different_threads_execute_concurrently(client, upstream):
    # Each cell reports when it started and ended its sleep; runs that execute at the same time
    # overlap. This checks overlap, not wall-clock speed, so a loaded machine cannot fail it.
    from concurrent.futures import ThreadPoolExecutor
    code = "import time\nstart = time.time()\ntime.sleep(3)\nprint(f'{start} {time.time()}')"
    scripts = []
    for _ in range(3):
        s = upstream.script()
        s.push_tool_call("code_interpreter", {"code": code})
        s.push_text(lambda req: tool_outputs(req)[-1].strip())
        scripts.append(s)
    assistants = [code_assistant(client, s) for s in scripts]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda a: run_on(client, a), assistants))
    spans = []
    for t, run in results:
        assert run.status == "completed", run.last_error
        start, end = map(float, text_of(last_assistant_message(client, t.id)).split())
        spans.append((start, end))
    latest_start = max(s for s, _ in spans)
    earliest_end = min(e for _, e in spans)
    assert latest_start < earliest_end, f"the three cells never ran at the same time: {spans}"


def test_code_that_never_finishes_times_out_and_the_sandbox_recovers(client, script):
    # conftest sets ASSISTD_SANDBOX_EXEC_TIMEOUT=8.
    script.push_tool_call("code_interpreter", {"code": "while True:\n    pass"})
    script.push_tool_call("code_interpreter", {"code": "print('after')"})
    script.push_text(lambda req: "|".join(tool_outputs(req)))
    a = code_assistant(client, script)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    told = text_of(last_assistant_message(client, t.id))
    first, _, second = told.partition("|")
    assert "timeout" in first.lower() or "timed out" in first.lower(), told
    assert "after" in second, told


def test_an_upstream_429_that_clears_is_retried_and_the_run_completes(client, script):
    script.push_error(429)
    script.push_text("made it")
    a = client.beta.assistants.create(model=script.model)
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    assert text_of(last_assistant_message(client, t.id)) == "made it"
    assert len(script.requests) == 2


def test_a_file_rewritten_by_a_later_run_comes_back_as_a_new_file(client, script):
    for content in ("first", "second"):
        script.push_tool_call("code_interpreter", {"code": f"open('/mnt/data/v.txt', 'w').write({content!r})"})
        script.push_text("See [v.txt](sandbox:/mnt/data/v.txt).")
    a = code_assistant(client, script)
    t, _ = run_on(client, a)
    first = last_assistant_message(client, t.id).content[0].text.annotations[0].file_path.file_id
    run_on(client, a, thread=t)
    second = last_assistant_message(client, t.id).content[0].text.annotations[0].file_path.file_id
    assert first != second
    assert client.files.content(first).content == b"first"
    assert client.files.content(second).content == b"second"


# ---------------------------------------------------------------------------------------------------------------
# Budgets and truncation


def test_a_run_over_its_completion_budget_ends_incomplete(client, script):
    script.push_text("a long answer", usage=(50, 300))
    a = client.beta.assistants.create(model=script.model)
    t, run = run_on(client, a, max_completion_tokens=256)
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 300
    assert script.requests[-1]["max_completion_tokens"] == 256
    message = last_assistant_message(client, t.id)
    assert message.status == "incomplete" and text_of(message) == "a long answer"
    # The thread is free again.
    client.beta.threads.messages.create(t.id, role="user", content="shorter, please")


def test_a_run_over_its_prompt_budget_ends_incomplete(client, script):
    script.push_text("fine", usage=(1000, 5))
    a = client.beta.assistants.create(model=script.model)
    _, run = run_on(client, a, max_prompt_tokens=256)
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_prompt_tokens"


def test_truncation_to_the_last_messages_limits_what_the_model_sees(client, script):
    script.push_text("ok")
    a = client.beta.assistants.create(model=script.model, instructions="be brief")
    t = client.beta.threads.create(messages=[{"role": "user", "content": f"message {i}"} for i in range(4)])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS,
                                                   truncation_strategy={"type": "last_messages", "last_messages": 2})
    assert run.status == "completed"
    assert run.truncation_strategy.type == "last_messages" and run.truncation_strategy.last_messages == 2
    sent = script.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "be brief"}
    assert [m["content"] for m in sent[1:]] == ["message 2", "message 3"]


def test_auto_truncation_keeps_the_newest_messages_that_fit_max_prompt_tokens(client, script):
    script.push_text("ok", usage=(400, 2))
    a = client.beta.assistants.create(model=script.model, instructions="be brief")
    # About 100 tokens each by the server's deliberately high count (a token per 3 bytes).
    t = client.beta.threads.create(messages=[{"role": "user", "content": f"message {i} " + "x" * 290}
                                             for i in range(10)])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS,
                                                   max_prompt_tokens=500)
    assert run.status == "completed", run.last_error
    assert run.truncation_strategy.type == "auto"
    sent = script.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "be brief"}
    kept = [m["content"].split(" ")[1] for m in sent[1:]]
    assert kept == ["6", "7", "8", "9"], kept  # the newest, oldest first, within 500

    # Without a budget the whole thread goes.
    script.push_text("ok")
    t2 = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i} " + "x" * 290} for i in range(10)])
    client.beta.threads.runs.create_and_poll(thread_id=t2.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert len(script.requests[-1]["messages"]) == 11


def test_cancelling_while_the_answer_streams_leaves_the_message_incomplete(client, script):
    script.push_text("word " * 200, chunk_delay=0.05)
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    deadline = time.monotonic() + 30
    while not [m for m in client.beta.threads.messages.list(t.id).data if m.role == "assistant"]:
        assert time.monotonic() < deadline, "the answer never started"
        time.sleep(0.05)
    client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    run = wait_for_run(client, t.id, run.id, statuses={"cancelled"})
    message = last_assistant_message(client, t.id)
    assert message.status == "incomplete"
    assert message.incomplete_details.reason == "run_cancelled"
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=t.id).data
    assert [s.status for s in steps] == ["cancelled"]


# ---------------------------------------------------------------------------------------------------------------
# Images in user messages


def test_images_in_a_user_message_reach_the_model_as_image_input(client, script):
    script.push_text("A red square and a cat.")
    png = png_bytes()
    img = upload(client, "red.png", png, purpose="vision")
    a = client.beta.assistants.create(model=script.model)
    t = client.beta.threads.create(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_file", "image_file": {"file_id": img.id, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error

    user = [m for m in script.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert user["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode(),
                                            "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "auto"}},
    ]
    assert text_of(last_assistant_message(client, t.id)) == "A red square and a cat."


def test_reasoning_effort_goes_to_the_model_from_the_run_or_else_the_assistant(client, script):
    a = client.beta.assistants.create(model=script.model, reasoning_effort="low")
    script.push_text("one")
    t, run = run_on(client, a)
    assert run.status == "completed", run.last_error
    assert script.requests[-1]["reasoning_effort"] == "low"

    script.push_text("two")
    _, run = run_on(client, a, thread=t, reasoning_effort="high")
    assert run.status == "completed", run.last_error
    assert script.requests[-1]["reasoning_effort"] == "high"

    plain = client.beta.assistants.create(model=script.model)
    script.push_text("three")
    run_on(client, plain)
    assert "reasoning_effort" not in script.requests[-1]
