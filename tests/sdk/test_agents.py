"""The OpenAI Agents SDK (openai-agents, on the newest openai) against assistd and the scripted model:
`Runner.run` with `CodeInterpreterTool` twice by `result.to_input_list()` (the client replays its own history:
no previous_response_id, no conversation), `OpenAIConversationsSession` over two tool-using turns, and
`Runner.run_streamed`. Runs in the .venv-sdk3 suite (`SDK3_TESTS`); skipped where openai-agents is absent.
"""

from __future__ import annotations

import asyncio

import pytest

agents = pytest.importorskip("agents")

from agents import Agent, CodeInterpreterTool, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.memory import OpenAIConversationsSession  # noqa: E402
from agents.models.openai_responses import OpenAIResponsesModel  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from conftest import KEY_A  # noqa: E402
from upstream import prompt_text, tool_outputs  # noqa: E402

pytestmark = pytest.mark.runs

set_tracing_disabled(True)


@pytest.fixture
def aclient(server):
    return AsyncOpenAI(base_url=server + "/v1", api_key=KEY_A, max_retries=0, timeout=60)


def code_agent(script, aclient, **kw) -> Agent:
    return Agent(
        name="analyst",
        instructions="Use code for arithmetic.",
        model=OpenAIResponsesModel(model=script.model, openai_client=aclient),
        tools=[CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": {"type": "auto"}})],
        **kw,
    )


def code_calls(result) -> list:
    return [i.raw_item for i in result.new_items if getattr(i.raw_item, "type", None) == "code_interpreter_call"]


def test_code_state_survives_a_replayed_history(script, aclient):
    async def go():
        agent = code_agent(script, aclient)
        script.push_tool_call("code_interpreter", {"code": "answer = 6 * 7\nprint('stored')"})
        script.push_text("I stored it.")
        first = await Runner.run(agent, "Store 6*7 in a variable.")
        assert first.final_output == "I stored it."

        script.push_tool_call("code_interpreter", {"code": "print(answer)"})
        script.push_text(lambda req: "It is " + tool_outputs(req)[-1].strip() + ".")
        history = first.to_input_list() + [{"role": "user", "content": "What is in the variable?"}]
        second = await Runner.run(agent, history)
        return first, second

    first, second = asyncio.run(go())
    assert second.final_output == "It is 42."
    [c1], [c2] = code_calls(first), code_calls(second)
    assert c1.container_id == c2.container_id
    # The model read its earlier code and output from the replayed history, before its earlier answer.
    sent = script.requests[-2]["messages"]
    calls = [m for m in sent if m.get("tool_calls")]
    assert calls and "answer = 6 * 7" in calls[0]["tool_calls"][0]["function"]["arguments"]
    assert "stored\n" in tool_outputs(script.requests[-2])
    roles = [m["role"] for m in sent]
    first_tool = roles.index("tool")
    assert roles[first_tool + 1] == "assistant" and sent[first_tool + 1]["content"] == "I stored it."


def test_a_conversations_session_keeps_two_tool_using_turns(script, aclient, client):
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    async def go():
        session = OpenAIConversationsSession(openai_client=aclient)
        agent = Agent(
            name="helper", instructions="Help.",
            model=OpenAIResponsesModel(model=script.model, openai_client=aclient),
            tools=[get_weather,
                   CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": {"type": "auto"}})])
        script.push_tool_call("get_weather", {"city": "Rome"})
        script.push_text(lambda req: "Weather: " + tool_outputs(req)[-1])
        first = await Runner.run(agent, "Weather in Rome?", session=session)
        script.push_tool_call("code_interpreter", {"code": "print(2 + 3)"})
        script.push_text(lambda req: ("saw rome" if "sunny in Rome" in prompt_text(req) else "forgot")
                         + " / " + tool_outputs(req)[-1].strip())
        second = await Runner.run(agent, "And 2 + 3?", session=session)
        items = await session.get_items()
        return first, second, await session._get_session_id(), items

    first, second, conv_id, items = asyncio.run(go())
    assert first.final_output == "Weather: sunny in Rome"
    assert second.final_output == "saw rome / 5"
    stored = client.conversations.items.list(conv_id, order="asc", limit=100).data
    kinds = [i.type for i in stored]
    assert kinds.count("function_call") == 1 and kinds.count("function_call_output") == 1
    assert kinds.count("code_interpreter_call") == 1
    assert [getattr(i, "role", None) for i in stored if i.type == "message"] == [
        "user", "assistant", "user", "assistant"]
    assert len(items) == len(stored)


def test_run_streamed_delivers_the_events_and_the_final_output(script, aclient):
    async def go():
        agent = code_agent(script, aclient)
        script.push_tool_call("code_interpreter", {"code": "print(sum(range(5)))"})
        script.push_text(lambda req: "Sum: " + tool_outputs(req)[-1].strip())
        result = Runner.run_streamed(agent, "Sum 0..4")
        kinds = []
        async for event in result.stream_events():
            kinds.append(event.type)
        return result, kinds

    result, kinds = asyncio.run(go())
    assert result.final_output == "Sum: 10"
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert len(code_calls(result)) == 1
