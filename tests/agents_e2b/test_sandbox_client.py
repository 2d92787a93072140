"""OpenAI's Agents SDK's `E2BSandboxClient` (openai-agents[e2b] with the e2b it pins) on assistd's E2B surface:
a session is a writable box with /workspace, commands run as `/bin/bash -l -c`, files cross both ways
byte-exact, PTY processes stream, and the tar persistence moves a workspace into a new session."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest
from agents.extensions.sandbox.e2b import E2BSandboxClient, E2BSandboxClientOptions

OPTIONS = {
    "default": {},
    "kill": {"on_timeout": "kill"},
}


def run(coro):
    return asyncio.run(coro)


async def open_session(**options):
    client = E2BSandboxClient()
    session = await client.create(options=E2BSandboxClientOptions(sandbox_type="e2b", **options))
    await session.start()
    return session


@pytest.fixture(params=sorted(OPTIONS))
def options(request, server):
    return OPTIONS[request.param]


def test_a_session_starts_in_a_writable_workspace_and_reports_output_stderr_and_exit_codes(options):
    async def scenario():
        session = await open_session(**options)
        try:
            done = await session.exec("pwd; echo out; echo err >&2; exit 3")
            assert done.exit_code == 3
            assert done.stdout == b"/workspace\nout\n"
            assert done.stderr == b"err\n"

            ok = await session.exec("id -u; touch /workspace/made && ls /workspace")
            assert ok.exit_code == 0, ok.stderr
            uid, listing = ok.stdout.decode().split("\n", 1)
            assert uid == "10001" and "made" in listing

            # The SDK's helper scripts live under /tmp/openai-agents/bin and run from there.
            helper = await session.exec(
                "mkdir -p /tmp/openai-agents/bin && printf '#!/bin/sh\\necho helper $1\\n' "
                "> /tmp/openai-agents/bin/h && chmod +x /tmp/openai-agents/bin/h && /tmp/openai-agents/bin/h ran")
            assert helper.stdout == b"helper ran\n", helper.stderr

            # The root filesystem is the box's own, but the image's files stay root's.
            refused = await session.exec("echo x > /usr/local/evil")
            assert refused.exit_code != 0 and b"Permission denied" in refused.stderr
        finally:
            await session.aclose()

    run(scenario())


def test_files_cross_between_the_session_and_commands_byte_exact(options):
    payload = bytes(range(256)) * 64 + b"\x00\xff tail"

    async def scenario():
        session = await open_session(**options)
        try:
            await session.write(Path("data/in.bin"), io.BytesIO(payload))
            digest = await session.exec("sha256sum data/in.bin | cut -d' ' -f1; stat -c %s data/in.bin")
            import hashlib
            assert digest.stdout.decode().split() == [hashlib.sha256(payload).hexdigest(), str(len(payload))]

            made = await session.exec("python3 -c \"import sys; sys.stdout.buffer.write(bytes(range(255, -1, -1)) * 3)\" "
                                      "> out.bin")
            assert made.exit_code == 0, made.stderr
            back = await session.read(Path("out.bin"))
            assert back.read() == bytes(range(255, -1, -1)) * 3
        finally:
            await session.aclose()

    run(scenario())


def test_a_non_tty_process_streams_a_line_before_it_ends(options):
    async def scenario():
        session = await open_session(**options)
        try:
            started = time.monotonic()
            update = await session.pty_exec_start("echo first; sleep 4; echo second", tty=False,
                                                  yield_time_s=1.5)
            assert time.monotonic() - started < 3.5
            assert update.output.startswith(b"first")
            assert update.exit_code is None and update.process_id is not None
            rest = await session.pty_write_stdin(session_id=update.process_id, chars="", yield_time_s=6)
            assert b"second" in rest.output
        finally:
            await session.aclose()

    run(scenario())


def test_a_tty_process_runs_an_interactive_python_fed_through_stdin(options):
    async def scenario():
        session = await open_session(**options)
        try:
            update = await session.pty_exec_start("python3 -i -q", tty=True, yield_time_s=2)
            assert update.process_id is not None
            seen = update.output
            answer = await session.pty_write_stdin(session_id=update.process_id, chars="x = 6 * 7\n",
                                                   yield_time_s=1)
            seen += answer.output
            answer = await session.pty_write_stdin(session_id=update.process_id, chars="print(x + 1)\n",
                                                   yield_time_s=2)
            seen += answer.output
            assert b"43" in seen, seen
            assert b">>>" in seen
        finally:
            await session.aclose()

    run(scenario())


def test_the_tar_persistence_hydrates_a_new_session(options):
    async def scenario():
        first = await open_session(**options)
        try:
            made = await first.exec("mkdir -p src/deep && echo 'print(1)' > src/main.py && "
                                    "head -c 300000 /dev/urandom > src/deep/blob && sha256sum src/deep/blob")
            assert made.exit_code == 0, made.stderr
            archive = await first.persist_workspace()
            tarball = archive.read()
        finally:
            await first.aclose()
        second = await open_session(**options)
        try:
            assert (await second.exec("ls")).stdout == b""
            await second.hydrate_workspace(io.BytesIO(tarball))
            check = await second.exec("cat src/main.py; sha256sum src/deep/blob")
            assert check.stdout.decode().splitlines() == ["print(1)", made.stdout.decode().strip()]
        finally:
            await second.aclose()

    run(scenario())
