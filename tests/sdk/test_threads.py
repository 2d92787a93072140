"""Threads: create (with initial messages, tool resources, metadata), retrieve, modify, delete."""

from __future__ import annotations

import time

from helpers import not_found, upload


def test_create_an_empty_thread(client):
    t = client.beta.threads.create()
    assert t.id.startswith("thread_")
    assert t.object == "thread"
    assert abs(t.created_at - time.time()) < 60
    assert t.metadata == {}
    assert client.beta.threads.messages.list(t.id).data == []


def test_create_with_initial_messages_tool_resources_and_metadata(client):
    f = upload(client, "in.csv", b"x\n1\n")
    t = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first", "metadata": {"n": "1"}},
            {"role": "assistant", "content": "second"},
            {"role": "user", "content": [{"type": "text", "text": "third"}],
             "attachments": [{"file_id": f.id, "tools": [{"type": "code_interpreter"}]}]},
        ],
        tool_resources={"code_interpreter": {"file_ids": [f.id]}},
        metadata={"user": "u-42"},
    )
    assert t.metadata == {"user": "u-42"}
    assert t.tool_resources.code_interpreter.file_ids == [f.id]
    msgs = client.beta.threads.messages.list(t.id, order="asc").data
    assert [m.role for m in msgs] == ["user", "assistant", "user"]
    assert [m.content[0].text.value for m in msgs] == ["first", "second", "third"]
    assert all(m.thread_id == t.id for m in msgs)
    assert msgs[0].metadata == {"n": "1"}
    assert msgs[2].attachments[0].file_id == f.id
    assert msgs[2].attachments[0].tools[0].type == "code_interpreter"
    # Initial messages keep their order even when created within the same second.
    assert [m.id for m in client.beta.threads.messages.list(t.id).data] == [m.id for m in msgs[::-1]]


def test_retrieve_returns_what_create_returned(client):
    t = client.beta.threads.create(metadata={"a": "b"})
    assert client.beta.threads.retrieve(t.id).model_dump() == t.model_dump()


def test_modify_metadata_and_tool_resources(client):
    f1 = upload(client, "a.txt", b"a")
    f2 = upload(client, "b.txt", b"b")
    t = client.beta.threads.create(metadata={"a": "1"}, tool_resources={"code_interpreter": {"file_ids": [f1.id]}})
    m = client.beta.threads.update(t.id, metadata={"a": "2", "c": "3"})
    assert m.id == t.id
    assert m.created_at == t.created_at
    assert m.metadata == {"a": "2", "c": "3"}
    assert m.tool_resources.code_interpreter.file_ids == [f1.id]  # untouched by a metadata-only update
    m = client.beta.threads.update(t.id, tool_resources={"code_interpreter": {"file_ids": [f2.id]}})
    assert m.tool_resources.code_interpreter.file_ids == [f2.id]
    assert m.metadata == {"a": "2", "c": "3"}
    assert client.beta.threads.retrieve(t.id).model_dump() == m.model_dump()


def test_delete_removes_the_thread_and_its_messages(client):
    t = client.beta.threads.create(messages=[{"role": "user", "content": "bye"}])
    msg = client.beta.threads.messages.list(t.id).data[0]
    d = client.beta.threads.delete(t.id)
    assert d.id == t.id
    assert d.object == "thread.deleted"
    assert d.deleted is True
    with not_found(message_contains=t.id):
        client.beta.threads.retrieve(t.id)
    with not_found(message_contains=t.id):
        client.beta.threads.messages.list(t.id)
    with not_found():
        client.beta.threads.messages.retrieve(msg.id, thread_id=t.id)
    with not_found():
        client.beta.threads.delete(t.id)
