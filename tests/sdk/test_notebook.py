"""code_interpreter cells behave as notebook cells (IPython in the sandbox), seen through the official SDK:
rich display() output, shell escapes and cell magics, Node.js, %timeit, offline %pip, IPython tracebacks.

Each test scripts one code call, then a text turn; the step's outputs are what the user sees and the
tool output in the next request is what the model saw.
"""

from __future__ import annotations

import pytest

from helpers import last_assistant_message
from upstream import tool_outputs

pytestmark = pytest.mark.runs

POLL_MS = 100
PNG = b"\x89PNG\r\n\x1a\n"


def run_cell(client, script, code: str):
    """Runs one code call through a fresh assistant and thread; returns (thread, run, call, model_saw)."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("Done.")
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "code_interpreter"}])
    t = client.beta.threads.create()
    client.beta.threads.messages.create(t.id, role="user", content="Go.")
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=POLL_MS)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    (call,) = [tc for s in steps if s.type == "tool_calls" for tc in s.step_details.tool_calls
               if tc.type == "code_interpreter"]
    return t, run, call, tool_outputs(script.requests[-1])[-1]


def logs_of(call) -> str:
    return "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


def images_of(call) -> list[str]:
    return [o.image.file_id for o in call.code_interpreter.outputs if o.type == "image"]


def test_display_of_a_dataframe_is_a_text_table_in_the_logs(client, script):
    _, _, call, model_saw = run_cell(client, script, "import pandas as pd\n"
                                     "df = pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [3, 19]})\n"
                                     "display(df)")
    logs = logs_of(call)
    assert "city" in logs and "Lima" in logs and "19" in logs, logs
    assert "<table" not in logs and "<table" not in model_saw
    assert images_of(call) == []


@pytest.mark.parametrize("code", [
    "from PIL import Image\ndisplay(Image.new('RGB', (32, 16), 'orange'))",
    "from IPython.display import SVG\ndisplay(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"24\" "
    "height=\"12\"><circle cx=\"6\" cy=\"6\" r=\"5\" fill=\"blue\"/></svg>'))",
], ids=["pil", "svg"])
def test_a_displayed_image_is_an_image_output_and_an_image_file_part(client, script, code):
    t, run, call, _ = run_cell(client, script, code)
    (file_id,) = images_of(call)
    assert client.files.retrieve(file_id).purpose == "assistants_output"
    assert client.files.content(file_id).content.startswith(PNG)
    parts = [p for m in client.beta.threads.messages.list(t.id, run_id=run.id).data for p in m.content]
    assert [p.image_file.file_id for p in parts if p.type == "image_file"] == [file_id]


def test_shell_bash_and_node_output_lands_in_the_logs(client, script):
    code = ("!echo shell-says-hi\n"
            "import subprocess\n"
            "print(subprocess.run(['node', '-e', 'console.log(\"sub\" + 6 * 7)'], capture_output=True, text=True)"
            ".stdout.strip())\n"
            "open('/mnt/data/hello.js', 'w').write('console.log(\"js-file\", [1, 2, 3].length)')\n"
            "!node /mnt/data/hello.js")
    _, _, call, model_saw = run_cell(client, script, code)
    logs = logs_of(call)
    for expected in ("shell-says-hi", "sub42", "js-file 3"):
        assert expected in logs and expected in model_saw, logs


@pytest.mark.parametrize("code, expected", [
    ("%%bash\nfor n in one two; do echo bash-$n; done", "bash-one\nbash-two"),
    ("%%script node\nconsole.log('node-cell', 2 ** 10)", "node-cell 1024"),
    ("%timeit -n 3 -r 2 sum(range(1000))", "per loop (mean ± std. dev. of 2 runs, 3 loops each)"),
], ids=["bash", "script-node", "timeit"])
def test_cell_and_line_magics_run(client, script, code, expected):
    _, _, call, model_saw = run_cell(client, script, code)
    assert expected in logs_of(call), logs_of(call)
    assert expected in model_saw


def test_pip_install_without_network_fails_fast_with_pips_error(client, script):
    _, run, call, model_saw = run_cell(client, script, "%pip install assistd-no-such-package-xyz")
    logs = logs_of(call)
    # pip's own error, within the suite's 8 s time limit (on a loaded machine pip's exit itself
    # may still be cut by it; a hang would show no error at all).
    assert "ERROR: Could not find a version" in logs and "assistd-no-such-package-xyz" in logs, logs
    assert run.completed_at - run.started_at < 20


def test_an_ipython_traceback_reaches_the_model_without_escape_codes(client, script):
    t, _, call, model_saw = run_cell(client, script, "def ratio(a, b):\n    return a / b\n\nratio(1, 0)")
    for text in (logs_of(call), model_saw):
        assert "ZeroDivisionError" in text, text
        assert "---->" in text and "return a / b" in text
        assert "\x1b" not in text
    assert last_assistant_message(client, t.id) is not None
