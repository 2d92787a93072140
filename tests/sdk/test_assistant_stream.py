"""The Python `AssistantEventHandler` over streamed runs whose answers carry annotations: a file_path link to a
CSV the code wrote, and a file_search citation. Their closing `thread.message.delta` carries the annotations,
each with its `index` (as every delta array entry), and the handler's final messages hold them as stored.
"""

from __future__ import annotations

import re

import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from helpers import text_of, upload
from upstream import tool_outputs

pytestmark = pytest.mark.runs

WRITE_CSV = """
import pandas as pd
pd.DataFrame({'n': [1, 2, 3]}).to_csv('/mnt/data/chart.csv', index=False)
print('saved')
"""
NOTES = b"# Project Zephyr\n\nThe Zephyr launch is scheduled for Tuesday, 14 March, at the Lisbon office.\n"
MARK = re.compile(r"\u3010\d+:\d+\u2020[^\u3011]*\u3011")


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.annotation_deltas: list[dict] = []
        self.done: list = []
        self.errors: list[Exception] = []

    @override
    def on_event(self, event) -> None:
        if event.event == "thread.message.delta":
            for part in event.data.delta.content or []:
                if part.type == "text" and part.text and part.text.annotations:
                    self.annotation_deltas.extend(a.model_dump() for a in part.text.annotations)

    @override
    def on_message_done(self, message) -> None:
        self.done.append(message)

    @override
    def on_exception(self, exception: Exception) -> None:
        self.errors.append(exception)


def stream_run(client, thread_id: str, assistant_id: str):
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id,
                                         event_handler=handler) as stream:
        stream.until_done()
        run = stream.get_final_run()
        final = stream.get_final_messages()
    assert not handler.errors, handler.errors
    assert run.status == "completed", run.last_error
    return handler, final


def check_indexed(deltas: list[dict]) -> None:
    assert deltas, "no annotation arrived in a message delta"
    assert [d.get("index") for d in deltas] == list(range(len(deltas))), deltas


def test_a_file_path_link_streams_with_indexed_annotations(client, script):
    reply = "Done. [Download chart.csv](sandbox:/mnt/data/chart.csv) now."
    script.push_tool_call("code_interpreter", {"code": WRITE_CSV})
    script.push_text(reply)
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Write the chart data."}])

    handler, final = stream_run(client, t.id, a.id)
    check_indexed(handler.annotation_deltas)
    answer = final[-1]
    assert text_of(answer) == reply
    (ann,) = [a for p in answer.content if p.type == "text" for a in p.text.annotations]
    assert ann.type == "file_path" and ann.text == "sandbox:/mnt/data/chart.csv"
    assert reply[ann.start_index:ann.end_index] == ann.text
    assert client.files.content(ann.file_path.file_id).content == b"n\n1\n2\n3\n"
    assert handler.done[-1].content[0].text.annotations[0].file_path.file_id == ann.file_path.file_id


def test_a_file_search_citation_streams_with_indexed_annotations(client, script):
    def cite(req) -> str:
        outs = tool_outputs(req)
        marks = MARK.findall(outs[-1]) if outs else []
        return f"It launches on Tuesday, 14 March{marks[0] if marks else '<no mark>'}."

    f = upload(client, "zephyr.md", NOTES)
    vs = client.vector_stores.create(name="zephyr", file_ids=[f.id])
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "file_search"}],
                                      tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    script.push_tool_call("file_search", {"query": "When is the Zephyr launch?"})
    script.push_text(cite)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "When do we launch?"}])

    handler, final = stream_run(client, t.id, a.id)
    check_indexed(handler.annotation_deltas)
    text = text_of(final[-1])
    assert MARK.search(text), text
    (citation,) = [a for p in final[-1].content if p.type == "text" for a in p.text.annotations]
    assert citation.type == "file_citation" and citation.file_citation.file_id == f.id
    assert text[citation.start_index:citation.end_index] == citation.text
