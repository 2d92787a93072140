"""The OpenAI Agents SDK's `ShellTool` with hosted environments against assistd and the scripted model:
`container_auto` over two turns (the client replays its own history with `to_input_list()`, so the server
sees its own `shell_call` / `shell_call_output` items again and must not run them twice), and a
`container_reference` to a container made through the Containers API, over two turns by
`previous_response_id`, and `container_auto` with an inline skill (mounted at /mnt/skills/<name>, named to the
model). Runs in the .venv-sdk3 suite (`SDK3_TESTS`); skipped where openai-agents is absent.
"""

from __future__ import annotations

import asyncio
import base64
import io
import zipfile

import pytest

agents = pytest.importorskip("agents")

from agents import Agent, Runner, ShellTool, set_tracing_disabled  # noqa: E402
from agents.models.openai_responses import OpenAIResponsesModel  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from conftest import KEY_A  # noqa: E402
from upstream import prompt_text, tool_outputs  # noqa: E402

pytestmark = pytest.mark.runs

set_tracing_disabled(True)


@pytest.fixture
def aclient(server):
    return AsyncOpenAI(base_url=server + "/v1", api_key=KEY_A, max_retries=0, timeout=60)


def shell_agent(script, aclient, environment) -> Agent:
    return Agent(
        name="operator",
        instructions="Use the shell.",
        model=OpenAIResponsesModel(model=script.model, openai_client=aclient),
        tools=[ShellTool(environment=environment)],
    )


def items_of(result, kind: str) -> list:
    out = []
    for item in result.new_items:
        raw = item.raw_item
        if (raw.get("type") if isinstance(raw, dict) else getattr(raw, "type", None)) == kind:
            out.append(raw if isinstance(raw, dict) else raw.model_dump())
    return out


def test_hosted_container_auto_over_two_replayed_turns(script, aclient):
    async def go():
        agent = shell_agent(script, aclient, {"type": "container_auto"})
        script.push_tool_call("shell", {"commands": ["echo 6x7 >> notes.txt; wc -l < notes.txt"]})
        script.push_text(lambda req: "Noted, lines: " + tool_outputs(req)[-1].split("\n")[1])
        first = await Runner.run(agent, "Write a note.")
        script.push_tool_call("shell", {"commands": ["cat notes.txt; wc -l < notes.txt"]})
        script.push_text(lambda req: "Read: " + " ".join(tool_outputs(req)[-1].split("\n")[1:3]))
        history = first.to_input_list() + [{"role": "user", "content": "Read the note."}]
        second = await Runner.run(agent, history)
        return first, second

    first, second = asyncio.run(go())
    assert first.final_output == "Noted, lines: 1"
    # The replayed first call did not run again: the file still has one line.
    assert second.final_output == "Read: 6x7 1"
    [c1], [c2] = items_of(first, "shell_call"), items_of(second, "shell_call")
    [o1] = items_of(first, "shell_call_output")
    assert o1["output"][0]["stdout"] == "1\n"
    assert c1["environment"]["type"] == "container_reference"
    assert c1["environment"]["container_id"] == c2["environment"]["container_id"]


def test_hosted_container_reference_over_two_turns(script, aclient, client):
    container = client.containers.create(name="agent workspace")

    async def go():
        agent = shell_agent(script, aclient, {"type": "container_reference", "container_id": container.id})
        script.push_tool_call("shell", {"commands": ["mkdir -p out && echo ok > out/state"]})
        script.push_text("Prepared.")
        first = await Runner.run(agent, "Prepare.")
        script.push_tool_call("shell", {"commands": ["cat out/state"]})
        script.push_text(lambda req: "State: " + tool_outputs(req)[-1].split("\n")[1])
        second = await Runner.run(agent, "Check.", previous_response_id=first.last_response_id)
        return first, second

    first, second = asyncio.run(go())
    assert first.final_output == "Prepared."
    assert second.final_output == "State: ok"
    for result in (first, second):
        [call] = items_of(result, "shell_call")
        assert call["environment"]["container_id"] == container.id
    files = client.containers.files.list(container_id=container.id).data
    assert [f.path for f in files] == ["/mnt/data/out/state"]


def inline_skill(name: str, description: str) -> dict:
    """An inline skill (a base64 zip with one top-level folder) whose script prints a marker."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}/SKILL.md", f"---\nname: {name}\ndescription: {description}\n---\nRun run.sh.\n")
        z.writestr(f"{name}/run.sh", "echo skill says $((6*7))\n")
    return {"type": "inline", "name": name, "description": description,
            "source": {"type": "base64", "media_type": "application/zip",
                       "data": base64.b64encode(buf.getvalue()).decode()}}


def test_hosted_container_auto_with_an_inline_skill_over_two_turns(script, aclient):
    skill = inline_skill("answer-finder", "Finds the answer.")

    async def go():
        agent = shell_agent(script, aclient, {"type": "container_auto", "skills": [skill]})
        script.push_tool_call("shell", {"commands": ["bash /mnt/skills/answer-finder/run.sh > answer.txt"]})
        script.push_text("Saved.")
        start = len(script.requests)
        first = await Runner.run(agent, "Use the skill.")
        told = prompt_text(script.requests[start])
        script.push_tool_call("shell", {"commands": ["cat answer.txt; touch /mnt/skills/answer-finder/x"]})
        script.push_text(lambda req: tool_outputs(req)[-1])
        second = await Runner.run(agent, "Read it.", previous_response_id=first.last_response_id)
        return first, second, told

    first, second, told = asyncio.run(go())
    assert first.final_output == "Saved."
    assert "answer-finder: Finds the answer. (file: /mnt/skills/answer-finder/SKILL.md)" in told
    [c1], [c2] = items_of(first, "shell_call"), items_of(second, "shell_call")
    assert c1["environment"]["container_id"] == c2["environment"]["container_id"]
    [out] = items_of(second, "shell_call_output")
    entry = out["output"][0]
    assert entry["stdout"] == "skill says 42\n"
    # The skill is mounted read-only: the command that writes into it fails.
    assert entry["outcome"] == {"type": "exit", "exit_code": 1}
    assert "Read-only file system" in entry["stderr"] or "Permission denied" in entry["stderr"]
