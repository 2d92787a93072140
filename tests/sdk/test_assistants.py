"""Assistants: create, retrieve, list, modify, delete through the official SDK."""

from __future__ import annotations

import time

import pytest

from helpers import bad_request, list_all, not_found, png_bytes, upload

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_create_keeps_every_field_it_was_given(client):
    f = upload(client, "data.csv", b"a,b\n1,2\n")
    a = client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        description="Answers with code",
        instructions="You are a personal math tutor.",
        tools=[{"type": "code_interpreter"}, WEATHER_TOOL],
        tool_resources={"code_interpreter": {"file_ids": [f.id]}},
        metadata={"team": "math", "tier": "1"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert a.id.startswith("asst_")
    assert a.object == "assistant"
    assert abs(a.created_at - time.time()) < 60
    assert a.model == "gpt-4o"
    assert a.name == "Math Tutor"
    assert a.description == "Answers with code"
    assert a.instructions == "You are a personal math tutor."
    assert [t.type for t in a.tools] == ["code_interpreter", "function"]
    fn = a.tools[1].function
    assert fn.name == "get_weather"
    assert fn.description == "Current weather for a city"
    assert fn.parameters == WEATHER_TOOL["function"]["parameters"]
    assert a.tool_resources.code_interpreter.file_ids == [f.id]
    assert a.metadata == {"team": "math", "tier": "1"}
    assert a.temperature == pytest.approx(0.5)
    assert a.top_p == pytest.approx(0.9)
    assert a.response_format.type == "json_object"


def test_create_with_only_a_model_fills_in_the_defaults(client):
    a = client.beta.assistants.create(model="gpt-4o-mini")
    assert a.name is None
    assert a.description is None
    assert a.instructions is None
    assert a.tools == []
    assert a.metadata == {}
    # Assumed defaults, as the real API documents them: temperature 1, top_p 1, response_format "auto".
    assert a.temperature == pytest.approx(1.0)
    assert a.top_p == pytest.approx(1.0)
    assert a.response_format == "auto"


def test_create_accepts_a_json_schema_response_format(client):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    a = client.beta.assistants.create(
        model="gpt-4o",
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
    )
    got = client.beta.assistants.retrieve(a.id).response_format
    assert got.type == "json_schema"
    assert got.json_schema.name == "answer"
    assert got.json_schema.schema_ == schema


def test_a_json_schema_response_format_needs_its_schema_and_name(isolated_client):
    c = isolated_client
    for fmt, param in [({"type": "json_schema"}, "response_format.json_schema"),
                       ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name")]:
        with bad_request(param=param) as info:
            c.beta.assistants.create(model="gpt-4o", response_format=fmt)
        assert info.value.body["code"] == "missing_required_parameter"
    assert c.beta.assistants.list().data == []


def test_enabled_tools_get_their_resource_entries_and_file_search_its_ranking(client):
    a = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}, {"type": "file_search"}])
    # As OpenAI answers: an empty resource entry per enabled tool, file_search's default ranking options.
    assert a.tool_resources.code_interpreter.file_ids == []
    assert a.tool_resources.file_search.vector_store_ids == []
    assert a.tools[1].file_search.ranking_options.ranker == "default_2024_08_21"
    assert a.tools[1].file_search.ranking_options.score_threshold == 0.0
    assert client.beta.assistants.retrieve(a.id).model_dump() == a.model_dump()

    plain = client.beta.assistants.create(model="gpt-4o")
    assert plain.tool_resources.code_interpreter is None
    added = client.beta.assistants.update(plain.id, tools=[{"type": "code_interpreter"}])
    assert added.tool_resources.code_interpreter.file_ids == []


def test_reasoning_effort_takes_the_specs_values(isolated_client):
    c = isolated_client
    assert c.beta.assistants.create(model="o3", reasoning_effort="high").reasoning_effort == "high"
    with bad_request(param="reasoning_effort") as info:
        c.beta.assistants.create(model="o3", reasoning_effort="extreme")
    assert info.value.body["code"] == "invalid_value"
    assert len(c.beta.assistants.list().data) == 1


def test_retrieve_returns_what_create_returned(client):
    a = client.beta.assistants.create(model="gpt-4o", name="Same", metadata={"k": "v"},
                                      tools=[{"type": "code_interpreter"}])
    got = client.beta.assistants.retrieve(a.id)
    assert got.model_dump() == a.model_dump()


def test_another_key_of_the_same_project_sees_the_assistant(client, client_a2):
    a = client.beta.assistants.create(model="gpt-4o", name="shared")
    assert client_a2.beta.assistants.retrieve(a.id).name == "shared"


def test_list_is_newest_first_by_default(isolated_client):
    c = isolated_client
    ids = [c.beta.assistants.create(model="gpt-4o", name=f"a{i}").id for i in range(3)]
    page = c.beta.assistants.list()
    assert [a.id for a in page.data] == ids[::-1]
    assert page.first_id == ids[-1]
    assert page.last_id == ids[0]
    assert page.has_more is False


def test_list_in_ascending_order(isolated_client):
    c = isolated_client
    ids = [c.beta.assistants.create(model="gpt-4o").id for _ in range(3)]
    assert [a.id for a in c.beta.assistants.list(order="asc").data] == ids


def test_list_of_an_empty_project_is_empty(isolated_client):
    page = isolated_client.beta.assistants.list()
    assert page.data == []
    assert page.first_id is None
    assert page.last_id is None
    assert page.has_more is False


def test_list_raw_json_has_the_openai_list_shape(isolated_client):
    c = isolated_client
    a = c.beta.assistants.create(model="gpt-4o")
    raw = c.beta.assistants.with_raw_response.list().parse()
    body = c.beta.assistants.with_raw_response.list().http_response.json()
    assert body == {"object": "list", "data": body["data"], "first_id": a.id, "last_id": a.id, "has_more": False}
    assert raw.data[0].id == a.id


def test_list_limit_and_after_cursor_walk_every_page_once(isolated_client):
    c = isolated_client
    # 25 assistants made back to back: many share a created_at second, so order must break ties stably.
    ids = [c.beta.assistants.create(model="gpt-4o", name=str(i)).id for i in range(25)]

    first = c.beta.assistants.list(limit=10)
    assert len(first.data) == 10
    assert first.has_more is True
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id

    desc = list_all(c.beta.assistants.list, limit=10)
    assert [a.id for a in desc] == ids[::-1]
    asc = list_all(c.beta.assistants.list, limit=7, order="asc")
    assert [a.id for a in asc] == ids

    last = c.beta.assistants.list(limit=10, after=first.data[-1].id)
    assert [a.id for a in last.data] == ids[::-1][10:20]
    assert last.has_more is True
    tail = c.beta.assistants.list(limit=10, after=last.data[-1].id)
    assert [a.id for a in tail.data] == ids[::-1][20:]
    assert tail.has_more is False


def test_list_limit_equal_to_the_count_has_no_more(isolated_client):
    c = isolated_client
    for _ in range(3):
        c.beta.assistants.create(model="gpt-4o")
    page = c.beta.assistants.list(limit=3)
    assert len(page.data) == 3
    assert page.has_more is False


def test_list_before_cursor_returns_the_page_just_before_it(isolated_client):
    c = isolated_client
    ids = [c.beta.assistants.create(model="gpt-4o").id for _ in range(8)]
    desc = ids[::-1]  # newest first
    # Assumed semantics (as the real API): `before` gives the objects nearest the cursor on its
    # earlier side, still in the requested order, with has_more telling whether more lie beyond.
    page = c.beta.assistants.list(before=desc[5], limit=2)
    assert [a.id for a in page.data] == desc[3:5]
    assert page.has_more is True
    page = c.beta.assistants.list(before=desc[2], limit=5)
    assert [a.id for a in page.data] == desc[0:2]
    page = c.beta.assistants.list(before=ids[5], order="asc", limit=2)
    assert [a.id for a in page.data] == ids[3:5]


def test_the_sdk_auto_paginator_iterates_everything(isolated_client):
    c = isolated_client
    ids = [c.beta.assistants.create(model="gpt-4o").id for _ in range(7)]
    assert [a.id for a in c.beta.assistants.list(limit=3)] == ids[::-1]


def test_modify_changes_only_the_given_fields(client):
    f = upload(client, "x.png", png_bytes())
    a = client.beta.assistants.create(
        model="gpt-4o", name="Before", description="desc", instructions="inst",
        tools=[{"type": "code_interpreter"}], tool_resources={"code_interpreter": {"file_ids": [f.id]}},
        metadata={"a": "1"}, temperature=0.3,
    )
    m = client.beta.assistants.update(a.id, name="After", metadata={"a": "2", "b": "3"})
    assert m.id == a.id
    assert m.created_at == a.created_at
    assert m.name == "After"
    assert m.metadata == {"a": "2", "b": "3"}
    assert m.description == "desc"
    assert m.instructions == "inst"
    assert m.model == "gpt-4o"
    assert [t.type for t in m.tools] == ["code_interpreter"]
    assert m.tool_resources.code_interpreter.file_ids == [f.id]
    assert m.temperature == pytest.approx(0.3)
    assert client.beta.assistants.retrieve(a.id).model_dump() == m.model_dump()


def test_modify_with_no_fields_changes_nothing(client):
    a = client.beta.assistants.create(model="gpt-4o", name="same", metadata={"k": "v"})
    assert client.beta.assistants.update(a.id).model_dump() == a.model_dump()


def test_concurrent_creates_are_each_listed_exactly_once(isolated_client):
    from concurrent.futures import ThreadPoolExecutor
    c = isolated_client
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: c.beta.assistants.create(model="gpt-4o", name=str(i)).id, range(40)))
    assert len(set(ids)) == 40
    desc = [a.id for a in list_all(c.beta.assistants.list, limit=9)]
    asc = [a.id for a in list_all(c.beta.assistants.list, limit=9, order="asc")]
    assert sorted(desc) == sorted(ids)
    assert asc == desc[::-1]


def test_modify_replaces_tools_model_and_sampling(client):
    a = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    m = client.beta.assistants.update(a.id, model="gpt-4o-mini", tools=[WEATHER_TOOL], temperature=1.5, top_p=0.2,
                                      instructions="new")
    assert m.model == "gpt-4o-mini"
    assert [t.type for t in m.tools] == ["function"]
    assert m.temperature == pytest.approx(1.5)
    assert m.top_p == pytest.approx(0.2)
    assert m.instructions == "new"


def test_modify_with_null_clears_a_nullable_field(client):
    # Assumed: an explicit null clears the field (the spec types name/description as nullable).
    a = client.beta.assistants.create(model="gpt-4o", name="named", description="d")
    m = client.beta.assistants.update(a.id, name=None)
    assert m.name is None
    assert m.description == "d"


def test_delete_returns_a_deleted_object_and_then_404(client):
    a = client.beta.assistants.create(model="gpt-4o")
    d = client.beta.assistants.delete(a.id)
    assert d.id == a.id
    assert d.object == "assistant.deleted"
    assert d.deleted is True
    with not_found(message=f"No assistant found with id '{a.id}'."):
        client.beta.assistants.retrieve(a.id)
    with not_found():
        client.beta.assistants.delete(a.id)
    assert a.id not in [x.id for x in client.beta.assistants.list(limit=100)]
