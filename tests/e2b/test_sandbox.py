"""E2B's Python SDK (e2b-code-interpreter) against assistd's /e2b surface: what an E2B app does, unchanged."""

from __future__ import annotations

import base64
import json
import struct
import time

import httpx
import pytest
from e2b import CommandExitException, NotFoundException, SandboxNotFoundException, SandboxQuery
from e2b_code_interpreter import Sandbox

from conftest import KEY_A, KEY_B, KEY_PLAIN

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def data_plane(server: str, sbx: Sandbox, port: int = 49983, **headers) -> httpx.Client:
    """Raw HTTP to the sandbox's data plane, with the headers the SDKs send."""
    base = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": str(port),
            "X-Access-Token": sbx._envd_access_token}
    base.update(headers)
    return httpx.Client(base_url=server + "/e2b/sandbox", headers=base, timeout=60)


def test_cells_share_state_and_report_stdout_errors_and_their_count(sandbox):
    first = sandbox.run_code("x = 1")
    assert first.error is None
    assert sandbox.run_code("x + 1").text == "2"

    printed = sandbox.run_code("print('hello'); print('oops', file=__import__('sys').stderr)")
    assert printed.logs.stdout == ["hello\n"]
    assert printed.logs.stderr == ["oops\n"]
    assert printed.execution_count == 3

    failed = sandbox.run_code("1/0")
    assert failed.error is not None
    assert failed.error.name == "ZeroDivisionError"
    assert failed.error.value == "division by zero"
    assert "ZeroDivisionError" in failed.error.traceback


def test_a_matplotlib_plot_is_a_png_result(sandbox):
    execution = sandbox.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    assert execution.error is None
    pngs = [r.png for r in execution.results if r.png]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]).startswith(PNG_SIGNATURE)


def test_displayed_values_are_full_mime_bundles(sandbox):
    execution = sandbox.run_code(
        "from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))\n{'a': 1}")
    assert execution.error is None
    html = [r for r in execution.results if r.html]
    assert html and "<b>hi</b>" in html[0].html and not html[0].is_main_result
    main = [r for r in execution.results if r.is_main_result]
    assert len(main) == 1 and main[0].text == "{'a': 1}"


def test_files_written_by_the_sdk_are_read_by_code_and_the_reverse(sandbox):
    sandbox.files.write("/home/user/notes/in.txt", "written by the SDK")
    assert sandbox.run_code("open('/home/user/notes/in.txt').read()").text == "'written by the SDK'"

    sandbox.run_code("open('/home/user/out.bin', 'wb').write(bytes(range(256)))")
    assert sandbox.files.read("out.bin", format="bytes") == bytes(range(256))
    names = {entry.name for entry in sandbox.files.list("/home/user")}
    assert {"notes", "out.bin"} <= names
    assert sandbox.files.exists("/home/user/notes/in.txt")

    sandbox.files.make_dir("/home/user/made")
    sandbox.files.rename("/home/user/out.bin", "/home/user/made/moved.bin")
    assert sandbox.files.get_info("/home/user/made/moved.bin").size == 256
    sandbox.files.remove("/home/user/made")
    assert not sandbox.files.exists("/home/user/made")
    with pytest.raises(NotFoundException):
        sandbox.files.read("/home/user/never-written.txt")


def test_commands_return_their_output_and_raise_on_a_failing_exit(sandbox):
    result = sandbox.commands.run("echo hi")
    assert result.stdout == "hi\n"
    assert result.exit_code == 0

    with pytest.raises(CommandExitException) as failed:
        sandbox.commands.run("echo bad >&2; exit 3")
    assert failed.value.exit_code == 3
    assert failed.value.stderr == "bad\n"

    shown = sandbox.commands.run("pwd; echo $GREETING", envs={"GREETING": "hello"}, cwd="/tmp")
    assert shown.stdout == "/tmp\nhello\n"


def test_a_background_command_can_be_killed(sandbox):
    handle = sandbox.commands.run("sleep 60", background=True)
    assert handle.pid > 0
    started = time.monotonic()
    assert handle.kill()
    with pytest.raises(CommandExitException):
        handle.wait()
    assert time.monotonic() - started < 30


def test_stdout_reaches_the_callback_while_the_cell_runs(sandbox):
    seen = []
    started = time.monotonic()
    execution = sandbox.run_code(
        "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')",
        on_stdout=lambda message: seen.append((message.line, time.monotonic() - started)))
    ended = time.monotonic() - started
    assert [line for line, _ in seen] == ["first\n", "second\n"]
    assert seen[0][1] < ended - 1.5, f"the first line came at {seen[0][1]:.2f}s, the cell ended at {ended:.2f}s"
    assert execution.logs.stdout == ["first\n", "second\n"]


def test_connect_keeps_state_and_a_killed_sandbox_is_gone(server):
    sbx = Sandbox.create(metadata={"purpose": "connect-test"})
    sbx.run_code("kept = 41")
    again = Sandbox.connect(sbx.sandbox_id)
    assert again.run_code("kept + 1").text == "42"
    info = again.get_info()
    assert info.sandbox_id == sbx.sandbox_id
    assert info.metadata == {"purpose": "connect-test"}

    assert sbx.kill()
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sbx.sandbox_id)
    assert not Sandbox.kill(sbx.sandbox_id)


def test_another_projects_sandbox_is_not_found(server, sandbox):
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox.sandbox_id, api_key=KEY_B)
    assert not Sandbox.kill(sandbox.sandbox_id, api_key=KEY_B)
    assert sandbox.sandbox_id not in {s.sandbox_id for s in Sandbox.list(api_key=KEY_B).next_items()}
    # Another key of the same project sees it.
    assert Sandbox.connect(sandbox.sandbox_id, api_key=KEY_PLAIN).sandbox_id == sandbox.sandbox_id
    # The data plane takes only the sandbox's own token.
    with data_plane(server, sandbox, 49999, **{"X-Access-Token": "not-its-token"}) as http:
        answer = http.post("/execute", json={"code": "1"})
    assert answer.status_code == 502
    assert answer.json()["code"] == 502


def test_a_sandbox_past_its_timeout_is_gone(server):
    sbx = Sandbox.create(timeout=2)
    sbx.run_code("y = 1")
    time.sleep(3)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sbx.sandbox_id)


def test_set_timeout_moves_the_deadline(server, sandbox):
    before = sandbox.get_info().end_at
    sandbox.set_timeout(600)
    after = sandbox.get_info().end_at
    assert (after - before).total_seconds() > 300


def test_lists_filter_by_metadata_and_page_with_the_next_token(server):
    tag = f"list-{time.monotonic_ns()}"
    made = [Sandbox.create(metadata={"tag": tag, "n": str(i)}) for i in range(3)]
    try:
        paginator = Sandbox.list(query=SandboxQuery(metadata={"tag": tag}), limit=2)
        first = paginator.next_items()
        assert len(first) == 2 and paginator.has_next
        rest = paginator.next_items()
        assert len(rest) == 1 and not paginator.has_next
        assert {s.sandbox_id for s in first + rest} == {s.sandbox_id for s in made}
        one = Sandbox.list(query=SandboxQuery(metadata={"tag": tag, "n": "1"})).next_items()
        assert [s.sandbox_id for s in one] == [made[1].sandbox_id]
    finally:
        for sbx in made:
            sbx.kill()


def test_a_sandbox_is_a_container_of_its_project(server, sandbox):
    with httpx.Client(base_url=server + "/v1", headers={"Authorization": f"Bearer {KEY_A}"}) as http:
        container = http.get(f"/containers/{sandbox.sandbox_id}")
        assert container.status_code == 200
        assert container.json()["status"] == "running"
    with httpx.Client(base_url=server + "/v1", headers={"Authorization": f"Bearer {KEY_B}"}) as http:
        assert http.get(f"/containers/{sandbox.sandbox_id}").status_code == 404


def test_control_plane_errors_are_in_e2bs_shape(server):
    with httpx.Client(base_url=server + "/e2b", timeout=30) as http:
        missing = http.post("/sandboxes", json={})
        assert missing.status_code == 401 and missing.json()["code"] == 401
        wrong = http.get("/sandboxes/cntr_nope", headers={"X-API-KEY": "e2b_ffff"})
        assert wrong.status_code == 401 and wrong.json()["code"] == 401
        headers = {"X-API-KEY": KEY_A}
        unknown = http.get("/sandboxes/cntr_nope", headers=headers)
        assert unknown.status_code == 404 and unknown.json()["code"] == 404
        bad = http.post("/v2/sandboxes", headers=headers, json={"timeout": -5})
        assert bad.status_code == 400 and "timeout" in bad.json()["message"]
        garbled = http.post("/v2/sandboxes", headers=headers, content=b"{not json")
        assert garbled.status_code == 400 and garbled.json()["code"] == 400


def test_an_unknown_port_is_a_clear_error(server, sandbox):
    with data_plane(server, sandbox, 8080) as http:
        answer = http.get("/health")
    assert answer.status_code == 502
    assert "49983" in answer.json()["message"] and "8080" in answer.json()["message"]
    with data_plane(server, sandbox, 49983) as http:
        wrong_service = http.post("/execute", json={"code": "1"})
        assert wrong_service.status_code == 400
        assert "49999" in wrong_service.json()["message"]
        assert http.get("/health").status_code == 204


def test_a_malformed_connect_envelope_is_refused_in_connects_shape(server, sandbox):
    headers = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
    with data_plane(server, sandbox, **headers) as http:
        short = http.post("/process.Process/Start", content=b"\x00\x00\x00")
        body = json.dumps({"process": {"cmd": "/bin/true"}}).encode()
        lying = http.post("/process.Process/Start", content=struct.pack(">BI", 0, len(body) + 9) + body)
    for answer in (short, lying):
        assert answer.status_code == 200  # a Connect stream: the error is in its end-stream envelope
        flags, length = struct.unpack(">BI", answer.content[:5])
        assert flags == 2
        end = json.loads(answer.content[5:5 + length])
        assert end["error"]["code"] == "invalid_argument"
    with data_plane(server, sandbox, **{"Content-Type": "application/json"}) as http:
        unary = http.post("/filesystem.Filesystem/ListDir", content=b"[1, 2")
        assert unary.status_code == 400 and unary.json()["code"] == "invalid_argument"
        absent = http.post("/filesystem.Filesystem/Stat", json={"path": "/home/user/absent"})
        assert absent.status_code == 404 and absent.json()["code"] == "not_found"


def test_paths_outside_the_sandbox_are_refused(server, sandbox):
    with data_plane(server, sandbox) as http:
        escaping = http.get("/files", params={"path": "/../../etc/passwd"})
        assert escaping.status_code == 400 and "outside" in escaping.json()["message"]
        # A writable box: the sandbox user's permissions decide (the image's files are root's).
        readonly = http.post("/files", params={"path": "/etc/evil"}, content=b"x",
                             headers={"Content-Type": "application/octet-stream"})
        assert readonly.status_code == 403 and "writable" in readonly.json()["message"]
        kernel = http.post("/files", params={"path": "/proc/1/environ"}, content=b"x",
                           headers={"Content-Type": "application/octet-stream"})
        assert kernel.status_code == 400 and "not writable" in kernel.json()["message"]
    with pytest.raises(Exception) as refused:
        sandbox.files.write("/usr/bin/evil", "x")
    assert "writable" in str(refused.value)
    assert not sandbox.files.exists("/usr/bin/evil")
    sandbox.files.write("/workspace/ok.txt", "x")
    assert sandbox.files.read("/workspace/ok.txt") == "x"


def test_the_port_and_id_may_come_in_the_host_instead(server, sandbox):
    sandbox.files.write("/home/user/by-host.txt", "found by host")
    token = {"X-Access-Token": sandbox._envd_access_token}
    with httpx.Client(base_url=server, timeout=30) as http:
        envd = {"Host": f"49983-{sandbox.sandbox_id}.sandbox.test", **token}
        assert http.get("/health", headers=envd).status_code == 204
        read = http.get("/files", params={"path": "by-host.txt"}, headers=envd)
        assert read.status_code == 200 and read.content == b"found by host"
        jupyter = {"Host": f"49999-{sandbox.sandbox_id}.sandbox.test", **token}
        lines = [json.loads(line) for line in http.post("/execute", json={"code": "6 * 7"}, headers=jupyter).text.splitlines()]
        assert {"type": "result", "text": "42", "is_main_result": True} in lines
        assert lines[-1] == {"type": "end_of_execution"}


def test_javascript_cells_share_state_await_and_print(sandbox):
    assert sandbox.run_code("const base = 40\nlet step = 2", language="js").error is None
    assert sandbox.run_code("function add(a, b) { return a + b }", language="js").error is None
    assert sandbox.run_code("add(base, step)", language="js").text == "42"
    awaited = sandbox.run_code("const later = await Promise.resolve(base)\nlater + 2", language="js")
    assert awaited.text == "42"
    assert sandbox.run_code("later", language="javascript").text == "40"

    fib = sandbox.run_code(
        "const fib = [0n, 1n]\nfor (let i = 2; i < 100; i++) fib.push(fib[i - 1] + fib[i - 2])\n"
        "console.log(fib.join('\\n'))", language="js")
    printed = "".join(fib.logs.stdout).split()
    assert len(printed) == 100 and printed[:5] == ["0", "1", "1", "2", "3"]
    assert printed[-1] == "218922995834555169026"

    failed = sandbox.run_code("null.boom", language="js")
    assert failed.error.name == "TypeError"
    # Python's state is its own.
    assert sandbox.run_code("'base' in globals()").text == "False"
