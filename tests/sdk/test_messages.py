"""Messages: create (string, content parts, attachments), list, retrieve, modify, delete."""

from __future__ import annotations

import time

from helpers import bad_request, list_all, not_found, png_bytes, upload


def test_create_with_a_string_becomes_one_text_part(client):
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(t.id, role="user", content="How many r in strawberry?")
    assert m.id.startswith("msg_")
    assert m.object == "thread.message"
    assert m.thread_id == t.id
    assert m.role == "user"
    assert abs(m.created_at - time.time()) < 60
    assert len(m.content) == 1
    assert m.content[0].type == "text"
    assert m.content[0].text.value == "How many r in strawberry?"
    assert m.content[0].text.annotations == []
    assert m.assistant_id is None
    assert m.run_id is None
    assert m.attachments == []
    assert m.metadata == {}
    # Assumed: a message added by a client is complete as soon as it exists (the spec example omits status).
    assert m.status in (None, "completed")


def test_create_with_content_parts_keeps_them_in_order(client):
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(
        t.id, role="user",
        content=[{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
    )
    assert [(p.type, p.text.value) for p in m.content] == [("text", "one"), ("text", "two")]


def test_create_with_an_image_file_part(client):
    img = upload(client, "pic.png", png_bytes(), purpose="vision")
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(
        t.id, role="user",
        content=[{"type": "text", "text": "what is this?"},
                 {"type": "image_file", "image_file": {"file_id": img.id, "detail": "low"}}],
    )
    assert m.content[1].type == "image_file"
    assert m.content[1].image_file.file_id == img.id
    assert m.content[1].image_file.detail == "low"


def test_create_with_an_image_url_part(client):
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(
        t.id, role="user",
        content=[{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
    )
    assert m.content[0].type == "image_url"
    assert m.content[0].image_url.url == "https://example.com/cat.png"
    assert m.content[0].image_url.detail == "auto"  # OpenAI fills in the default


def test_an_image_detail_must_be_auto_low_or_high(client):
    t = client.beta.threads.create()
    img = upload(client, "pic.png", png_bytes(), purpose="vision")
    for i, part in enumerate([
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "huge"}},
        {"type": "image_file", "image_file": {"file_id": img.id, "detail": "tiny"}},
    ]):
        kind = part["type"]
        with bad_request(param=f"content[1].{kind}.detail", message_contains="'auto', 'low', and 'high'"):
            client.beta.threads.messages.create(t.id, role="user", content=[{"type": "text", "text": "x"}, part])
    assert client.beta.threads.messages.list(t.id).data == []


def test_unknown_content_part_types_are_named_as_openai_does(client):
    t = client.beta.threads.create()
    with bad_request(param="content[0].type", message="Invalid value: 'video'. Supported values are: "
                     "'text', 'image_file', and 'image_url'."):
        client.beta.threads.messages.create(t.id, role="user", content=[{"type": "video"}])


def test_an_empty_content_array_is_an_empty_array_error(client):
    t = client.beta.threads.create()
    with bad_request(param="content") as info:
        client.beta.threads.messages.create(t.id, role="user", content=[])
    assert info.value.body["code"] == "empty_array"
    assert "empty array" in info.value.body["message"]


def test_create_with_attachments_and_metadata(client):
    f = upload(client, "sales.csv", b"month,total\njan,3\n")
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(
        t.id, role="user", content="Sum the totals",
        attachments=[{"file_id": f.id, "tools": [{"type": "code_interpreter"}]}],
        metadata={"source": "test"},
    )
    assert len(m.attachments) == 1
    assert m.attachments[0].file_id == f.id
    assert [tool.type for tool in m.attachments[0].tools] == ["code_interpreter"]
    assert m.metadata == {"source": "test"}
    assert client.beta.threads.messages.retrieve(m.id, thread_id=t.id).attachments[0].file_id == f.id


def test_an_attachment_must_name_its_tools(client):
    f = upload(client, "sales.csv", b"month,total\njan,3\n")
    t = client.beta.threads.create()
    with bad_request(param="attachments[0].tools") as info:
        client.beta.threads.messages.create(t.id, role="user", content="x", attachments=[{"file_id": f.id}])
    assert info.value.body["code"] == "missing_required_parameter"
    assert client.beta.threads.messages.list(t.id).data == []


def test_a_message_carries_at_most_ten_attachments(client):
    f = upload(client, "sales.csv", b"month,total\njan,3\n")
    t = client.beta.threads.create()
    one = {"file_id": f.id, "tools": [{"type": "code_interpreter"}]}
    assert len(client.beta.threads.messages.create(t.id, role="user", content="x", attachments=[one] * 10)
               .attachments) == 10
    with bad_request(param="attachments") as info:
        client.beta.threads.messages.create(t.id, role="user", content="x", attachments=[one] * 11)
    assert info.value.body["code"] == "array_above_max_length"
    assert len(client.beta.threads.messages.list(t.id).data) == 1


def test_an_assistant_role_message_can_be_inserted(client):
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(t.id, role="assistant", content="I said this earlier.")
    assert m.role == "assistant"
    assert m.content[0].text.value == "I said this earlier."


def test_retrieve_returns_what_create_returned(client):
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(t.id, role="user", content="hi", metadata={"a": "b"})
    assert client.beta.threads.messages.retrieve(m.id, thread_id=t.id).model_dump() == m.model_dump()


def test_list_order_and_pagination(client):
    t = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(t.id, role="user", content=f"m{i}").id for i in range(12)]
    page = client.beta.threads.messages.list(t.id)
    assert [m.id for m in page.data] == ids[::-1]
    assert page.has_more is False
    assert page.first_id == ids[-1] and page.last_id == ids[0]
    assert [m.id for m in client.beta.threads.messages.list(t.id, order="asc").data] == ids

    p1 = client.beta.threads.messages.list(t.id, limit=5, order="asc")
    assert [m.id for m in p1.data] == ids[:5]
    assert p1.has_more is True
    p2 = client.beta.threads.messages.list(t.id, limit=5, order="asc", after=p1.last_id)
    assert [m.id for m in p2.data] == ids[5:10]
    back = client.beta.threads.messages.list(t.id, limit=5, order="asc", before=p2.first_id)
    assert [m.id for m in back.data] == ids[:5]
    assert [m.id for m in list_all(client.beta.threads.messages.list, thread_id=t.id, limit=4)] == ids[::-1]


def test_list_only_shows_the_threads_own_messages(client):
    t1 = client.beta.threads.create()
    t2 = client.beta.threads.create()
    client.beta.threads.messages.create(t1.id, role="user", content="in t1")
    client.beta.threads.messages.create(t2.id, role="user", content="in t2")
    assert [m.content[0].text.value for m in client.beta.threads.messages.list(t1.id).data] == ["in t1"]


def test_a_message_cannot_be_read_through_another_thread(client):
    t1 = client.beta.threads.create()
    t2 = client.beta.threads.create()
    m = client.beta.threads.messages.create(t1.id, role="user", content="x")
    with not_found(message_contains=m.id):
        client.beta.threads.messages.retrieve(m.id, thread_id=t2.id)


def test_modify_metadata_only(client):
    t = client.beta.threads.create()
    m = client.beta.threads.messages.create(t.id, role="user", content="keep me", metadata={"a": "1"})
    u = client.beta.threads.messages.update(m.id, thread_id=t.id, metadata={"a": "2", "b": "3"})
    assert u.id == m.id
    assert u.metadata == {"a": "2", "b": "3"}
    assert u.content[0].text.value == "keep me"
    assert client.beta.threads.messages.retrieve(m.id, thread_id=t.id).metadata == {"a": "2", "b": "3"}


def test_delete_a_message(client):
    t = client.beta.threads.create()
    keep = client.beta.threads.messages.create(t.id, role="user", content="keep")
    gone = client.beta.threads.messages.create(t.id, role="user", content="gone")
    d = client.beta.threads.messages.delete(gone.id, thread_id=t.id)
    assert d.id == gone.id
    assert d.object == "thread.message.deleted"
    assert d.deleted is True
    with not_found(message_contains=gone.id):
        client.beta.threads.messages.retrieve(gone.id, thread_id=t.id)
    assert [m.id for m in client.beta.threads.messages.list(t.id).data] == [keep.id]


def test_an_unknown_file_is_named_by_the_exact_parameter_that_refers_to_it(client):
    f = upload(client, "sales.csv", b"month,total\njan,3\n")
    img = upload(client, "pic.png", png_bytes(), purpose="vision")
    ci = [{"type": "code_interpreter"}]
    t = client.beta.threads.create()
    cases = [
        (lambda: client.beta.threads.messages.create(
            t.id, role="user", content="x",
            attachments=[{"file_id": f.id, "tools": ci}, {"file_id": "file-nope", "tools": ci}]),
         "attachments[1].file_id"),
        (lambda: client.beta.threads.messages.create(
            t.id, role="user", content=[{"type": "text", "text": "x"},
                                        {"type": "image_file", "image_file": {"file_id": img.id}},
                                        {"type": "image_file", "image_file": {"file_id": "file-gone"}}]),
         "content[2].image_file.file_id"),
        (lambda: client.beta.threads.create(messages=[
            {"role": "user", "content": "x", "attachments": [{"file_id": "file-nope", "tools": ci}]}]),
         "messages[0].attachments[0].file_id"),
        (lambda: client.beta.assistants.create(
            model="m", tools=ci, tool_resources={"code_interpreter": {"file_ids": [f.id, "file-nope"]}}),
         "tool_resources.code_interpreter.file_ids[1]"),
    ]
    for call, param in cases:
        with bad_request() as info:
            call()
        assert info.value.body["param"] == param
        assert info.value.body["code"] == "invalid_value"
    assert client.beta.threads.messages.list(t.id).data == []
