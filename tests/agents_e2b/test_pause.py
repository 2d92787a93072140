"""Pause, resume and snapshots through OpenAI's Agents SDK (`E2BSandboxClient`): `pause_on_exit=True` then
`resume()` gets the same sandbox back with its files; `workspace_persistence="snapshot"` stores an E2B snapshot
that a new session hydrates; with `on_timeout="kill"` a shutdown kills the sandbox (connect: not found).

The workspace root is under /home/user, which every sandbox here can write."""

from __future__ import annotations

import asyncio
import io
import uuid

import pytest
from e2b import SandboxNotFoundException
from e2b_code_interpreter import Sandbox

from agents.extensions.sandbox.e2b import E2BSandboxClient, E2BSandboxClientOptions
from agents.extensions.sandbox.e2b.sandbox import _decode_e2b_snapshot_ref
from agents.sandbox import Manifest

ROOT_DIR = "/home/user/workspace"


def run(coro):
    return asyncio.run(coro)


async def text_of(session, path: str) -> str:
    data = await session.read(path)
    raw = data.read()
    return raw.decode() if isinstance(raw, bytes) else raw


async def write_text(session, path: str, text: str) -> None:
    await session.write(path, io.BytesIO(text.encode()))


def test_pause_on_exit_then_resume_returns_the_same_sandbox_with_its_files(server):
    async def scenario():
        client = E2BSandboxClient()
        options = E2BSandboxClientOptions(sandbox_type="e2b", timeout=120, pause_on_exit=True)
        session = await client.create(options=options, manifest=Manifest(root=ROOT_DIR))
        await session.start()
        marker = uuid.uuid4().hex
        await write_text(session, f"{ROOT_DIR}/notes.txt", marker)
        result = await session.exec(f"echo {marker} > /tmp/outside.txt && echo ok")
        assert result.ok()
        state = session.state
        sandbox_id = state.sandbox_id
        await session.shutdown()
        assert Sandbox.get_info(sandbox_id).state.value == "paused"

        resumed = await client.resume(state)
        await resumed.start()
        assert resumed.state.sandbox_id == sandbox_id
        assert await text_of(resumed, f"{ROOT_DIR}/notes.txt") == marker
        result = await resumed.exec("cat /tmp/outside.txt")
        assert result.ok() and result.stdout.decode().strip() == marker
        Sandbox.kill(sandbox_id)

    run(scenario())


def test_snapshot_persistence_is_hydrated_into_a_new_session(server):
    async def scenario():
        client = E2BSandboxClient()
        options = E2BSandboxClientOptions(sandbox_type="e2b", timeout=120, workspace_persistence="snapshot")
        session = await client.create(options=options, manifest=Manifest(root=ROOT_DIR))
        await session.start()
        marker = uuid.uuid4().hex
        await write_text(session, f"{ROOT_DIR}/deep/state.txt", marker)
        persisted = await session.persist_workspace()
        payload = persisted.read()
        # A native E2B snapshot (a reference to it), not the tar fallback.
        snapshot_id = _decode_e2b_snapshot_ref(payload)
        assert snapshot_id and snapshot_id.startswith("snap_"), payload[:80]
        first_id = session.state.sandbox_id
        await session.shutdown()

        fresh = await client.create(options=options, manifest=Manifest(root=ROOT_DIR))
        await fresh.start()
        await fresh.hydrate_workspace(io.BytesIO(payload))
        assert fresh.state.sandbox_id != first_id
        assert await text_of(fresh, f"{ROOT_DIR}/deep/state.txt") == marker
        assert Sandbox.get_info(fresh.state.sandbox_id).template_id == snapshot_id
        await fresh.shutdown()

    run(scenario())


def test_shutdown_with_on_timeout_kill_kills_the_sandbox(server):
    async def scenario():
        client = E2BSandboxClient()
        options = E2BSandboxClientOptions(sandbox_type="e2b", timeout=120, on_timeout="kill")
        session = await client.create(options=options, manifest=Manifest(root=ROOT_DIR))
        await session.start()
        sandbox_id = session.state.sandbox_id
        await session.shutdown()
        with pytest.raises(SandboxNotFoundException):
            Sandbox.connect(sandbox_id)

    run(scenario())
