"""A response's model context counted and compacted: `client.responses.input_tokens.count()`,
`client.responses.compact()` and `context_management` compaction on create (openai-python newest).

Counting uses the server's own estimate (the one `truncation: auto` cuts by): a token per three bytes of text
plus one, four per message, the tools' JSON counted as one more message. A compaction is one call to the model
asking for a summary; its `compaction` item, passed back as input, puts that summary before the model.
"""

from __future__ import annotations

import psycopg
import pytest
from openai.resources.responses import Responses

from helpers import bad_request
from upstream import prompt_text

pytestmark = pytest.mark.runs

# The SDK3 suite (openai newest) runs these; the 1.x suite's client has no such methods.
if not (hasattr(Responses, "compact") and hasattr(Responses, "input_tokens")):
    pytest.skip("this openai has no responses.compact/input_tokens", allow_module_level=True)

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False}


def tokens(text: str) -> int:
    """The estimate of one chat message holding `text`."""
    return 4 + len(text.encode()) // 3 + 1


NO_TOOLS = tokens("[]")


def rows(database_url: str) -> tuple[int, int, int]:
    with psycopg.connect(database_url) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("responses", "threads", "messages"))


def test_input_tokens_count_a_known_input(client):
    text = "x" * 300
    counted = client.responses.input_tokens.count(model="any", input=text)
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens == tokens(text) + NO_TOOLS

    with_instructions = client.responses.input_tokens.count(input=text, instructions="Be brief.")
    assert with_instructions.input_tokens == tokens(text) + tokens("Be brief.") + NO_TOOLS

    with_tool = client.responses.input_tokens.count(input=text, tools=[WEATHER])
    assert with_tool.input_tokens > counted.input_tokens + 10


def test_input_tokens_count_the_chain_a_previous_response_id_names(client, script):
    script.push_text("Noted: the code word is heron, and I will keep it in mind for later.")
    first = client.responses.create(model=script.model, input="The code word is heron.")
    alone = client.responses.input_tokens.count(model=script.model, input="Which word?").input_tokens
    chained = client.responses.input_tokens.count(model=script.model, input="Which word?",
                                                  previous_response_id=first.id).input_tokens
    held = tokens("The code word is heron.") + tokens(first.output_text)
    assert chained == alone + held


def test_input_tokens_refuse_bad_input_and_store_nothing(client, http, database_url):
    before = rows(database_url)
    with bad_request(param="input[0].type"):
        client.responses.input_tokens.count(input=[{"type": "no_such_item", "text": "hi"}])
    with bad_request(param="previous_response_id", code="previous_response_not_found"):
        client.responses.input_tokens.count(input="hi", previous_response_id="resp_missing")
    r = http.post("/responses/input_tokens", json={"input": "hi", "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream", r.text
    assert rows(database_url) == before


def test_compact_keeps_the_user_messages_and_a_summary_that_continues_the_conversation(client, script):
    script.push_text("Noted: heron.")
    first = client.responses.create(model=script.model, input="The code word is heron.")
    script.push_text("SUMMARY: the user chose the code word heron and the colour teal.")
    compacted = client.responses.compact(model=script.model, previous_response_id=first.id,
                                         input=[{"role": "user", "content": "The colour is teal."}])
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    assert [(i.type, getattr(i, "role", None)) for i in compacted.output] == [
        ("message", "user"), ("message", "user"), ("compaction", None)]
    assert compacted.output[0].content[0].text == "The code word is heron."
    item = compacted.output[-1]
    assert item.id.startswith("cmp_") and item.encrypted_content
    assert "heron" not in item.encrypted_content  # opaque, not the summary in clear
    assert compacted.usage.total_tokens > 0
    # The summariser saw the whole conversation, and no tools.
    asked = script.requests[-1]
    assert "heron" in prompt_text(asked) and "Noted: heron." in prompt_text(asked) and "teal" in prompt_text(asked)
    assert "tools" not in asked

    script.push_text("Heron, and teal.")
    later = client.responses.create(model=script.model, input=[
        *[o.model_dump(exclude_none=True) for o in compacted.output],
        {"role": "user", "content": "What did I choose?"}])
    assert later.output_text == "Heron, and teal."
    shown = prompt_text(script.requests[-1])
    assert "SUMMARY: the user chose the code word heron and the colour teal." in shown
    assert "What did I choose?" in shown
    kinds = [i.type for i in client.responses.input_items.list(later.id, order="asc").data]
    assert kinds == ["message", "message", "compaction", "message"]

    # A response chained to it keeps the summary in its context.
    script.push_text("Still heron.")
    client.responses.create(model=script.model, previous_response_id=later.id, input="And the word?")
    assert "SUMMARY: the user chose" in prompt_text(script.requests[-1])


def test_bad_compaction_requests_are_refused_and_store_nothing(client, script, http, database_url):
    before = rows(database_url)
    calls = len(script.requests)
    with bad_request(param="input"):
        client.responses.compact(model=script.model)
    with bad_request(param="previous_response_id", code="previous_response_not_found"):
        client.responses.compact(model=script.model, previous_response_id="resp_missing")
    with bad_request(param="input[0].type"):
        client.responses.compact(model=script.model, input=[{"type": "no_such_item"}])
    r = http.post("/responses/compact", json={"model": script.model, "input": "hi", "tools": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text
    # A compaction item this server did not make.
    with bad_request(param="input[0].encrypted_content", code="invalid_encrypted_content"):
        client.responses.create(model=script.model, input=[
            {"type": "compaction", "encrypted_content": "not-ours"}, {"role": "user", "content": "hi"}])
    # context_management asks for what the server does not do.
    for entry, param in [({"type": "truncate", "compact_threshold": 5000}, "context_management[0].type"),
                         ({"type": "compaction", "compact_threshold": 10}, "context_management[0].compact_threshold"),
                         ({"type": "compaction"}, "context_management[0].compact_threshold")]:
        with bad_request(param=param):
            client.responses.create(model=script.model, input="hi", context_management=[entry])
    assert rows(database_url) == before
    assert len(script.requests) == calls, "no bad request reached the model"


def test_context_management_compacts_past_its_threshold(client, script):
    long = "The inventory holds " + ", ".join(f"{i} crates of item {i}" for i in range(200)) + "."
    script.push_text("Noted, the whole inventory.")
    first = client.responses.create(model=script.model, input=long,
                                    context_management=[{"type": "compaction", "compact_threshold": 100000}])
    assert [i.type for i in first.output] == ["message"], "below the threshold nothing is compacted"

    script.push_text("SUMMARY: an inventory of 200 items, item i has i crates.")
    script.push_text("Item 7 has 7 crates.")
    second = client.responses.create(model=script.model, previous_response_id=first.id,
                                     input="How many crates of item 7?",
                                     context_management=[{"type": "compaction", "compact_threshold": 1000}])
    assert second.previous_response_id == first.id
    assert [i.type for i in second.output] == ["compaction", "message"]
    assert second.output[1].content[0].text == "Item 7 has 7 crates."
    summarised, answered = script.requests[-2], script.requests[-1]
    assert "199 crates of item 199" in prompt_text(summarised) and "tools" not in summarised
    # The model answered from the summary and the new question, not the long inventory.
    assert "SUMMARY: an inventory of 200 items" in prompt_text(answered)
    assert "199 crates of item 199" not in prompt_text(answered)
    assert "How many crates of item 7?" in prompt_text(answered)
    assert client.responses.retrieve(second.id).output[0].type == "compaction"

    # Streamed, the compaction item is the first output item too.
    script.push_text("SUMMARY again.")
    script.push_text("Streamed answer.")
    events = list(client.responses.create(model=script.model, input=long, stream=True,
                                          context_management=[{"type": "compaction", "compact_threshold": 1000}]))
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [(e.output_index, e.item.type) for e in added] == [(0, "compaction"), (1, "message")]
    done = events[-1]
    assert done.type == "response.completed"
    assert [i.type for i in done.response.output] == ["compaction", "message"]
