"""A `SandboxAgent` run by the Agents SDK's `Runner` in an E2B sandbox on assistd, its model the scripted
upstream (tests/sdk/upstream.py, the one test double): the model calls the sandbox's `exec_command` tool over
two turns, each command runs in the same box, and the model is shown what they printed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from agents import OpenAIChatCompletionsModel, RunConfig, Runner, set_tracing_disabled
from agents.extensions.sandbox.e2b import E2BSandboxClient, E2BSandboxClientOptions
from agents.run_config import SandboxRunConfig
from agents.sandbox.capabilities import Shell
from agents.sandbox.sandbox_agent import SandboxAgent
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))

from upstream import Upstream, tool_outputs  # noqa: E402


@pytest.fixture(scope="module")
def upstream():
    """The scripted model, and no traces sent anywhere."""
    set_tracing_disabled(True)
    server = Upstream().start()
    yield server
    server.stop()


def model_for(upstream: Upstream, script) -> OpenAIChatCompletionsModel:
    """The Agents SDK's model client pointed at the scripted upstream."""
    client = AsyncOpenAI(base_url=upstream.base_url, api_key="scripted", max_retries=0)
    return OpenAIChatCompletionsModel(model=script.model, openai_client=client)


@pytest.mark.parametrize("options", [{}, {"on_timeout": "kill"}], ids=["default", "kill"])
def test_a_sandbox_agent_runs_exec_command_over_two_turns(server, upstream, options):
    script = upstream.script()
    script.push_tool_call("exec_command", {"cmd": "echo hello from the box > greeting.txt && pwd && cat greeting.txt"})
    script.push_tool_call("exec_command", {"cmd": "wc -c < greeting.txt; id -u"})
    script.push_text(lambda request: "Done: " + " | ".join(out.strip() for out in tool_outputs(request)))

    # The shell alone: the default capabilities add apply_patch, a hosted tool Chat Completions cannot carry.
    agent = SandboxAgent(name="box", instructions="Use the shell.", model=model_for(upstream, script),
                         capabilities=[Shell()])
    config = RunConfig(sandbox=SandboxRunConfig(
        client=E2BSandboxClient(), options=E2BSandboxClientOptions(sandbox_type="e2b", **options)))

    result = asyncio.run(Runner.run(agent, "Write a greeting and count its bytes.", run_config=config))

    assert script.remaining == 0
    first, second = tool_outputs(script.requests[-1])[-2:]
    assert "/workspace" in first and "hello from the box" in first, first
    assert "\n19\n10001" in second, second  # the bytes of "hello from the box\\n", the sandbox uid
    assert result.final_output.startswith("Done: ")
    assert "hello from the box" in result.final_output
