"""Errors: exact status codes and OpenAI error objects, seen through the SDK's exception types.

Where the real API's exact wording is not known, tests check status, `type` and `param` and that the message
names the offending id; the exact 404 wording is taken from FACTS.md ("No assistant found with id 'asst_x'.").
"""

from __future__ import annotations

import httpx
import openai
import pytest

from conftest import KEY_A
from helpers import api_error, bad_request, not_found, upload

# ---------------------------------------------------------------------------------------------------------------
# 404s for ids that do not exist


def test_unknown_assistant_id_is_404_with_the_openai_message(client):
    for call in (lambda: client.beta.assistants.retrieve("asst_doesnotexist"),
                 lambda: client.beta.assistants.update("asst_doesnotexist", name="x"),
                 lambda: client.beta.assistants.delete("asst_doesnotexist")):
        with not_found(message="No assistant found with id 'asst_doesnotexist'."):
            call()


def test_unknown_thread_id_is_404_for_every_thread_and_message_route(client):
    tid = "thread_doesnotexist"
    calls = [
        lambda: client.beta.threads.retrieve(tid),
        lambda: client.beta.threads.update(tid, metadata={"a": "b"}),
        lambda: client.beta.threads.delete(tid),
        lambda: client.beta.threads.messages.create(tid, role="user", content="x"),
        lambda: client.beta.threads.messages.list(tid),
        lambda: client.beta.threads.messages.retrieve("msg_doesnotexist", thread_id=tid),
        lambda: client.beta.threads.messages.update("msg_doesnotexist", thread_id=tid, metadata={}),
        lambda: client.beta.threads.messages.delete("msg_doesnotexist", thread_id=tid),
    ]
    for call in calls:
        with not_found(message="No thread found with id 'thread_doesnotexist'."):
            call()


def test_unknown_message_id_in_a_real_thread_is_404(client):
    t = client.beta.threads.create()
    for call in (lambda: client.beta.threads.messages.retrieve("msg_nope", thread_id=t.id),
                 lambda: client.beta.threads.messages.update("msg_nope", thread_id=t.id, metadata={"a": "b"}),
                 lambda: client.beta.threads.messages.delete("msg_nope", thread_id=t.id)):
        with not_found(message="No message found with id 'msg_nope'."):
            call()


def test_unknown_file_id_is_404_for_every_file_route(client):
    for call in (lambda: client.files.retrieve("file-doesnotexist"),
                 lambda: client.files.content("file-doesnotexist"),
                 lambda: client.files.delete("file-doesnotexist")):
        with not_found(message_contains="file-doesnotexist"):
            call()


def test_an_id_with_the_wrong_prefix_is_404_not_400(client):
    # Assumed as the real API does: any unknown id string, well-formed or not, is "not found".
    with not_found(message="No assistant found with id 'thread_abc'."):
        client.beta.assistants.retrieve("thread_abc")
    with not_found(message_contains="garbage"):
        client.beta.threads.retrieve("garbage")


def test_unknown_route_is_404_json(http):
    r = http.get("/no_such_route")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"


# ---------------------------------------------------------------------------------------------------------------
# Authentication


def test_a_missing_api_key_is_401(server):
    r = httpx.get(server + "/v1/assistants", headers={"OpenAI-Beta": "assistants=v2"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert set(err) >= {"message", "type", "param", "code"}


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/assistants"), ("POST", "/v1/assistants"), ("GET", "/v1/assistants/asst_x"),
    ("POST", "/v1/threads"), ("GET", "/v1/threads/thread_x/messages"), ("GET", "/v1/files"),
    ("GET", "/v1/files/file-x/content"),
])
def test_every_api_route_needs_a_key(server, method, path):
    r = httpx.request(method, server + path, json={} if method == "POST" else None)
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_an_unsupported_method_is_a_json_error(http):
    # The real API answers 404 "Invalid URL (PUT /v1/assistants)"; 405 is as good.
    r = http.put("/assistants", json={})
    assert r.status_code in (404, 405)
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_a_wrong_api_key_is_an_authentication_error(server):
    from conftest import make_client
    bad = make_client(server, "sk-not-a-key")
    with api_error(openai.AuthenticationError, 401, error_type="invalid_request_error") as info:
        bad.beta.assistants.list()
    # Assumed from the real API: code "invalid_api_key", and the message does not echo the whole key.
    assert info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.files.list()


def test_a_non_bearer_authorization_header_is_401(server):
    r = httpx.get(server + "/v1/assistants", headers={"Authorization": f"Basic {KEY_A}"})
    assert r.status_code == 401


def test_healthz_needs_no_key(server):
    assert httpx.get(server + "/healthz").status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# Request bodies: types, required fields, unknown fields, malformed JSON, size


def test_wrong_types_are_400_naming_the_param(client):
    with bad_request(param="name"):
        client.beta.assistants.create(model="gpt-4o", name=123)
    with bad_request(param="temperature"):
        client.beta.assistants.create(model="gpt-4o", temperature="hot")
    with bad_request(param="metadata"):
        client.beta.assistants.create(model="gpt-4o", metadata=["not", "an", "object"])
    with bad_request(param="tools"):
        client.beta.assistants.create(model="gpt-4o", tools={"type": "code_interpreter"})
    with bad_request(param="model"):
        client.beta.assistants.create(model=42)


def test_a_missing_required_field_is_400_naming_it(http, client):
    r = http.post("/assistants", json={"name": "no model"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == "model"
    t = client.beta.threads.create()
    r = http.post(f"/threads/{t.id}/messages", json={"role": "user"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "content"
    r = http.post(f"/threads/{t.id}/messages", json={"content": "hi"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "role"


def test_unknown_fields_are_rejected_naming_the_field(client):
    # Assumed wording as the real API: "Unknown parameter: 'bogus'." with param "bogus".
    with bad_request(param="bogus", message="Unknown parameter: 'bogus'."):
        client.beta.assistants.create(model="gpt-4o", extra_body={"bogus": 1})
    t = client.beta.threads.create()
    with bad_request(param="bogus", message_contains="'bogus'"):
        client.beta.threads.messages.create(t.id, role="user", content="x", extra_body={"bogus": True})
    with bad_request(param="bogus", message_contains="'bogus'"):
        client.beta.threads.update(t.id, extra_body={"bogus": True})


def test_unknown_nested_fields_are_rejected_with_their_path(client):
    with bad_request(message_contains="tools[0].bogus") as info:
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter", "bogus": 1}])
    assert info.value.param == "tools[0].bogus"


def test_malformed_json_is_an_openai_400(http):
    r = http.post("/assistants", content=b'{"model": "gpt-4o",', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = http.post("/assistants", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_an_oversized_body_is_413(client):
    # 32 MiB of instructions: far beyond any JSON request the API accepts.
    with pytest.raises(openai.APIStatusError) as info:
        client.beta.assistants.create(model="gpt-4o", instructions="x" * (32 * 1024 * 1024))
    assert info.value.status_code == 413
    assert isinstance(info.value.body, dict) and info.value.body.get("message"), info.value.body


# ---------------------------------------------------------------------------------------------------------------
# Limits


def _function(i: int) -> dict:
    return {"type": "function", "function": {"name": f"f{i}", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"name": "n" * 257}, "name"),
        ({"description": "d" * 513}, "description"),
        ({"instructions": "i" * 256_001}, "instructions"),
        ({"tools": [_function(i) for i in range(129)]}, "tools"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_p": -0.5}, "top_p"),
    ],
    ids=["name>256", "description>512", "instructions>256000", "tools>128", "metadata>16keys",
         "metadata-key>64", "metadata-value>512", "metadata-value-not-string", "temperature>2", "temperature<0",
         "top_p>1", "top_p<0"],
)
def test_assistant_limits_are_400_naming_the_param(client, kwargs, param):
    with bad_request(param=param):
        client.beta.assistants.create(model="gpt-4o", **kwargs)


def test_limits_at_the_boundary_are_accepted(client):
    a = client.beta.assistants.create(
        model="gpt-4o", name="n" * 256, description="d" * 512,
        tools=[_function(i) for i in range(128)],
        metadata={("k" * 62 + f"{i:02d}"): "v" * 512 for i in range(16)},
        temperature=2, top_p=0,
    )
    assert len(a.name) == 256
    assert len(a.tools) == 128
    assert len(a.metadata) == 16


def test_invalid_tools_are_400(client):
    with bad_request():
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "web_browser"}])
    with bad_request():
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function", "function": {"name": "has space"}}])
    with bad_request():
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "function"}])


def test_an_invalid_response_format_is_400(client):
    with bad_request(param="response_format"):
        client.beta.assistants.create(model="gpt-4o", response_format={"type": "yaml"})


def test_more_than_20_code_interpreter_files_is_400(client):
    ids = [upload(client, f"f{i}.txt", b"x").id for i in range(21)]
    with bad_request() as info:
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}],
                                      tool_resources={"code_interpreter": {"file_ids": ids}})
    assert (info.value.param or "").startswith("tool_resources"), info.value.body
    ok = client.beta.assistants.create(model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": ids[:20]}})
    assert len(ok.tool_resources.code_interpreter.file_ids) == 20


def test_an_unknown_file_id_in_tool_resources_is_400(client):
    # Assumed: rejected as a bad request that names tool_resources (the real API refuses files it cannot find).
    res = {"code_interpreter": {"file_ids": ["file-doesnotexist"]}}
    with bad_request(message_contains="file-doesnotexist") as info:
        client.beta.assistants.create(model="gpt-4o", tool_resources=res)
    assert (info.value.param or "").startswith("tool_resources"), info.value.body
    with bad_request(message_contains="file-doesnotexist"):
        client.beta.threads.create(tool_resources=res)


def test_another_projects_file_cannot_be_attached(client, other_client):
    theirs = upload(other_client, "theirs.txt", b"secret")
    with bad_request(message_contains=theirs.id):
        client.beta.assistants.create(model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [theirs.id]}})


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"role": "system", "content": "x"}, "role"),
        ({"role": "tool", "content": "x"}, "role"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": []}, "content"),
        ({"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "video", "video": {}}]}, "content"),
        ({"role": "user", "content": 7}, "content"),
        ({"role": "user", "content": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
    ids=["role-system", "role-tool", "empty-string", "empty-array", "unknown-part", "content-number",
         "metadata>16"],
)
def test_invalid_messages_are_400_naming_the_param(client, kwargs, param):
    t = client.beta.threads.create()
    with bad_request(param=param):
        client.beta.threads.messages.create(t.id, **kwargs)
    assert client.beta.threads.messages.list(t.id).data == []


def test_an_attachment_with_an_unknown_file_is_400(client):
    t = client.beta.threads.create()
    with bad_request(message_contains="file-doesnotexist"):
        client.beta.threads.messages.create(
            t.id, role="user", content="x",
            attachments=[{"file_id": "file-doesnotexist", "tools": [{"type": "code_interpreter"}]}])


def test_an_invalid_initial_message_fails_thread_creation(client):
    with bad_request():
        client.beta.threads.create(messages=[{"role": "user", "content": "ok"}, {"role": "system", "content": "no"}])


def test_file_upload_errors(http):
    files = {"file": ("a.txt", b"abc", "text/plain")}
    r = http.post("/files", files=files)  # no purpose
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose", r.text
    r = http.post("/files", files=files, data={"purpose": "bogus"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose", r.text
    r = http.post("/files", data={"purpose": "assistants"}, files={"other": ("a.txt", b"abc")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file", r.text


# ---------------------------------------------------------------------------------------------------------------
# List parameters


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_list_limit_out_of_range_is_400(client, limit):
    t = client.beta.threads.create()
    with bad_request(param="limit"):
        client.beta.assistants.list(limit=limit)
    with bad_request(param="limit"):
        client.beta.threads.messages.list(t.id, limit=limit)


def test_list_limit_not_a_number_is_400(http):
    r = http.get("/assistants", params={"limit": "ten"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "limit"


def test_list_bad_order_is_400(client):
    with bad_request(param="order"):
        client.beta.assistants.list(order="sideways")
    with bad_request(param="order"):
        client.files.list(order="up")


def test_files_list_limit_above_10000_is_400(client):
    with bad_request(param="limit"):
        client.files.list(limit=10001)


# ---------------------------------------------------------------------------------------------------------------
# A rejected request changes nothing


def test_a_rejected_create_adds_nothing(isolated_client):
    c = isolated_client
    c.beta.assistants.create(model="gpt-4o", name="existing")
    before = c.beta.assistants.list().model_dump()
    for kwargs in ({"temperature": 9}, {"name": "x" * 300}, {"extra_body": {"bogus": 1}}):
        with pytest.raises(openai.BadRequestError):
            c.beta.assistants.create(model="gpt-4o", **kwargs)
    assert c.beta.assistants.list().model_dump() == before


def test_a_rejected_update_changes_nothing(client):
    a = client.beta.assistants.create(model="gpt-4o", name="stable", metadata={"a": "1"}, temperature=0.7)
    with bad_request(param="temperature"):
        client.beta.assistants.update(a.id, name="changed", metadata={"a": "2"}, temperature=3)
    assert client.beta.assistants.retrieve(a.id).model_dump() == a.model_dump()

    t = client.beta.threads.create(metadata={"a": "1"})
    with bad_request(param="metadata"):
        client.beta.threads.update(t.id, metadata={f"k{i}": "v" for i in range(17)})
    assert client.beta.threads.retrieve(t.id).model_dump() == t.model_dump()

    m = client.beta.threads.messages.create(t.id, role="user", content="x", metadata={"a": "1"})
    with bad_request(param="metadata"):
        client.beta.threads.messages.update(m.id, thread_id=t.id, metadata={"k": "v" * 600})
    assert client.beta.threads.messages.retrieve(m.id, thread_id=t.id).model_dump() == m.model_dump()


# ---------------------------------------------------------------------------------------------------------------
# Projects are isolated


def test_another_project_gets_404_for_this_projects_objects(client, other_client):
    a = client.beta.assistants.create(model="gpt-4o", name="mine")
    f = upload(client, "mine.txt", b"private")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "private"}])
    m = client.beta.threads.messages.list(t.id).data[0]

    for call in (lambda: other_client.beta.assistants.retrieve(a.id),
                 lambda: other_client.beta.assistants.update(a.id, name="stolen"),
                 lambda: other_client.beta.assistants.delete(a.id),
                 lambda: other_client.beta.threads.retrieve(t.id),
                 lambda: other_client.beta.threads.update(t.id, metadata={"x": "y"}),
                 lambda: other_client.beta.threads.delete(t.id),
                 lambda: other_client.beta.threads.messages.list(t.id),
                 lambda: other_client.beta.threads.messages.create(t.id, role="user", content="hi"),
                 lambda: other_client.beta.threads.messages.retrieve(m.id, thread_id=t.id),
                 lambda: other_client.files.retrieve(f.id),
                 lambda: other_client.files.content(f.id),
                 lambda: other_client.files.delete(f.id)):
        with not_found():
            call()

    # Nothing the other project tried had any effect.
    assert client.beta.assistants.retrieve(a.id).name == "mine"
    assert client.beta.threads.retrieve(t.id).metadata == {}
    assert len(client.beta.threads.messages.list(t.id).data) == 1
    assert client.files.content(f.id).content == b"private"


def test_another_projects_lists_are_empty(client, isolated_client):
    client.beta.assistants.create(model="gpt-4o")
    upload(client, "seen-by-a-only.txt", b"a")
    assert isolated_client.beta.assistants.list().data == []
    assert isolated_client.files.list().data == []


# ---------------------------------------------------------------------------------------------------------------
# Strings PostgreSQL cannot store (found by schemathesis)


def _kept_or_400(create, read_back, expected):
    """Assumed: JSON allows "\\u0000"; the server may keep it exactly or refuse it with a 400, never a 500."""
    try:
        obj = create()
    except openai.BadRequestError as e:
        assert e.body["type"] == "invalid_request_error"
        return
    assert read_back(obj) == expected


def test_a_nul_character_in_message_text_is_kept_or_rejected_never_a_500(client):
    t = client.beta.threads.create()
    _kept_or_400(lambda: client.beta.threads.messages.create(t.id, role="user", content="a\x00b"),
                 lambda m: client.beta.threads.messages.retrieve(m.id, thread_id=t.id).content[0].text.value,
                 "a\x00b")


def test_a_nul_character_in_an_assistant_name_or_metadata_is_kept_or_rejected_never_a_500(client):
    _kept_or_400(lambda: client.beta.assistants.create(model="gpt-4o", name="x\x00y"),
                 lambda a: client.beta.assistants.retrieve(a.id).name, "x\x00y")
    _kept_or_400(lambda: client.beta.assistants.create(model="gpt-4o", metadata={"k": "v\x00"}),
                 lambda a: client.beta.assistants.retrieve(a.id).metadata, {"k": "v\x00"})


@pytest.mark.parametrize("path", ["/files", "/assistants", "/threads/{t}/messages"])
def test_a_nul_character_in_a_list_cursor_is_never_a_500(client, http, path):
    t = client.beta.threads.create()
    r = http.get(path.format(t=t.id), params={"after": "x\x00y"})
    assert r.status_code in (200, 400), (r.status_code, r.text)


def test_a_nul_character_in_a_referenced_file_id_is_never_a_500(client, http):
    t = client.beta.threads.create()
    r = http.post(f"/threads/{t.id}/messages", json={
        "role": "user", "content": [{"type": "image_file", "image_file": {"file_id": "file-\x00"}}]})
    assert r.status_code in (400, 404), r.text
