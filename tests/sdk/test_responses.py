"""The Responses API over the same executor and sandboxes: through the official SDK's `client.responses`.

Each response is a run of the run loop on a backing thread; these tests check what a Responses client sees:
the object's shape, output items, a function-call round trip with previous_response_id, code with state kept
across responses, `client.responses.stream()` with its strict event order, background + cancel, input_items
paging, and bad input refused with nothing stored.
"""

from __future__ import annotations

import time

import openai
import pytest

from helpers import bad_request, not_found
from upstream import prompt_text, tool_outputs

pytestmark = pytest.mark.runs

CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False}


def unparsed(value):
    """A stream helper's final response without the `parsed` fields it adds."""
    if isinstance(value, dict):
        return {k: unparsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [unparsed(v) for v in value]
    return value


def test_plain_text_response(client, script):
    script.push_text("Hello from the model.", usage=(11, 4))
    r = client.responses.create(model=script.model, input="Say hello", instructions="Be brief.",
                                metadata={"k": "v"})
    assert r.id.startswith("resp_")
    assert r.object == "response" and r.status == "completed"
    assert r.output_text == "Hello from the model."
    assert [i.type for i in r.output] == ["message"]
    assert r.output[0].role == "assistant" and r.output[0].content[0].type == "output_text"
    assert r.instructions == "Be brief." and r.metadata == {"k": "v"} and r.model == script.model
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 4, 15)
    sent = script.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "Say hello" in prompt_text(sent)

    again = client.responses.retrieve(r.id)
    assert again.model_dump() == r.model_dump()
    items = client.responses.input_items.list(r.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text == "Say hello"


def test_previous_response_id_carries_the_conversation(client, script):
    script.push_text("Noted: blue.")
    first = client.responses.create(model=script.model, input="My colour is blue.")
    script.push_text(lambda req: "You said blue." if "My colour is blue." in prompt_text(req) else "No idea.")
    second = client.responses.create(model=script.model, input="What is my colour?",
                                     previous_response_id=first.id)
    assert second.output_text == "You said blue."
    assert second.previous_response_id == first.id


def test_function_call_round_trip(client, script):
    script.push_function_call("get_weather", {"city": "Paris"}, call_id="call_w1")
    r = client.responses.create(model=script.model, input="Weather in Paris?", tools=[WEATHER])
    assert r.status == "completed"
    calls = [i for i in r.output if i.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].call_id == "call_w1" and calls[0].name == "get_weather"
    assert calls[0].arguments == '{"city": "Paris"}' or calls[0].arguments.replace(" ", "") == '{"city":"Paris"}'

    script.push_text(lambda req: f"It is {tool_outputs(req)[-1]}.")
    follow = client.responses.create(
        model=script.model, previous_response_id=r.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny"}])
    assert follow.status == "completed"
    assert follow.output_text == "It is sunny."
    assert [i.type for i in follow.output] == ["message"]
    # The first response keeps its own output.
    assert [i.type for i in client.responses.retrieve(r.id).output] == ["function_call"]


def test_function_output_for_an_unknown_call_is_refused(client, script):
    script.push_function_call("get_weather", {"city": "Oslo"}, call_id="call_w2")
    r = client.responses.create(model=script.model, input="Weather in Oslo?", tools=[WEATHER])
    with bad_request(param="input"):
        client.responses.create(model=script.model, previous_response_id=r.id, tools=[WEATHER],
                                input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}])
    script.push_text("Cold.")
    ok = client.responses.create(model=script.model, previous_response_id=r.id, tools=[WEATHER],
                                 input=[{"type": "function_call_output", "call_id": "call_w2", "output": "-5"}])
    assert ok.output_text == "Cold."


def test_code_keeps_its_state_across_responses(client, script):
    script.push_tool_call("code_interpreter", {"code": "secret = 41\nopen('/mnt/data/n.txt','w').write('hi')\nprint('set')"})
    script.push_text("Set it.")
    first = client.responses.create(model=script.model, input="set a variable", tools=[CODE_TOOL],
                                    include=["code_interpreter_call.outputs"])
    calls = [i for i in first.output if i.type == "code_interpreter_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.status == "completed" and call.container_id.startswith("cntr_")
    assert "secret = 41" in call.code
    assert [o.type for o in call.outputs] == ["logs"] and call.outputs[0].logs.strip() == "set"
    assert first.output[-1].type == "message" and first.output_text == "Set it."
    assert client.responses.retrieve(first.id).model_dump() == first.model_dump()

    script.push_tool_call("code_interpreter", {"code": "print(secret + 1, open('/mnt/data/n.txt').read())"})
    script.push_text(lambda req: f"Got {tool_outputs(req)[-1].strip()}")
    second = client.responses.create(model=script.model, input="use it", tools=[CODE_TOOL],
                                     previous_response_id=first.id)
    assert second.output_text == "Got 42 hi"
    call2 = [i for i in second.output if i.type == "code_interpreter_call"][0]
    assert call2.container_id == call.container_id
    # Without the include, outputs are null; a retrieve can ask for them.
    assert call2.outputs is None
    again = client.responses.retrieve(second.id, include=["code_interpreter_call.outputs"])
    logs = [i for i in again.output if i.type == "code_interpreter_call"][0].outputs
    assert [o.logs.strip() for o in logs] == ["42 hi"]
    with bad_request(param="include"):
        client.responses.retrieve(second.id, include=["no.such.field"])

    # A fresh response has another container: the variable is not there.
    script.push_tool_call("code_interpreter", {"code": "print('secret' in globals())"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    fresh = client.responses.create(model=script.model, input="check", tools=[CODE_TOOL])
    assert fresh.output_text == "False"
    assert [i for i in fresh.output if i.type == "code_interpreter_call"][0].container_id != call.container_id


def test_a_chart_comes_back_as_an_image_output(client, script):
    code = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3])\nplt.show()")
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("Here is the chart.")
    r = client.responses.create(model=script.model, input="plot", tools=[CODE_TOOL],
                                include=["code_interpreter_call.outputs"])
    call = [i for i in r.output if i.type == "code_interpreter_call"][0]
    images = [o for o in call.outputs if o.type == "image"]
    assert len(images) == 1
    assert images[0].url.startswith("data:image/png;base64,")
    import base64
    assert base64.b64decode(images[0].url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_stream_helper_and_final_response(client, script):
    script.push_tool_call("code_interpreter", {"code": "print(6 * 7)"}, arg_chunk=4)
    script.push_text("The answer is 42, as computed.")
    kinds = []
    deltas = []
    code_deltas = []
    with client.responses.stream(model=script.model, input="compute", tools=[CODE_TOOL]) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            if event.type == "response.code_interpreter_call_code.delta":
                code_deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[1] == "response.in_progress"
    assert kinds[-1] == "response.completed"
    assert "".join(deltas) == "The answer is 42, as computed."
    assert len(code_deltas) > 1 and "".join(code_deltas) == "print(6 * 7)"
    order = [k for k in kinds if k.startswith("response.code_interpreter_call")]
    assert order[0] == "response.code_interpreter_call.in_progress"
    assert order[-3:] == ["response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
                          "response.code_interpreter_call.completed"]
    assert final.status == "completed" and final.output_text == "The answer is 42, as computed."
    assert [i.type for i in final.output] == ["code_interpreter_call", "message"]
    stored = client.responses.retrieve(final.id)
    # The streamed final object is the stored one (the helper adds its `parsed` fields).
    assert stored.model_dump() == unparsed(final.model_dump())


def test_streamed_function_call(client, script):
    script.push_function_call("get_weather", {"city": "Rome"}, call_id="call_s1", arg_chunk=3)
    args = []
    with client.responses.stream(model=script.model, input="Rome?", tools=[WEATHER]) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                args.append(event.delta)
        final = stream.get_final_response()
    assert len(args) > 1
    call = final.output[0]
    assert call.type == "function_call" and call.call_id == "call_s1" and call.arguments == "".join(args)
    assert client.responses.retrieve(final.id).model_dump() == unparsed(final.model_dump())


def test_background_then_cancel(client, script):
    script.push_text("slow answer", delay=20)
    r = client.responses.create(model=script.model, input="take your time", background=True)
    assert r.status in ("queued", "in_progress") and r.background is True
    deadline = time.time() + 10
    while client.responses.retrieve(r.id).status == "queued" and time.time() < deadline:
        time.sleep(0.1)
    cancelled = client.responses.cancel(r.id)
    deadline = time.time() + 15
    while cancelled.status not in ("cancelled", "failed", "completed") and time.time() < deadline:
        time.sleep(0.2)
        cancelled = client.responses.retrieve(r.id)
    assert cancelled.status == "cancelled"
    # Cancelling again returns the final object.
    assert client.responses.cancel(r.id).status == "cancelled"


def test_only_background_responses_can_be_cancelled(client, script):
    script.push_text("done")
    r = client.responses.create(model=script.model, input="hi")
    with bad_request():
        client.responses.cancel(r.id)


def test_input_items_page_with_after(client, script):
    script.push_text("ok")
    inputs = [{"role": "user", "content": f"message {n}"} for n in range(5)]
    r = client.responses.create(model=script.model, input=inputs)
    page = client.responses.input_items.list(r.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["message 0", "message 1"] and page.has_more
    every = [i.content[0].text for i in client.responses.input_items.list(r.id, limit=2, order="asc")]
    assert every == [f"message {n}" for n in range(5)]
    newest = client.responses.input_items.list(r.id)
    assert newest.data[0].content[0].text == "message 4"


def test_delete(client, script):
    script.push_text("bye")
    r = client.responses.create(model=script.model, input="hi")
    client.responses.delete(r.id)
    with not_found():
        client.responses.retrieve(r.id)
    with not_found():
        client.responses.delete(r.id)


def test_bad_input_is_refused_and_nothing_is_stored(client, other_client, script, http):
    before = script.remaining, len(script.requests)
    with bad_request(param="tools[0].type") as e:
        client.responses.create(model=script.model, input="x", tools=[{"type": "web_search"}])
    with bad_request(param="conversation"):
        client.responses.create(model=script.model, input="x", previous_response_id="resp_x", conversation="conv_x")
    with bad_request(param="previous_response_id"):
        client.responses.create(model=script.model, input="x", previous_response_id="resp_missing")
    with bad_request(param="input[0].role"):
        client.responses.create(model=script.model, input=[{"role": "robot", "content": "x"}])
    with bad_request(param="input[0].content[0].file_id"):
        client.responses.create(model=script.model, input=[{"role": "user", "content": [
            {"type": "input_file", "file_id": "file-nope"}]}])
    with bad_request(param="max_output_tokens"):
        client.responses.create(model=script.model, input="x", max_output_tokens=3)
    bad = http.post("/responses", json={"model": script.model, "input": "x", "temprature": 1})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert (script.remaining, len(script.requests)) == before

    # Another project's response is not there.
    script.push_text("mine")
    mine = client.responses.create(model=script.model, input="hi")
    with not_found():
        other_client.responses.retrieve(mine.id)
    with bad_request(param="previous_response_id"):
        other_client.responses.create(model=script.model, input="x", previous_response_id=mine.id)


def test_max_tool_calls_caps_code_calls(client, script):
    script.push_tool_calls([("code_interpreter", {"code": "print('first')"}),
                            ("code_interpreter", {"code": "print('second')"})])
    script.push_text(lambda req: " | ".join(o.strip() for o in tool_outputs(req)))
    r = client.responses.create(model=script.model, input="two calls", tools=[CODE_TOOL], max_tool_calls=1,
                                include=["code_interpreter_call.outputs"])
    assert r.max_tool_calls == 1
    first, second = r.output_text.split(" | ")
    assert first == "first" and "max_tool_calls" in second
    # Once spent, the model is not offered the tools again.
    assert script.requests[-1]["tool_choice"] == "none"
    assert script.requests[-2]["tool_choice"] != "none"


def test_file_search_finds_and_cites(client, script):
    from helpers import upload
    from test_file_search import NOTES, SMALL_CHUNKS, cite_first_result

    f = upload(client, "zephyr.md", NOTES)
    vs = client.vector_stores.create(name="zephyr", file_ids=[f.id], chunking_strategy=SMALL_CHUNKS)
    script.push_tool_call("file_search", {"query": "When is the Zephyr launch?"})
    script.push_text(cite_first_result)
    r = client.responses.create(model=script.model, input="When do we launch?",
                                tools=[{"type": "file_search", "vector_store_ids": [vs.id]}],
                                include=["file_search_call.results"])
    search, message = r.output
    assert search.type == "file_search_call" and search.status == "completed"
    assert search.queries == ["When is the Zephyr launch?"]
    assert client.responses.retrieve(r.id).output[0].queries == ["When is the Zephyr launch?"]
    assert search.results[0].file_id == f.id and "Tuesday, 14 March" in search.results[0].text
    assert r.output_text.startswith("It launches on Tuesday, 14 March"), r.output_text
    [citation] = message.content[0].annotations
    assert citation.type == "file_citation" and citation.file_id == f.id and citation.filename == "zephyr.md"
    # Without the include, no results.
    script.push_tool_call("file_search", {"query": "budget"})
    script.push_text("ok")
    plain = client.responses.create(model=script.model, input="Budget?",
                                    tools=[{"type": "file_search", "vector_store_ids": [vs.id]}])
    assert plain.output[0].type == "file_search_call" and plain.output[0].results is None
    # Streamed, the item's `done` event carries its query too.
    script.push_tool_call("file_search", {"query": "crew"})
    script.push_text("ok")
    with client.responses.stream(model=script.model, input="Crew?",
                                 tools=[{"type": "file_search", "vector_store_ids": [vs.id]}]) as stream:
        done = [e.item for e in stream if e.type == "response.output_item.done"]
        final = stream.get_final_response()
    assert done[0].type == "file_search_call" and done[0].queries == ["crew"]
    assert final.output[0].queries == ["crew"]


def test_a_background_stream_resumes_after_a_sequence_number(client, script):
    script.push_text("one two three four five six", chunk_delay=0.15)
    stream = client.responses.create(model=script.model, input="count", background=True, stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()
    response_id = seen[0].response.id
    resumed = client.responses.retrieve(response_id, stream=True, starting_after=seen[-1].sequence_number)
    rest = list(resumed)
    numbers = [e.sequence_number for e in seen + rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed"
    text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
    assert text == "one two three four five six"
    # From the start, the whole stream again.
    again = list(client.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in again] == numbers
    # A response not streamed in the background cannot be streamed again.
    script.push_text("plain")
    plain = client.responses.create(model=script.model, input="x")
    with bad_request(param="stream"):
        list(client.responses.retrieve(plain.id, stream=True))


# ---------------------------------------------------------------------------------------------- containers

def test_an_auto_container_is_listed_and_its_written_file_is_cited(client, script):
    code = "open('/mnt/data/report.csv', 'w').write('a,b\\n1,2\\n')\nprint('written')"
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("Download [the report](sandbox:/mnt/data/report.csv).")
    r = client.responses.create(model=script.model, input="write a csv", tools=[CODE_TOOL])
    call = [i for i in r.output if i.type == "code_interpreter_call"][0]
    container = client.containers.retrieve(call.container_id)
    assert container.status == "running"
    message = r.output[-1]
    [citation] = message.content[0].annotations
    assert citation.type == "container_file_citation"
    assert citation.container_id == container.id and citation.filename == "report.csv"
    assert citation.file_id.startswith("cfile_")
    text = message.content[0].text
    assert text[citation.start_index:citation.end_index] == "sandbox:/mnt/data/report.csv"
    f = client.containers.files.retrieve(citation.file_id, container_id=container.id)
    assert f.source == "assistant" and f.path == "/mnt/data/report.csv"
    body = client.containers.files.content.retrieve(citation.file_id, container_id=container.id)
    assert body.read() == b"a,b\n1,2\n"
    # The stream cites the same file.
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("Again: sandbox:/mnt/data/report.csv")
    with client.responses.stream(model=script.model, input="again", tools=[CODE_TOOL],
                                 previous_response_id=r.id) as stream:
        added = [e.annotation for e in stream if e.type == "response.output_text.annotation.added"]
    assert [a["file_id"] if isinstance(a, dict) else a.file_id for a in added] == [citation.file_id]


def test_a_file_uploaded_to_a_named_container_is_read_by_the_code(client, script):
    container = client.containers.create(name="uploads")
    client.containers.files.create(container.id, file=("numbers.txt", b"21\n"))
    script.push_tool_call("code_interpreter", {"code": "print(int(open('/mnt/data/numbers.txt').read()) * 2)"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    r = client.responses.create(model=script.model, input="double it",
                                tools=[{"type": "code_interpreter", "container": container.id}])
    assert r.output_text == "42"
    assert [i for i in r.output if i.type == "code_interpreter_call"][0].container_id == container.id


def test_expired_and_other_projects_containers_are_refused(client, other_client, script, database_url):
    import psycopg

    theirs = other_client.containers.create(name="theirs")
    before = script.remaining, len(script.requests)
    with not_found():
        client.responses.create(model=script.model, input="x",
                                tools=[{"type": "code_interpreter", "container": theirs.id}])
    mine = client.containers.create(name="old", expires_after={"anchor": "last_active_at", "minutes": 1})
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE containers SET last_active_at = last_active_at - 3600, "
                     "data = data || jsonb_build_object('last_active_at', last_active_at - 3600) WHERE id = %s",
                     (mine.id,))
    with bad_request():
        client.responses.create(model=script.model, input="x",
                                tools=[{"type": "code_interpreter", "container": mine.id}])
    assert (script.remaining, len(script.requests)) == before


def test_store_false_is_answered_but_not_kept(client, script):
    script.push_text("ephemeral")
    r = client.responses.create(model=script.model, input="x", store=False)
    assert r.output_text == "ephemeral" and r.store is False
    with not_found():
        client.responses.retrieve(r.id)
    with bad_request(param="previous_response_id"):
        client.responses.create(model=script.model, input="y", previous_response_id=r.id)


def test_text_format_json_schema_reaches_the_model(client, script):
    script.push_text('{"answer": 4}')
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    r = client.responses.create(model=script.model, input="2+2 as JSON",
                                text={"format": {"type": "json_schema", "name": "sum", "schema": schema,
                                                 "strict": True}})
    assert r.output_text == '{"answer": 4}'
    assert r.text.format.type == "json_schema"
    sent = script.requests[-1]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "sum", "schema": schema, "strict": True}}
    with bad_request(param="text.format.name"):
        client.responses.create(model=script.model, input="x",
                                text={"format": {"type": "json_schema", "schema": schema}})


def test_an_input_too_long_for_the_model_is_a_400(client, script):
    too_long = "This model's maximum context length is 8192 tokens."
    script.push_error(400, message=too_long, code="context_length_exceeded")
    asked = len(script.requests)
    with bad_request(param="input", code="context_length_exceeded"):
        client.responses.create(model=script.model, input="a very long input")
    assert len(script.requests) == asked + 1
    # Streamed, the response fails with the same code.
    script.push_error(400, message=too_long, code="context_length_exceeded")
    with client.responses.stream(model=script.model, input="a very long input") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed", [e.type for e in events]
    assert events[-1].response.error.code == "context_length_exceeded"
    script.push_text("fits")
    assert client.responses.create(model=script.model, input="short").output_text == "fits"



def test_interpreting_is_sent_while_the_code_runs(client, script):
    script.push_tool_call("code_interpreter", {"code": "import time\ntime.sleep(1.5)\nprint('slept')"})
    script.push_text("done")
    seen = {}
    with client.responses.stream(model=script.model, input="sleep", tools=[CODE_TOOL]) as stream:
        for event in stream:
            seen.setdefault(event.type, time.monotonic())
        final = stream.get_final_response()
    assert final.output_text == "done"
    order = [k for k in seen if k.startswith("response.code_interpreter_call")]
    assert order[-3:] == ["response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
                          "response.code_interpreter_call.completed"], order
    # The code slept 1.5 s between the two.
    ran = seen["response.code_interpreter_call.completed"] - seen["response.code_interpreter_call.interpreting"]
    assert ran >= 1.0, ran
