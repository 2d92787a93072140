"""`GET /v1/threads`, an assistd extension (OpenAI's public API had no thread list), through the SDK's raw client.

The SDK has no method for it, so the tests call `client.get(...)` with the list's model: the same
pagination as every list, and only the calling project's threads made through the threads API.
"""

from __future__ import annotations

import openai
import pytest
from openai.pagination import SyncCursorPage
from openai.types.beta import Thread

from helpers import api_error

Page = SyncCursorPage[Thread]


def thread_page(client, **params) -> Page:
    return client.get_api_list("/threads", model=Thread, page=Page,
                               options={"params": params, "headers": {"OpenAI-Beta": "assistants=v2"}})


def test_threads_list_newest_first_and_page_with_after_and_before(isolated_client):
    made = [isolated_client.beta.threads.create(metadata={"n": str(i)}).id for i in range(5)]
    newest_first = list(reversed(made))

    page = thread_page(isolated_client)
    assert [t.id for t in page.data] == newest_first
    assert page.has_more is False

    first = thread_page(isolated_client, limit=2)
    assert [t.id for t in first.data] == newest_first[:2] and first.has_more is True
    second = thread_page(isolated_client, limit=2, after=first.data[-1].id)
    assert [t.id for t in second.data] == newest_first[2:4] and second.has_more is True
    back = thread_page(isolated_client, limit=2, before=second.data[0].id)
    assert [t.id for t in back.data] == newest_first[:2]

    ascending = thread_page(isolated_client, order="asc", limit=3)
    assert [t.id for t in ascending.data] == made[:3]
    assert ascending.data[0].metadata == {"n": "0"}

    # The SDK's auto-pagination walks every page along has_more / last_id.
    assert [t.id for p in thread_page(isolated_client, limit=2).iter_pages() for t in p.data] == newest_first

    # create-and-run makes a listed thread too; deleting one takes it off the list.
    isolated_client.beta.threads.delete(made[0])
    assert made[0] not in [t.id for t in thread_page(isolated_client).data]


def test_threads_list_only_the_calling_projects_own(isolated_client, other_client):
    mine = isolated_client.beta.threads.create().id
    theirs = other_client.beta.threads.create().id
    assert [t.id for t in thread_page(isolated_client).data] == [mine]
    assert theirs in [t.id for t in thread_page(other_client, limit=100).data]
    assert mine not in [t.id for t in thread_page(other_client, limit=100).data]
    # Another project's id as a cursor names nothing: an empty page.
    assert thread_page(isolated_client, after=theirs).data == []


def test_threads_list_leaves_out_the_threads_behind_responses_and_conversations(isolated_client, script):
    script.push_text("Hello.")
    isolated_client.responses.create(model=script.model, input="Hi")
    isolated_client.conversations.create()
    assert thread_page(isolated_client).data == []
    script.push_text("Hello again.")
    via_run = isolated_client.beta.threads.create_and_run(
        assistant_id=isolated_client.beta.assistants.create(model=script.model).id)
    assert [t.id for t in thread_page(isolated_client).data] == [via_run.thread_id]


@pytest.mark.parametrize("params, param", [({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                                           ({"order": "sideways"}, "order")])
def test_threads_list_refuses_bad_paging_parameters(isolated_client, params, param):
    isolated_client.beta.threads.create()
    with api_error(openai.BadRequestError, 400, param=param):
        thread_page(isolated_client, **params)
