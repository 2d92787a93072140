"""Items passed between responses by reference, and function calls answered later: through `client.responses`.

An `item_reference` names an item of an earlier response or conversation (a message, a function call, a
function_call_output) and reads as that item; function outputs answer the calls a response ended with
whether the response is named by previous_response_id or is the newest in a conversation, and also after
the run that waited for them expired.
"""

from __future__ import annotations

import psycopg
import pytest

from helpers import not_found
from upstream import prompt_text, tool_outputs

pytestmark = pytest.mark.runs

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False}


def ref(item_id: str) -> dict:
    return {"type": "item_reference", "id": item_id}


def test_references_to_an_earlier_responses_messages_reach_the_model(client, script):
    script.push_text("The code word is heron.")
    first = client.responses.create(model=script.model, input="Tell me a code word.")
    asked = client.responses.input_items.list(first.id).data[0].id
    answer = first.output[0].id

    script.push_text("ok")
    second = client.responses.create(model=script.model, input=[
        ref(asked), ref(answer), {"role": "user", "content": "Repeat it."}])
    sent = script.requests[-1]
    roles = [m["role"] for m in sent["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]
    assert "Tell me a code word." in prompt_text(sent) and "The code word is heron." in prompt_text(sent)
    # The referenced items are the input's too, as the client would have passed them.
    kinds = [(i.type, i.role) for i in client.responses.input_items.list(second.id, order="asc").data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]


def test_a_reference_already_in_the_chain_is_not_repeated(client, script):
    script.push_text("Noted.")
    first = client.responses.create(model=script.model, input="Remember: 7.")
    script.push_text("Seven.")
    client.responses.create(model=script.model, previous_response_id=first.id,
                            input=[ref(first.output[0].id), {"role": "user", "content": "Which number?"}])
    assert prompt_text(script.requests[-1]).count("Noted.") == 1


def test_a_referenced_function_call_is_answered_in_a_new_chain(client, script):
    script.push_function_call("get_weather", {"city": "Rome"}, call_id="call_rome")
    first = client.responses.create(model=script.model, input="Weather in Rome?", tools=[WEATHER])
    call = next(i for i in first.output if i.type == "function_call")

    script.push_text(lambda req: f"Rome: {tool_outputs(req)[-1]}.")
    second = client.responses.create(model=script.model, tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Rome?"}, ref(call.id),
        {"type": "function_call_output", "call_id": "call_rome", "output": "warm"}])
    assert second.output_text == "Rome: warm."
    sent = script.requests[-1]
    assert [c["id"] for m in sent["messages"] for c in m.get("tool_calls") or []] == ["call_rome"]


def test_unknown_and_other_projects_references_are_refused(client, other_client, script):
    script.push_text("mine")
    mine = client.responses.create(model=script.model, input="private")
    before = len(script.requests), len(client.responses.input_items.list(mine.id).data)
    with not_found():
        client.responses.create(model=script.model, input=[ref("msg_doesnotexist")])
    with not_found():
        other_client.responses.create(model=script.model, input=[ref(mine.output[0].id)])
    with not_found():
        other_client.conversations.create(items=[ref(mine.output[0].id)])
    assert (len(script.requests), len(client.responses.input_items.list(mine.id).data)) == before


def test_a_conversation_item_can_be_added_by_reference(client, script):
    script.push_text("Bonjour.")
    r = client.responses.create(model=script.model, input="Say hello in French.")
    conv = client.conversations.create(items=[ref(r.output[0].id)])
    items = client.conversations.items.list(conv.id).data
    assert [(i.role, i.content[0].text) for i in items] == [("assistant", "Bonjour.")]
    # Referencing it again in the same conversation adds nothing.
    client.conversations.items.create(conv.id, items=[ref(items[0].id)])
    assert len(client.conversations.items.list(conv.id).data) == 1


def test_function_outputs_answer_the_conversations_newest_response(client, script):
    conv = client.conversations.create()
    script.push_function_call("get_weather", {"city": "Lima"}, call_id="call_lima")
    first = client.responses.create(model=script.model, conversation=conv.id, input="Weather in Lima?",
                                    tools=[WEATHER])
    assert [i.type for i in first.output] == ["function_call"]

    script.push_text(lambda req: f"Lima is {tool_outputs(req)[-1]}.")
    second = client.responses.create(model=script.model, conversation=conv.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": "call_lima", "output": "grey"}])
    assert second.status == "completed" and second.output_text == "Lima is grey."
    assert second.conversation.id == conv.id
    assert [i.type for i in client.responses.retrieve(first.id).output] == ["function_call"]

    script.push_text(lambda req: "still grey" if "Lima is grey." in prompt_text(req) else "lost")
    third = client.responses.create(model=script.model, conversation=conv.id, input="And now?")
    assert third.output_text == "still grey"


def test_function_outputs_after_the_waiting_run_expired(client, script, database_url):
    script.push_function_call("get_weather", {"city": "Oslo"}, call_id="call_late")
    first = client.responses.create(model=script.model, input="Weather in Oslo?", tools=[WEATHER])
    with psycopg.connect(database_url) as conn:
        run_id = conn.execute("SELECT run_id FROM responses WHERE id = %s", (first.id,)).fetchone()[0]
        conn.execute("UPDATE runs SET status = 'expired', data = data || '{\"status\": \"expired\"}' "
                     "WHERE id = %s", (run_id,))

    script.push_text(lambda req: f"Oslo: {tool_outputs(req)[-1]}.")
    late = client.responses.create(model=script.model, previous_response_id=first.id, tools=[WEATHER],
                                   input=[{"type": "function_call_output", "call_id": "call_late", "output": "snow"}])
    assert late.status == "completed" and late.output_text == "Oslo: snow."
    sent = script.requests[-1]
    assert "Weather in Oslo?" in prompt_text(sent)
    assert [c["id"] for m in sent["messages"] for c in m.get("tool_calls") or []] == ["call_late"]
    assert client.responses.retrieve(first.id).status == "completed"
