"""Every input item type as context: added to a conversation by hand (all-or-nothing, up to 20 a call, each
checked), listed and retrieved as stored and read by the model of a later response; and replayed or
referenced by a client that resends its own history (no previous_response_id, no conversation), which gets
the same context as one chaining by id — its earlier code and outputs, searches, function calls and messages,
in their place — with code state in the replayed call's container while it is usable.
"""

from __future__ import annotations

import json

import pytest

from helpers import bad_request, not_found
from upstream import tool_outputs

pytestmark = pytest.mark.runs

CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}


def every_kind() -> list[dict]:
    return [
        {"type": "message", "role": "system", "content": "Speak like a pirate."},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be terse."}]},
        {"type": "message", "role": "user", "content": "What is the weather in Oslo?"},
        {"type": "function_call", "call_id": "call_oslo", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_oslo", "output": "snowing"},
        {"type": "code_interpreter_call", "id": "ci_hand1", "status": "completed", "container_id": "cntr_gone",
         "code": "print(6 * 7)", "outputs": [{"type": "logs", "logs": "42\n"}]},
        {"type": "file_search_call", "id": "fs_hand1", "status": "completed", "queries": ["oslo climate"],
         "results": [{"file_id": "file-x", "filename": "oslo.md", "score": 0.9, "text": "Oslo is cold.",
                      "attributes": {}}]},
        {"type": "reasoning", "id": "rs_hand1", "summary": [{"type": "summary_text", "text": "Thinking."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Arr, snow."}]},
    ]


def roles_and_types(messages: list[dict]) -> list[str]:
    out = []
    for m in messages:
        if m.get("tool_calls"):
            out.append("call:" + m["tool_calls"][0]["function"]["name"])
        else:
            out.append(m["role"])
    return out


def test_a_conversation_takes_every_input_item_type_and_the_model_reads_them(client, script):
    conv = client.conversations.create()
    added = client.conversations.items.create(conv.id, items=every_kind())
    assert [i.type for i in added.data] == [
        "message", "message", "message", "function_call", "function_call_output", "code_interpreter_call",
        "file_search_call", "reasoning", "message"]
    listed = client.conversations.items.list(conv.id, order="asc", limit=100).data
    assert [i.id for i in listed] == [i.id for i in added.data]
    assert [getattr(i, "role", None) for i in listed][:3] == ["system", "developer", "user"]
    call = listed[5]
    assert call.code == "print(6 * 7)" and call.outputs[0].logs == "42\n"
    again = client.conversations.items.retrieve(call.id, conversation_id=conv.id)
    assert again.model_dump() == call.model_dump()
    fco = client.conversations.items.retrieve(listed[4].id, conversation_id=conv.id)
    assert fco.type == "function_call_output" and fco.output == "snowing" and fco.call_id == "call_oslo"

    script.push_text("Aye.")
    r = client.responses.create(model=script.model, input="And now?", conversation=conv.id)
    assert r.output_text == "Aye."
    messages = script.requests[-1]["messages"]
    assert roles_and_types(messages) == [
        "system", "system", "user", "call:get_weather", "tool", "call:code_interpreter", "tool",
        "call:file_search", "tool", "assistant", "user"]
    assert "pirate" in messages[0]["content"] and "terse" in messages[1]["content"]
    assert [m["content"] for m in messages if m["role"] == "tool"] == ["snowing", "42\n", "Oslo is cold."]
    assert json.loads(messages[5]["tool_calls"][0]["function"]["arguments"]) == {"code": "print(6 * 7)"}

    # An item added by hand can be deleted again; the model no longer reads it.
    client.conversations.items.delete(listed[5].id, conversation_id=conv.id)
    assert "ci_hand1" not in [i.id for i in client.conversations.items.list(conv.id, limit=100).data]


def test_bad_items_are_refused_whole_and_nothing_is_stored(client, other_client, script):
    conv = client.conversations.create(items=[{"role": "user", "content": "first"}])
    before = client.conversations.items.list(conv.id).data
    ok = {"type": "message", "role": "user", "content": "fine"}
    with bad_request(param="items"):
        client.conversations.items.create(conv.id, items=[ok] * 21)
    with bad_request(param="items[1].type"):
        client.conversations.items.create(conv.id, items=[ok, {"type": "computer_call", "id": "cu_1"}])
    with bad_request(param="items[1].call_id"):
        client.conversations.items.create(conv.id, items=[ok, {"type": "function_call", "name": "f",
                                                                   "arguments": "{}"}])
    with bad_request(param="items[1].outputs[0]"):
        client.conversations.items.create(conv.id, items=[ok, {
            "type": "code_interpreter_call", "id": "ci_bad", "code": "1", "container_id": "cntr_x",
            "status": "completed", "outputs": [{"type": "video"}]}])
    with bad_request(param="items[0].container_id"):
        client.conversations.items.create(conv.id, items=[{"type": "code_interpreter_call", "id": "ci_bad",
                                                           "code": "1", "status": "completed", "outputs": None}])
    with bad_request(param="items[0].queries"):
        client.conversations.items.create(conv.id, items=[{"type": "file_search_call", "id": "fs_bad",
                                                           "status": "completed"}])
    # An item_reference to another project's item is not found, and refuses the batch.
    script.push_text("theirs")
    theirs = other_client.responses.create(model=script.model, input="secret")
    with not_found():
        client.conversations.items.create(conv.id, items=[ok, {"type": "item_reference",
                                                               "id": theirs.output[0].id}])
    assert client.conversations.items.list(conv.id).data == before
    # Twenty is fine.
    assert len(client.conversations.items.create(conv.id, items=[ok] * 20).data) == 20


def test_replayed_history_with_code_reaches_the_model_and_keeps_its_container(client, script):
    script.push_tool_call("code_interpreter", {"code": "secret = 41\nprint('set')"})
    script.push_text("Set it.")
    first = client.responses.create(model=script.model, input="Set a secret.", tools=[CODE_TOOL],
                                    include=["code_interpreter_call.outputs"])
    call = next(i for i in first.output if i.type == "code_interpreter_call")
    history = [{"role": "user", "content": "Set a secret."}] + [i.model_dump(exclude_none=False)
                                                                  for i in first.output]
    history.append({"role": "user", "content": "Now read it."})

    script.push_tool_call("code_interpreter", {"code": "print(secret + 1)"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    second = client.responses.create(model=script.model, input=history, tools=[CODE_TOOL])
    assert second.output_text == "42"
    later = next(i for i in second.output if i.type == "code_interpreter_call")
    assert later.container_id == call.container_id

    # The model saw the earlier code and its output, in place: before the assistant's answer.
    messages = script.requests[-2]["messages"]
    assert roles_and_types(messages)[1:] == ["user", "call:code_interpreter", "tool", "assistant", "user"]
    assert "secret = 41" in messages[2]["tool_calls"][0]["function"]["arguments"]
    assert messages[3]["content"] == "set\n"
    # The replayed items are the response's input items.
    kinds = [i.type for i in client.responses.input_items.list(second.id, order="asc").data]
    assert kinds == ["message", "code_interpreter_call", "message", "message"]


def test_a_replayed_call_without_outputs_gets_them_and_a_chain_does_not_repeat_its_own(client, script):
    script.push_tool_call("code_interpreter", {"code": "print('hello')"})
    script.push_text("Said hello.")
    first = client.responses.create(model=script.model, input="Greet.", tools=[CODE_TOOL])
    call = next(i for i in first.output if i.type == "code_interpreter_call")
    assert call.outputs is None

    # Replayed without outputs (the default): the model reads them from the call as it ran.
    script.push_text("ok")
    client.responses.create(model=script.model, input=[
        {"role": "user", "content": "Greet."}, call.model_dump(), {"role": "user", "content": "Again?"}])
    assert tool_outputs(script.requests[-1]) == ["hello\n"]

    # Chained by id, the same call passed back is already context: it is not read twice.
    script.push_text("ok")
    client.responses.create(model=script.model, previous_response_id=first.id,
                            input=[call.model_dump(), {"role": "user", "content": "More?"}])
    assert [m for m in script.requests[-1]["messages"] if m.get("tool_calls")] == []


def test_an_item_reference_to_a_code_call_is_read_as_that_call(client, other_client, script):
    script.push_tool_call("code_interpreter", {"code": "n = 5\nprint(n * 2)"})
    script.push_text("Ten.")
    first = client.responses.create(model=script.model, input="Compute.", tools=[CODE_TOOL])
    call = next(i for i in first.output if i.type == "code_interpreter_call")

    script.push_tool_call("code_interpreter", {"code": "print(n)"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    second = client.responses.create(model=script.model, tools=[CODE_TOOL], input=[
        {"role": "user", "content": "Compute."}, {"type": "item_reference", "id": call.id},
        {"type": "item_reference", "id": first.output[-1].id}, {"role": "user", "content": "What was n?"}])
    assert second.output_text == "5"
    assert tool_outputs(script.requests[-2]) == ["10\n"]

    # Another project cannot reference it, and its response is not stored.
    with not_found():
        other_client.responses.create(model=script.model, tools=[CODE_TOOL], input=[
            {"type": "item_reference", "id": call.id}, {"role": "user", "content": "x"}])


def test_a_branch_of_the_chain_keeps_the_replayed_context(client, script):
    replayed = {"type": "code_interpreter_call", "id": "ci_branch1", "status": "completed",
                "container_id": "cntr_gone", "code": "print('from before')",
                "outputs": [{"type": "logs", "logs": "from before\n"}]}
    script.push_text("first")
    first = client.responses.create(model=script.model, input=[
        {"role": "user", "content": "Earlier."}, replayed, {"role": "user", "content": "Now."}])
    script.push_text("second")
    client.responses.create(model=script.model, previous_response_id=first.id, input="Next.")
    # A second answer to `first` goes on a copy of its thread: the replayed call is still read, in place.
    script.push_text("branch")
    client.responses.create(model=script.model, previous_response_id=first.id, input="Other way.")
    sent = script.requests[-1]["messages"]
    assert roles_and_types(sent) == ["user", "call:code_interpreter", "tool", "user", "assistant", "user"]
    assert sent[2]["content"] == "from before\n"


def test_a_response_has_every_field_the_schemas_require_and_odd_echoes_are_refused(client, script):
    tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
    script.push_text("ok")
    # The JSON as sent: the SDKs convert some fields (3.x reads completed_at as a float).
    raw = client.responses.with_raw_response.create(model=script.model, input="x", tools=[tool]).http_response.json()
    for key, kind in [("presence_penalty", float), ("frequency_penalty", float), ("top_logprobs", int),
                      ("completed_at", int), ("service_tier", str)]:
        assert isinstance(raw[key], kind), (key, raw.get(key))
    assert raw["safety_identifier"] is None and raw["prompt_cache_key"] is None
    assert raw["tools"][0]["strict"] is False
    with bad_request(param="reasoning"):
        client.responses.create(model=script.model, input="x", extra_body={"reasoning": [None]})
    with bad_request(param="text"):
        client.responses.create(model=script.model, input="x", extra_body={"text": "plain"})
