"""The Responses API's hosted `shell` tool, through the newest openai-python.

The scripted model calls `shell` (assistd offers the tool to it as a function of that name, with `commands`,
`timeout_ms` and `max_output_length`); the server runs the commands in the response's container and answers
with `shell_call` + `shell_call_output` items, or (local mode) stops at the `shell_call` for the client to run.
"""

from __future__ import annotations

import json

import pytest
from openai.types import responses as response_types

from helpers import bad_request, not_found
from upstream import tool_outputs

pytestmark = [
    pytest.mark.runs,
    # The suite runs with openai 1.109.1 too, whose types have no shell items (the .venv-sdk3 run covers them).
    pytest.mark.skipif(not hasattr(response_types, "ResponseFunctionShellToolCall"),
                       reason="this openai release has no shell tool types"),
]

AUTO = {"type": "shell", "environment": {"type": "container_auto"}}
CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}


def shell_items(response):
    calls = [i for i in response.output if i.type == "shell_call"]
    outputs = [i for i in response.output if i.type == "shell_call_output"]
    return calls, outputs


def run_shell(client, script, commands, *, tools=None, **action):
    script.push_tool_call("shell", {"commands": commands, **action})
    script.push_text(lambda req: "ran:" + tool_outputs(req)[-1])
    return client.responses.create(model=script.model, input="run it", tools=tools or [AUTO])


def test_commands_run_in_the_container_with_their_output_and_exit_code(client, script):
    r = run_shell(client, script, ["echo hello; echo oops >&2", "pwd; id -u", "test -t 0 || echo no-tty"],
                  timeout_ms=30_000, max_output_length=4096)
    assert r.status == "completed"
    assert [i.type for i in r.output] == ["shell_call", "shell_call_output", "message"]
    (call,), (out,) = shell_items(r)
    assert call.call_id == out.call_id and call.id.startswith("sh_") and out.id.startswith("sho_")
    assert call.status == "completed" and out.status == "completed"
    assert call.action.commands == ["echo hello; echo oops >&2", "pwd; id -u", "test -t 0 || echo no-tty"]
    assert call.action.timeout_ms == 30_000 and call.action.max_output_length == 4096
    assert call.environment.type == "container_reference"
    assert call.environment.container_id.startswith("cntr_")
    assert out.max_output_length == 4096
    assert len(out.output) == 3
    first, second, third = out.output
    assert (first.stdout, first.stderr) == ("hello\n", "oops\n")
    assert first.outcome.type == "exit" and first.outcome.exit_code == 0
    cwd, uid = second.stdout.split()
    assert cwd == "/mnt/data" and uid != "0"
    assert third.stdout == "no-tty\n"
    # The model read each command's output and how it ended.
    assert "hello" in r.output_text and "oops" in r.output_text and "[exit code 0]" in r.output_text
    # The container is a real one of the project, and the stored object is what came back.
    assert client.containers.retrieve(call.environment.container_id).status == "running"
    assert client.responses.retrieve(r.id).model_dump() == r.model_dump()


def test_a_failing_command_keeps_its_output_and_exit_code(client, script):
    r = run_shell(client, script, ["echo before; ls /no/such/dir; exit 3", "echo next"])
    (_,), (out,) = shell_items(r)
    failing, following = out.output
    assert failing.stdout == "before\n" and "No such file or directory" in failing.stderr
    assert failing.outcome.type == "exit" and failing.outcome.exit_code == 3
    # Each command runs in a fresh shell: the next one still runs.
    assert following.stdout == "next\n" and following.outcome.exit_code == 0
    assert "[exit code 3]" in r.output_text


def test_a_command_past_its_timeout_ends_with_its_partial_output(client, script):
    r = run_shell(client, script, ["echo started; sleep 30; echo never", "echo after"], timeout_ms=1500)
    (_,), (out,) = shell_items(r)
    slow, after = out.output
    assert slow.outcome.type == "timeout"
    assert slow.stdout == "started\n"
    assert after.outcome.type == "exit" and after.stdout == "after\n"
    assert "[timed out]" in r.output_text


def test_long_output_is_cut_to_max_output_length_keeping_head_and_tail(client, script):
    r = run_shell(client, script, ["seq 1 100000"], max_output_length=1000)
    (_,), (out,) = shell_items(r)
    text = out.output[0].stdout
    assert text.startswith("1\n2\n3\n") and text.endswith("99999\n100000\n")
    assert "truncated" in text
    # About the limit (plus the marker), not the 588,895 characters the command wrote.
    assert 1000 <= len(text) < 1100
    assert out.output[0].outcome.exit_code == 0


def test_commands_installed_for_the_user_are_on_the_login_shells_path(client, script):
    # `pip install` puts commands in ~/.local/bin's place (/tmp/.local/bin), npm -g in /tmp/.npm-global/bin:
    # a login shell must not drop them from PATH, or the next call cannot run what the last installed.
    r = run_shell(client, script, [
        "mkdir -p /tmp/.local/bin && printf '#!/bin/sh\\necho installed\\n' > /tmp/.local/bin/mytool"
        " && chmod +x /tmp/.local/bin/mytool",
        "mytool",
        "echo $PATH",
    ])
    (_,), (out,) = shell_items(r)
    made, ran, path = out.output
    assert made.outcome.exit_code == 0, made.stderr
    assert (ran.stdout, ran.outcome.exit_code) == ("installed\n", 0), ran.stderr
    assert "/tmp/.npm-global/bin" in path.stdout.strip().split(":")


def test_a_file_written_by_shell_is_read_by_code_interpreter_in_the_same_container(client, script):
    script.push_tool_call("shell", {"commands": ["printf 'a,b\\n1,2\\n' > table.csv && ls /mnt/data"]})
    script.push_tool_call("code_interpreter", {"code": "print(open('/mnt/data/table.csv').read().upper())"})
    script.push_text("Wrote [table](sandbox:/mnt/data/table.csv).")
    r = client.responses.create(model=script.model, input="make a table", tools=[AUTO, CODE_TOOL],
                                include=["code_interpreter_call.outputs"])
    assert [i.type for i in r.output] == ["shell_call", "shell_call_output", "code_interpreter_call", "message"]
    call, out, code, message = r.output
    assert "table.csv" in out.output[0].stdout
    assert code.container_id == call.environment.container_id
    assert code.outputs[0].logs == "A,B\n1,2\n\n"
    # The file is the container's, cited as code_interpreter's files are.
    files = client.containers.files.list(container_id=code.container_id).data
    written = [f for f in files if f.path == "/mnt/data/table.csv"]
    assert len(written) == 1 and written[0].source == "assistant"
    (annotation,) = message.content[0].annotations
    assert annotation.type == "container_file_citation"
    assert annotation.container_id == code.container_id and annotation.file_id == written[0].id
    content = client.containers.files.content.retrieve(written[0].id, container_id=code.container_id)
    assert content.read() == b"a,b\n1,2\n"


def test_container_reference_shares_a_container_with_code_interpreter(client, script):
    container = client.containers.create(name="shared")
    script.push_tool_call("code_interpreter", {"code": "open('/mnt/data/from_python.txt','w').write('py')"})
    script.push_text("written")
    client.responses.create(model=script.model, input="write", tools=[
        {"type": "code_interpreter", "container": container.id}])
    tool = {"type": "shell", "environment": {"type": "container_reference", "container_id": container.id}}
    r = run_shell(client, script, ["cat from_python.txt"], tools=[tool])
    (call,), (out,) = shell_items(r)
    assert call.environment.container_id == container.id
    assert out.output[0].stdout == "py"


def test_a_continuation_keeps_the_container(client, script):
    first = run_shell(client, script, ["echo 41 > n.txt"])
    (call,), _ = shell_items(first)
    script.push_tool_call("shell", {"commands": ["cat n.txt"]})
    script.push_text(lambda req: tool_outputs(req)[-1])
    second = client.responses.create(model=script.model, input="again", tools=[AUTO],
                                     previous_response_id=first.id)
    (call2,), (out2,) = shell_items(second)
    assert call2.environment.container_id == call.environment.container_id
    assert out2.output[0].stdout == "41\n"


def test_replayed_shell_items_are_context_and_never_run_again(client, script):
    first = run_shell(client, script, ["echo run >> count.txt; wc -l < count.txt"])
    (call,), (out,) = shell_items(first)
    assert out.output[0].stdout == "1\n"
    # The whole history passed back by hand (as the Agents SDK does without server state).
    history = [{"role": "user", "content": "run it"}, call.model_dump(exclude_none=True),
               out.model_dump(exclude_none=True), {"role": "user", "content": "how many lines?"}]
    script.push_tool_call("shell", {"commands": ["wc -l < count.txt"]})
    script.push_text(lambda req: tool_outputs(req)[-1])
    second = client.responses.create(model=script.model, input=history, tools=[AUTO])
    (call2,), (out2,) = shell_items(second)
    # The replayed call did not run again; the container was reused from it.
    assert call2.environment.container_id == call.environment.container_id
    assert out2.output[0].stdout == "1\n"
    shown = json.dumps(script.requests[-2]["messages"])
    assert "echo run >> count.txt" in shown and "shell" in shown
    items = client.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in items] == ["message", "shell_call", "shell_call_output", "message"]


def test_streaming_events_come_in_openais_order(client, script):
    script.push_tool_call("shell", {"commands": ["echo one", "echo two >&2; exit 4"]}, arg_chunk=5)
    script.push_text("done")
    events = []
    with client.responses.stream(model=script.model, input="go", tools=[AUTO]) as stream:
        for event in stream:
            events.append(event)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    shell = [e for e in events if "shell" in e.type or (e.type.startswith("response.output_item")
                                                         and e.item.type.startswith("shell"))]
    assert [(e.type, getattr(e, "command_index", None)) for e in shell] == [
        ("response.output_item.added", None),
        ("response.shell_call_command.added", 0), ("response.shell_call_command.delta", 0),
        ("response.shell_call_command.done", 0),
        ("response.shell_call_command.added", 1), ("response.shell_call_command.delta", 1),
        ("response.shell_call_command.done", 1),
        ("response.output_item.done", None),
        ("response.output_item.added", None),
        ("response.shell_call_output_content.delta", 0), ("response.shell_call_output_content.done", 0),
        ("response.shell_call_output_content.delta", 1), ("response.shell_call_output_content.done", 1),
        ("response.output_item.done", None),
    ]
    assert shell[0].item.type == "shell_call" and shell[0].item.status == "in_progress"
    assert shell[3].command == "echo one" and shell[6].command == "echo two >&2; exit 4"
    assert shell[7].item.action.commands == ["echo one", "echo two >&2; exit 4"]
    assert shell[8].item.type == "shell_call_output" and shell[8].item.output == []
    assert shell[9].item_id == shell[8].item.id and shell[9].delta.stdout == "one\n"
    assert shell[12].output[0].stderr == "two\n" and shell[12].output[0].outcome.exit_code == 4
    assert [e.output_index for e in shell] == [0] * 8 + [1] * 6
    assert [i.type for i in final.output] == ["shell_call", "shell_call_output", "message"]
    assert final.output[1].output[1].outcome.exit_code == 4
    stored = client.responses.retrieve(final.id).model_dump()
    assert stored["output"] == [i.model_dump() for i in final.output][:2] + stored["output"][2:]


def test_local_mode_round_trip(client, script):
    script.push_tool_call("shell", {"commands": ["uname -s"], "timeout_ms": 5000}, call_id="call_local1")
    script.push_text(lambda req: "the client said " + tool_outputs(req)[-1])
    first = client.responses.create(model=script.model, input="which os?",
                                    tools=[{"type": "shell", "environment": {"type": "local"}}])
    assert first.status == "completed"
    assert [i.type for i in first.output] == ["shell_call"]
    call = first.output[0]
    assert call.call_id == "call_local1" and call.environment.type == "local"
    assert call.action.commands == ["uname -s"] and call.action.timeout_ms == 5000
    # Nothing ran on the server: the response waits for the client's output.
    second = client.responses.create(
        model=script.model, previous_response_id=first.id, tools=[{"type": "shell"}],
        input=[{"type": "shell_call_output", "call_id": "call_local1", "max_output_length": 100,
                "output": [{"stdout": "Plan9\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]}])
    assert second.status == "completed"
    assert "Plan9" in second.output_text and "[exit code 0]" in second.output_text
    items = client.responses.input_items.list(second.id).data
    assert [i.type for i in items] == ["shell_call_output"] and items[0].output[0].stdout == "Plan9\n"


def test_bad_shell_tools_are_refused(client, script, other_client):
    with bad_request(param="tools[0].environment.type"):
        client.responses.create(model=script.model, input="x",
                                tools=[{"type": "shell", "environment": {"type": "vm"}}])
    with bad_request(param="tools[0].environment.container_id"):
        client.responses.create(model=script.model, input="x",
                                tools=[{"type": "shell", "environment": {"type": "container_reference"}}])
    with bad_request(param="tools[0].environment.skills"):
        client.responses.create(model=script.model, input="x", tools=[{"type": "shell", "environment": {
            "type": "container_reference", "container_id": "cntr_x", "skills": []}}])
    with not_found():
        client.responses.create(model=script.model, input="x", tools=[{"type": "shell", "environment": {
            "type": "container_reference", "container_id": "cntr_nosuchcontainer"}}])
    theirs = other_client.containers.create(name="not yours")
    with not_found():
        client.responses.create(model=script.model, input="x", tools=[{"type": "shell", "environment": {
            "type": "container_reference", "container_id": theirs.id}}])
    with bad_request(param="tools"):
        client.responses.create(model=script.model, input="x", tools=[AUTO, AUTO])
    with bad_request(param="input[0].output"):
        client.responses.create(model=script.model, tools=[AUTO],
                                input=[{"type": "shell_call_output", "call_id": "call_1"}])
    # The shell tool is the Responses API's: an assistant cannot have it.
    with bad_request(param="tools[0].type"):
        client.beta.assistants.create(model=script.model, tools=[{"type": "shell", "shell": {"hosted": True}}])
    # Nothing was stored: the model was never called.
    assert script.requests == []


def test_shell_items_are_conversation_items(client, script):
    conversation = client.conversations.create()
    script.push_tool_call("shell", {"commands": ["echo in-conversation"]})
    script.push_text("done")
    r = client.responses.create(model=script.model, input="run", tools=[AUTO], conversation=conversation.id)
    (call,), (out,) = shell_items(r)
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [i.type for i in items] == ["message", "shell_call", "shell_call_output", "message"]
    assert items[1].id == call.id and items[2].id == out.id
    assert items[2].output[0].stdout == "in-conversation\n"
    one = client.conversations.items.retrieve(out.id, conversation_id=conversation.id)
    assert one.type == "shell_call_output" and one.call_id == call.call_id


def test_item_references_name_shell_items(client, script):
    first = run_shell(client, script, ["echo referenced"])
    (call,), (out,) = shell_items(first)
    script.push_text("ok")
    second = client.responses.create(model=script.model, tools=[AUTO], input=[
        {"type": "item_reference", "id": call.id}, {"type": "item_reference", "id": out.id},
        {"role": "user", "content": "what did it print?"}])
    assert second.output_text == "ok"
    items = client.responses.input_items.list(second.id, order="asc").data
    assert [(i.type, i.id) for i in items[:2]] == [("shell_call", call.id), ("shell_call_output", out.id)]
    assert items[1].output[0].stdout == "referenced\n"
    shown = json.dumps(script.requests[-1]["messages"])
    assert "echo referenced" in shown and "referenced\\n" in shown


def test_local_mode_streams_the_call_and_stops(client, script):
    script.push_tool_call("shell", {"commands": ["ls", "pwd"]}, call_id="call_local2")
    with client.responses.stream(model=script.model, input="look around", tools=[{"type": "shell"}]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[-1] == "response.completed"
    assert [k for k in kinds if "shell" in k] == [
        "response.shell_call_command.added", "response.shell_call_command.delta", "response.shell_call_command.done",
    ] * 2
    assert [i.type for i in final.output] == ["shell_call"]
    assert final.output[0].environment.type == "local" and final.output[0].action.commands == ["ls", "pwd"]
    assert client.responses.retrieve(final.id).output[0].model_dump() == final.output[0].model_dump()


def test_a_command_that_leaves_a_background_process_ends_with_its_shell(client, script):
    # Were the pipes awaited, the background sleep would hold them past the timeout.
    r = run_shell(client, script, ["sleep 300 & echo started", "echo next"], timeout_ms=5000)
    (_,), (out,) = shell_items(r)
    background, following = out.output
    assert background.stdout == "started\n" and background.outcome.type == "exit"
    assert background.outcome.exit_code == 0 and following.stdout == "next\n"
