"""Items passed between responses by reference, and function calls answered later: through `client.responses`.

An `item_reference` names an item of an earlier response or conversation (a message, a function call, a
function_call_output) and reads as that item; function outputs answer the calls a response ended with
whether the response is named by previous_response_id or is the newest in a conversation, and also after
the run that waited for them expired.
"""

from __future__ import annotations

import base64

import psycopg
import pytest

from helpers import bad_request, list_all, not_found, png_bytes, text_pdf_bytes, upload
from upstream import prompt_text, tool_outputs

pytestmark = pytest.mark.runs

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": False}


def ref(item_id: str) -> dict:
    return {"type": "item_reference", "id": item_id}


def test_references_to_an_earlier_responses_messages_reach_the_model(client, script):
    script.push_text("The code word is heron.")
    first = client.responses.create(model=script.model, input="Tell me a code word.")
    asked = client.responses.input_items.list(first.id).data[0].id
    answer = first.output[0].id

    script.push_text("ok")
    second = client.responses.create(model=script.model, input=[
        ref(asked), ref(answer), {"role": "user", "content": "Repeat it."}])
    sent = script.requests[-1]
    roles = [m["role"] for m in sent["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]
    assert "Tell me a code word." in prompt_text(sent) and "The code word is heron." in prompt_text(sent)
    # The referenced items are the input's too, as the client would have passed them.
    kinds = [(i.type, i.role) for i in client.responses.input_items.list(second.id, order="asc").data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]


def test_a_reference_already_in_the_chain_is_not_repeated(client, script):
    script.push_text("Noted.")
    first = client.responses.create(model=script.model, input="Remember: 7.")
    script.push_text("Seven.")
    client.responses.create(model=script.model, previous_response_id=first.id,
                            input=[ref(first.output[0].id), {"role": "user", "content": "Which number?"}])
    assert prompt_text(script.requests[-1]).count("Noted.") == 1


def test_a_referenced_function_call_is_answered_in_a_new_chain(client, script):
    script.push_function_call("get_weather", {"city": "Rome"}, call_id="call_rome")
    first = client.responses.create(model=script.model, input="Weather in Rome?", tools=[WEATHER])
    call = next(i for i in first.output if i.type == "function_call")

    script.push_text(lambda req: f"Rome: {tool_outputs(req)[-1]}.")
    second = client.responses.create(model=script.model, tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Rome?"}, ref(call.id),
        {"type": "function_call_output", "call_id": "call_rome", "output": "warm"}])
    assert second.output_text == "Rome: warm."
    sent = script.requests[-1]
    assert [c["id"] for m in sent["messages"] for c in m.get("tool_calls") or []] == ["call_rome"]


def test_unknown_and_other_projects_references_are_refused(client, other_client, script):
    script.push_text("mine")
    mine = client.responses.create(model=script.model, input="private")
    before = len(script.requests), len(client.responses.input_items.list(mine.id).data)
    with not_found():
        client.responses.create(model=script.model, input=[ref("msg_doesnotexist")])
    with not_found():
        other_client.responses.create(model=script.model, input=[ref(mine.output[0].id)])
    with not_found():
        other_client.conversations.create(items=[ref(mine.output[0].id)])
    assert (len(script.requests), len(client.responses.input_items.list(mine.id).data)) == before


def test_a_conversation_item_can_be_added_by_reference(client, script):
    script.push_text("Bonjour.")
    r = client.responses.create(model=script.model, input="Say hello in French.")
    conv = client.conversations.create(items=[ref(r.output[0].id)])
    items = client.conversations.items.list(conv.id).data
    assert [(i.role, i.content[0].text) for i in items] == [("assistant", "Bonjour.")]
    # Referencing it again in the same conversation adds nothing.
    client.conversations.items.create(conv.id, items=[ref(items[0].id)])
    assert len(client.conversations.items.list(conv.id).data) == 1


def test_function_outputs_answer_the_conversations_newest_response(client, script):
    conv = client.conversations.create()
    script.push_function_call("get_weather", {"city": "Lima"}, call_id="call_lima")
    first = client.responses.create(model=script.model, conversation=conv.id, input="Weather in Lima?",
                                    tools=[WEATHER])
    assert [i.type for i in first.output] == ["function_call"]

    script.push_text(lambda req: f"Lima is {tool_outputs(req)[-1]}.")
    second = client.responses.create(model=script.model, conversation=conv.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": "call_lima", "output": "grey"}])
    assert second.status == "completed" and second.output_text == "Lima is grey."
    assert second.conversation.id == conv.id
    assert [i.type for i in client.responses.retrieve(first.id).output] == ["function_call"]

    script.push_text(lambda req: "still grey" if "Lima is grey." in prompt_text(req) else "lost")
    third = client.responses.create(model=script.model, conversation=conv.id, input="And now?")
    assert third.output_text == "still grey"


def test_function_outputs_after_the_waiting_run_expired(client, script, database_url):
    script.push_function_call("get_weather", {"city": "Oslo"}, call_id="call_late")
    first = client.responses.create(model=script.model, input="Weather in Oslo?", tools=[WEATHER])
    with psycopg.connect(database_url) as conn:
        run_id = conn.execute("SELECT run_id FROM responses WHERE id = %s", (first.id,)).fetchone()[0]
        conn.execute("UPDATE runs SET status = 'expired', data = data || '{\"status\": \"expired\"}' "
                     "WHERE id = %s", (run_id,))

    script.push_text(lambda req: f"Oslo: {tool_outputs(req)[-1]}.")
    late = client.responses.create(model=script.model, previous_response_id=first.id, tools=[WEATHER],
                                   input=[{"type": "function_call_output", "call_id": "call_late", "output": "snow"}])
    assert late.status == "completed" and late.output_text == "Oslo: snow."
    sent = script.requests[-1]
    assert "Weather in Oslo?" in prompt_text(sent)
    assert [c["id"] for m in sent["messages"] for c in m.get("tool_calls") or []] == ["call_late"]
    assert client.responses.retrieve(first.id).status == "completed"


# -- input_file parts -------------------------------------------------------------------------------------------

def data_url(data: bytes, mime: str = "text/plain") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def file_count(client) -> int:
    return len(list_all(client.files.list))


def test_an_input_file_by_id_is_read_by_the_model(client, script):
    pdf = upload(client, "memo.pdf", text_pdf_bytes("Quarterly memo", "Revenue rose 12 percent"), purpose="user_data")
    script.push_text("Read it.")
    r = client.responses.create(model=script.model, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "Summarise the memo."}, {"type": "input_file", "file_id": pdf.id}]}])
    shown = prompt_text(script.requests[-1])
    assert "Revenue rose 12 percent" in shown and "memo.pdf" in shown and "Summarise the memo." in shown
    [item] = client.responses.input_items.list(r.id).data
    assert [p.type for p in item.content] == ["input_text", "input_file"] and item.content[1].file_id == pdf.id


def test_inline_file_data_is_read_without_being_stored(client, script):
    before = file_count(client)
    script.push_text("ok")
    client.responses.create(model=script.model, input=[{"role": "user", "content": [
        {"type": "input_file", "filename": "notes.md", "file_data": data_url(b"# Notes\nThe door code is 4711.")}]}])
    assert "The door code is 4711." in prompt_text(script.requests[-1])
    assert file_count(client) == before


def test_inline_file_data_reaches_the_code(client, script):
    before, asked = file_count(client), len(script.requests)
    script.push_tool_call("code_interpreter", {"code": "print(open('/mnt/data/table.csv').read().split()[1])"})
    script.push_text(lambda req: f"Second row: {tool_outputs(req)[-1].strip()}")
    r = client.responses.create(
        model=script.model, tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Read the table."},
            {"type": "input_file", "filename": "table.csv",
             "file_data": base64.b64encode(b"a,b\n1,2\n").decode()}]}])
    assert r.output_text == "Second row: 1,2"
    assert file_count(client) == before + 1
    assert "a,b" in prompt_text(script.requests[asked]) and "/mnt/data/table.csv" in prompt_text(script.requests[asked])


def test_bad_input_files_are_refused_and_nothing_is_stored(client, script):
    before = file_count(client), len(script.requests)
    image = upload(client, "pixel.png", png_bytes(), purpose="user_data")

    def send(part, **kw):
        return client.responses.create(model=script.model, input=[{"role": "user", "content": [part]}], **kw)

    with bad_request(param="input[0].content[0].file_data"):
        send({"type": "input_file", "filename": "x.txt", "file_data": "not base64!"})
    with bad_request(param="input[0].content[0].filename"):
        send({"type": "input_file", "file_data": data_url(b"hi")})
    with bad_request(param="input[0].content[0].file_url"):
        send({"type": "input_file", "file_url": "https://example.invalid/a.pdf"})
    with bad_request(param="input[0].content[0].file_id"):
        send({"type": "input_file", "file_id": "file-doesnotexist"})
    with bad_request(param="input[0].content[0]", code="unsupported_file"):
        send({"type": "input_file", "file_id": image.id})
    # With code to open it, a file the model cannot read is still taken; an expired container refuses
    # the request after the inline file was read, and the file is not stored.
    with not_found():
        send({"type": "input_file", "filename": "t.txt", "file_data": data_url(b"x")},
             tools=[{"type": "code_interpreter", "container": "cntr_doesnotexist"}])
    assert (file_count(client), len(script.requests)) == (before[0] + 1, before[1])


def test_a_conversation_item_with_a_file_is_read_by_later_responses(client, script):
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Keep this."},
        {"type": "input_file", "filename": "fact.txt", "file_data": data_url(b"The ferry leaves at 06:40.")}]}])
    script.push_text("ok")
    client.responses.create(model=script.model, conversation=conv.id, input="When does the ferry leave?")
    assert "The ferry leaves at 06:40." in prompt_text(script.requests[-1])


# -- branching a chain ------------------------------------------------------------------------------------------

def test_a_response_branching_off_an_earlier_one_sees_the_context_as_it_stood(client, script):
    script.push_text("Hi Ann.")
    a = client.responses.create(model=script.model, input="My name is Ann.")
    script.push_text("Noted: tea.")
    client.responses.create(model=script.model, input="I like tea.", previous_response_id=a.id)
    # Regenerating from `a`: the tea exchange is not in the branch.
    script.push_text("ok")
    c = client.responses.create(model=script.model, input="What do I like?", previous_response_id=a.id)
    branch = prompt_text(script.requests[-1])
    assert "My name is Ann." in branch and "Hi Ann." in branch and "What do I like?" in branch
    assert "I like tea." not in branch and "Noted: tea." not in branch
    script.push_text("ok")
    client.responses.create(model=script.model, input="And my name?", previous_response_id=c.id)
    later = prompt_text(script.requests[-1])
    assert "What do I like?" in later and "My name is Ann." in later and "I like tea." not in later


def test_code_state_follows_a_branch_and_a_link_without_code(client, script):
    code = {"type": "code_interpreter", "container": {"type": "auto"}}
    script.push_tool_call("code_interpreter", {"code": "x = 5"})
    script.push_text("set")
    a = client.responses.create(model=script.model, input="set x", tools=[code])
    container = next(i for i in a.output if i.type == "code_interpreter_call").container_id
    script.push_text("chat")
    b = client.responses.create(model=script.model, input="just talk", previous_response_id=a.id)
    script.push_tool_call("code_interpreter", {"code": "print(x * 2)"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    c = client.responses.create(model=script.model, input="double x", previous_response_id=b.id, tools=[code])
    assert c.output_text == "10"
    assert next(i for i in c.output if i.type == "code_interpreter_call").container_id == container
    # A branch off `a` uses the same container.
    script.push_tool_call("code_interpreter", {"code": "print(x + 1)"})
    script.push_text(lambda req: tool_outputs(req)[-1].strip())
    d = client.responses.create(model=script.model, input="x plus one", previous_response_id=a.id, tools=[code])
    assert d.output_text == "6"
    assert next(i for i in d.output if i.type == "code_interpreter_call").container_id == container
