"""WebSocket mode: `client.responses.connect()` (openai-python newest, with `websockets`).

One socket to /v1/responses takes `response.create` events and answers each with the events a streamed create
sends; responses run one after another, continue by previous_response_id (also `store: false` ones, which live
as long as the socket). A bad message gets an `error` event and the socket stays usable; nothing is stored.
"""

from __future__ import annotations

import importlib.util
import json
import time

import psycopg
import pytest
from openai.resources.responses import Responses

from upstream import prompt_text

pytestmark = pytest.mark.runs

# The SDK3 suite (openai newest) runs these; the 1.x suite's client has no such methods.
if not (hasattr(Responses, "connect")
    and importlib.util.find_spec("websockets") is not None):
    pytest.skip("this openai has no responses.connect and websockets", allow_module_level=True)

LAST = ("response.completed", "response.incomplete", "response.failed", "error")


def events_until_last(conn) -> list:
    out = []
    for event in conn:
        out.append(event)
        if event.type in LAST:
            return out
    raise AssertionError(f"the socket closed after {[e.type for e in out]}")


def rows(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("responses", "threads"))


def test_two_responses_and_a_continuation_on_one_socket(client, script):
    script.push_text("The number is seven.")
    script.push_text("You asked about seven.")
    with client.responses.connect() as conn:
        conn.response.create(model=script.model, input="Remember the number 7.")
        first = events_until_last(conn)
        assert first[0].type == "response.created" and first[-1].type == "response.completed"
        assert [e.sequence_number for e in first] == list(range(len(first)))
        assert "response.output_text.delta" in [e.type for e in first]
        done = first[-1].response
        assert done.output_text == "The number is seven." and done.status == "completed"

        conn.response.create(model=script.model, input="Which number?", previous_response_id=done.id)
        second = events_until_last(conn)
        assert second[0].sequence_number == 0 and second[-1].type == "response.completed"
        answer = second[-1].response
        assert answer.previous_response_id == done.id and answer.output_text == "You asked about seven."
        shown = prompt_text(script.requests[-1])
        assert "Remember the number 7." in shown and "The number is seven." in shown and "Which number?" in shown

    # Stored responses outlive the socket, as made over HTTP.
    assert client.responses.retrieve(answer.id).output_text == "You asked about seven."


def test_store_false_responses_continue_on_the_socket_and_end_with_it(client, script, database_url):
    import openai

    script.push_text("Kept for now.")
    script.push_text("The secret was 42.")
    with client.responses.connect() as conn:
        conn.response.create(model=script.model, input="The secret is 42.", store=False)
        unstored = events_until_last(conn)[-1].response
        assert unstored.store is False
        conn.response.create(model=script.model, input="What was the secret?", store=False,
                             previous_response_id=unstored.id)
        follow = events_until_last(conn)[-1].response
        assert follow.output_text == "The secret was 42."
        assert "The secret is 42." in prompt_text(script.requests[-1])
    for gone in (unstored.id, follow.id):
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(gone)
    # Held only while the socket was open: dropped when it closed.
    for _ in range(50):
        with psycopg.connect(database_url) as db:
            left = db.execute("SELECT count(*) FROM responses WHERE id = ANY(%s)",
                              ([unstored.id, follow.id],)).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.1)
    assert left == 0


def test_a_store_false_response_is_not_continued_on_another_socket(client, script):
    script.push_text("Only here.")
    with client.responses.connect() as conn:
        conn.response.create(model=script.model, input="Private.", store=False)
        private = events_until_last(conn)[-1].response
        with client.responses.connect() as other:
            other.response.create(model=script.model, input="And?", previous_response_id=private.id)
            [refused] = events_until_last(other)
            assert refused.type == "error" and refused.error.code == "previous_response_not_found"


def test_bad_messages_get_error_events_and_the_socket_stays_usable(client, script, http, database_url):
    before = rows(database_url)
    calls = len(script.requests)
    with client.responses.connect() as conn:
        conn.send_raw("this is not JSON")
        [bad_json] = events_until_last(conn)
        assert bad_json.type == "error" and bad_json.status == 400
        assert bad_json.error.type == "invalid_request_error" and bad_json.error.code == "invalid_json"

        conn.send_raw(json.dumps({"type": "response.bogus", "model": script.model}))
        [unknown] = events_until_last(conn)
        assert unknown.error.param == "type" and "response.bogus" in unknown.error.message

        conn.response.create(model=script.model, input=[{"type": "no_such_item", "text": "hi"}])
        [bad_item] = events_until_last(conn)
        assert bad_item.status == 400 and bad_item.error.param == "input[0].type"

        conn.response.create(model=script.model, input="hi", background=True)
        [background] = events_until_last(conn)
        assert background.error.param == "background"

        conn.response.create(model=script.model, input="hi", previous_response_id="resp_missing")
        [missing] = events_until_last(conn)
        assert missing.error.code == "previous_response_not_found"

        assert rows(database_url) == before, "a refused message stored something"
        assert len(script.requests) == calls, "a refused message reached the model"

        script.push_text("Still here.")
        conn.response.create(model=script.model, input="Are you there?")
        assert events_until_last(conn)[-1].response.output_text == "Still here."


def test_a_plain_get_of_the_socket_path_is_a_clear_400(http):
    r = http.get("/responses")
    assert r.status_code == 400, r.text
    assert "WebSocket" in r.json()["error"]["message"]
