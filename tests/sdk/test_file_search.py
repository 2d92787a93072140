"""file_search in runs: the model's query searched in the assistant's and thread's vector stores, the results
on the run step, and the model's citation marks turned into `file_citation` annotations.

The scripted model calls the `file_search` function (how assistd offers the tool) with a query, then answers
using a citation mark it read in the tool output, as a real model does.
"""

from __future__ import annotations

import re

import pytest

from helpers import upload
from upstream import tool_outputs

pytestmark = pytest.mark.runs

POLL_MS = 100
MARK = re.compile(r"【\d+:\d+†[^】]*】")

def _section(title: str, key: str, filler: str) -> str:
    body = " ".join(f"Note {i} on the {filler} work stream." for i in range(40))
    return f"## {title}\n\n{key}\n\n{body}\n\n"


# Long enough for several chunks at 100 tokens: each key sentence sits in its own part of the file.
NOTES = ("# Project Zephyr\n\n"
         + _section("Launch", "The Zephyr launch is scheduled for Tuesday, 14 March, at the Lisbon office.", "events")
         + _section("Budget", "The budget for the first quarter is 1.2 million euros, mostly for hiring.", "finance")
         + _section("Risks", "Supplier delays could move the hardware milestone by two weeks.", "vendor")).encode()
SMALL_CHUNKS = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}


def cite_first_result(req) -> str:
    """Answers with the first citation mark the last file_search output offered, or says what it saw."""
    outputs = tool_outputs(req)
    marks = MARK.findall(outputs[-1]) if outputs else []
    if not marks:
        return f"NO MARK in {outputs!r}"
    return f"It launches on Tuesday, 14 March{marks[0]}."


def searchable_assistant(client, script, **kw):
    f = upload(client, "zephyr.md", NOTES)
    vs = client.vector_stores.create(name="zephyr docs", file_ids=[f.id], chunking_strategy=SMALL_CHUNKS)
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "file_search", **kw}],
                                      tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    return f, vs, a


def test_a_run_searches_the_assistants_store_and_cites_what_it_found(client, script):
    f, vs, a = searchable_assistant(client, script)
    script.push_tool_call("file_search", {"query": "When is the Zephyr launch?"})
    script.push_text(cite_first_result)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "When do we launch?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error

    # The model was offered the tool and told how to cite.
    first = script.requests[-2]
    assert "file_search" in [tool["function"]["name"] for tool in first["tools"]]
    assert "【" in first["messages"][0]["content"]
    # It read the passage about the launch, first, behind its mark.
    output = tool_outputs(script.requests[-1])[-1]
    first_passage = output.split("【0:1†")[0]
    assert "【0:0†zephyr.md】" in first_passage and "Tuesday, 14 March" in first_passage, output

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    assert call.file_search.ranking_options.ranker == "default_2024_08_21"
    top = call.file_search.results[0]
    assert top.file_id == f.id and top.file_name == "zephyr.md"
    assert 0 < top.score <= 1
    assert "Tuesday, 14 March" in top.content[0].text

    answer = client.beta.threads.messages.list(t.id).data[0]
    text = answer.content[0].text
    assert text.value.startswith("It launches on Tuesday, 14 March【0:0†zephyr.md】"), text.value
    [citation] = text.annotations
    assert citation.type == "file_citation"
    assert citation.file_citation.file_id == f.id
    assert citation.text == "【0:0†zephyr.md】"
    assert text.value[citation.start_index:citation.end_index] == citation.text


def test_the_threads_store_is_searched_too_and_max_num_results_is_kept(client, script):
    f = upload(client, "zephyr.md", NOTES)
    vs = client.vector_stores.create(name="thread docs", file_ids=[f.id], chunking_strategy=SMALL_CHUNKS)
    a = client.beta.assistants.create(model=script.model,
                                      tools=[{"type": "file_search", "file_search": {"max_num_results": 1}}])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Budget?"}],
                                   tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    script.push_tool_call("file_search", {"query": "work stream budget launch supplier"})
    script.push_text(cite_first_result)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    results = steps[0].step_details.tool_calls[0].file_search.results
    assert len(results) == 1 and results[0].file_id == f.id
    # Without the limit the same query finds several chunks.
    assert len(client.vector_stores.search(vs.id, query="work stream budget launch supplier").data) > 1


def test_without_any_store_the_model_is_told_there_is_nothing_to_search(client, script):
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "file_search"}])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Look it up."}])
    script.push_tool_call("file_search", {"query": "anything"})
    script.push_text(lambda req: "seen: " + tool_outputs(req)[-1])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    answer = client.beta.threads.messages.list(t.id).data[0].content[0].text
    assert answer.value == "seen: No files have been given to search."
    assert answer.annotations == []


def test_a_file_attached_for_file_search_goes_into_the_threads_own_store(client, script):
    f = upload(client, "zephyr.md", NOTES)
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "file_search"}])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "When is the launch?",
                                              "attachments": [{"file_id": f.id, "tools": [{"type": "file_search"}]}]}])
    script.push_tool_call("file_search", {"query": "Zephyr launch scheduled"})
    script.push_text(cite_first_result)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error

    [store_id] = client.beta.threads.retrieve(t.id).tool_resources.file_search.vector_store_ids
    assert [vf.id for vf in client.vector_stores.files.list(store_id).data] == [f.id]
    text = client.beta.threads.messages.list(t.id).data[0].content[0].text
    assert text.annotations[0].file_citation.file_id == f.id

    # A second run reuses the store rather than making another.
    script.push_text("again")
    client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert client.beta.threads.retrieve(t.id).tool_resources.file_search.vector_store_ids == [store_id]


def test_the_vector_stores_helper_makes_a_store_from_files(client):
    f = upload(client, "zephyr.md", NOTES)
    t = client.beta.threads.create(tool_resources={"file_search": {"vector_stores": [
        {"file_ids": [f.id], "chunking_strategy": SMALL_CHUNKS, "metadata": {"made": "by helper"}}]}})
    [store_id] = t.tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.file_counts.completed == 1 and store.metadata == {"made": "by helper"}
    assert client.beta.threads.retrieve(t.id).tool_resources.file_search.vector_store_ids == [store_id]

    a = client.beta.assistants.create(model="m", tools=[{"type": "file_search"}],
                                      tool_resources={"file_search": {"vector_stores": [{"file_ids": [f.id]}]}})
    [a_store] = a.tool_resources.file_search.vector_store_ids
    assert a_store != store_id and client.vector_stores.retrieve(a_store).file_counts.total == 1


def test_file_search_resources_are_checked_before_anything_is_made(isolated_client):
    c = isolated_client
    f = upload(c, "zephyr.md", NOTES)
    vs = c.vector_stores.create(name="one")
    cases = [
        ({"vector_store_ids": ["vs_nope"]}, "tool_resources.file_search.vector_store_ids[0]", "invalid_value"),
        ({"vector_store_ids": [vs.id, vs.id]}, "tool_resources.file_search.vector_store_ids",
         "array_above_max_length"),
        ({"vector_stores": [{"file_ids": ["file-nope"]}]}, "tool_resources.file_search.vector_stores[0].file_ids[0]",
         "invalid_value"),
        ({"vector_stores": [{"file_ids": [f.id], "chunking_strategy": {"type": "static"}}]},
         "tool_resources.file_search.vector_stores[0].chunking_strategy.static", "missing_required_parameter"),
        ({"vector_store_ids": [vs.id], "vector_stores": [{"file_ids": [f.id]}]}, "tool_resources.file_search",
         "invalid_value"),
        ({"vector_store_id": vs.id}, "tool_resources.file_search.vector_store_id", "unknown_parameter"),
    ]
    for resources, param, code in cases:
        for create in (lambda: c.beta.threads.create(tool_resources={"file_search": resources}),
                       lambda: c.beta.assistants.create(model="m", tools=[{"type": "file_search"}],
                                                        tool_resources={"file_search": resources})):
            try:
                create()
            except Exception as e:  # noqa: BLE001 - the error body is what is checked
                body = getattr(e, "body", None)
                assert getattr(e, "status_code", None) == 400, (resources, e)
                assert (body["param"], body["code"]) == (param, code), (resources, body)
            else:
                raise AssertionError(f"accepted {resources}")
    assert [s.id for s in c.vector_stores.list().data] == [vs.id]
    assert c.beta.assistants.list().data == []
