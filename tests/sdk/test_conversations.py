"""Conversations through the official SDK: the object, its items, and responses that read and extend it."""

from __future__ import annotations

import pytest

from helpers import bad_request, not_found
from upstream import prompt_text, tool_outputs

pytestmark = pytest.mark.runs

CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}


def texts(items) -> list[str]:
    out = []
    for item in items:
        if item.type == "message":
            out.append(f"{item.role}: " + " ".join(getattr(p, "text", "") for p in item.content))
        else:
            out.append(item.type)
    return out


def test_create_retrieve_update_delete(client, other_client):
    conv = client.conversations.create(metadata={"topic": "demo"},
                                       items=[{"type": "message", "role": "user", "content": "Hello!"}])
    assert conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(conv.id).created_at == conv.created_at
    updated = client.conversations.update(conv.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}
    with not_found():
        other_client.conversations.retrieve(conv.id)
    items = client.conversations.items.list(conv.id, order="asc")
    assert texts(items.data) == ["user: Hello!"]
    client.conversations.delete(conv.id)
    with not_found():
        client.conversations.retrieve(conv.id)


def test_items_create_list_page_retrieve_delete(client):
    conv = client.conversations.create()
    created = client.conversations.items.create(conv.id, items=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"m{n}"}]} for n in range(5)])
    assert [i.content[0].text for i in created.data] == [f"m{n}" for n in range(5)]
    first = client.conversations.items.list(conv.id, limit=2, order="asc")
    assert [i.content[0].text for i in first.data] == ["m0", "m1"] and first.has_more
    every = [i.content[0].text for i in client.conversations.items.list(conv.id, limit=2, order="asc")]
    assert every == [f"m{n}" for n in range(5)]
    newest = client.conversations.items.list(conv.id)
    assert newest.data[0].content[0].text == "m4"
    one = client.conversations.items.retrieve(created.data[2].id, conversation_id=conv.id)
    assert one.content[0].text == "m2"
    after = client.conversations.items.delete(created.data[2].id, conversation_id=conv.id)
    assert after.id == conv.id and after.object == "conversation"
    left = [i.content[0].text for i in client.conversations.items.list(conv.id, order="asc")]
    assert left == ["m0", "m1", "m3", "m4"]
    with not_found():
        client.conversations.items.retrieve(created.data[2].id, conversation_id=conv.id)


def test_a_response_reads_and_extends_its_conversation(client, script):
    conv = client.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    script.push_text(lambda req: "Hi Ada." if "My name is Ada." in prompt_text(req) else "Who?")
    r = client.responses.create(model=script.model, input="Who am I?", conversation=conv.id)
    assert r.output_text == "Hi Ada." and r.conversation.id == conv.id
    items = client.conversations.items.list(conv.id, order="asc")
    assert texts(items.data) == ["user: My name is Ada.", "user: Who am I?", "assistant: Hi Ada."]
    assert items.data[-1].id == r.output[0].id

    script.push_text(lambda req: "Still Ada." if "Hi Ada." in prompt_text(req) else "Lost it.")
    r2 = client.responses.create(model=script.model, input="Again?", conversation={"id": conv.id})
    assert r2.output_text == "Still Ada."


def test_code_state_follows_the_conversation(client, script):
    conv = client.conversations.create()
    script.push_tool_call("code_interpreter", {"code": "kept = 'yes'"})
    script.push_text("stored")
    first = client.responses.create(model=script.model, input="store", conversation=conv.id, tools=[CODE_TOOL])
    script.push_tool_call("code_interpreter", {"code": "print(kept)"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    second = client.responses.create(model=script.model, input="read", conversation=conv.id, tools=[CODE_TOOL])
    assert second.output_text == "yes"
    c1 = [i for i in first.output if i.type == "code_interpreter_call"][0]
    c2 = [i for i in second.output if i.type == "code_interpreter_call"][0]
    assert c1.container_id == c2.container_id
    kinds = texts(client.conversations.items.list(conv.id, order="asc", limit=100).data)
    assert kinds == ["user: store", "code_interpreter_call", "assistant: stored",
                     "user: read", "code_interpreter_call", "assistant: yes"]

    # Code run in a container named by a later response shows that container; the earlier calls keep theirs.
    named = client.containers.create(name="named")
    script.push_tool_call("code_interpreter", {"code": "print('elsewhere')"})
    script.push_text("ran")
    client.responses.create(model=script.model, input="elsewhere", conversation=conv.id,
                            tools=[{"type": "code_interpreter", "container": named.id}])
    calls = [i for i in client.conversations.items.list(conv.id, order="asc", limit=100).data
             if i.type == "code_interpreter_call"]
    assert [c.container_id for c in calls] == [c1.container_id, c1.container_id, named.id]


def test_bad_input_stores_nothing(client, other_client, script):
    with bad_request(param="items[1].role"):
        client.conversations.create(items=[{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}])
    with bad_request(param="items"):
        client.conversations.create(items=[{"role": "user", "content": "x"}] * 21)
    conv = client.conversations.create()
    with bad_request(param="items[0].content[0].file_id"):
        client.conversations.items.create(conv.id, items=[
            {"role": "user", "content": [{"type": "input_file", "file_id": "file-missing"}]}])
    assert client.conversations.items.list(conv.id).data == []
    with not_found():
        other_client.responses.create(model=script.model, input="x", conversation=conv.id)
    with not_found():
        client.conversations.items.list("conv_missing")
