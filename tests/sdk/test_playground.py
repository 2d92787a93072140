"""The browser playground at /playground, driven in Debian's headless Chromium through Playwright.

Each test pastes a key of a project of its own, works the page as a person would, and checks what the page
shows against what the run produced, and what it shows again when the thread is reopened from the API after a
reload. Console errors and uncaught page errors fail the test. Screenshots go to .tmp/playground/ (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from assistd_process import ROOT
from upstream import tool_outputs

pytestmark = pytest.mark.runs

SHOTS = ROOT / ".tmp" / "playground"
CHROMIUM = os.environ.get("ASSISTD_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")

CSV = "x,y\n1,1\n2,4\n3,9\n"
CHART_CODE = (
    "import matplotlib.pyplot as plt\n"
    "xs = [1, 2, 3]\n"
    "with open('/mnt/data/data.csv', 'w') as f:\n"
    "    f.write('x,y\\n' + ''.join(f'{x},{x * x}\\n' for x in xs))\n"
    "plt.plot(xs, [x * x for x in xs])\n"
    "plt.title('squares')\n"
    "plt.show()\n"
    "print('rows:', len(xs))\n"
)


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def listed(upstream, script):
    """The scripted model, listed by the upstream's /models, so the page's model picker offers it."""
    upstream.listed_models.append(script.model)
    yield script
    upstream.listed_models.remove(script.model)


class Playground:
    """A page of the playground with the key pasted, and every console error it logged."""

    def __init__(self, page: Page, server: str, key: str):
        self.page = page
        self.server = server
        self.key = key
        self.errors: list[str] = []
        # Chromium logs every 4xx answer as a console error; only a test that provokes one allows it.
        self.allow_failed_requests = False
        page.on("console", lambda m: m.type == "error" and self._console_error(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console_error(self, text: str) -> None:
        if not (self.allow_failed_requests and text.startswith("Failed to load resource: the server responded")):
            self.errors.append(text)

    def open(self) -> "Playground":
        self.page.goto(self.server + "/")
        expect(self.page).to_have_url(self.server + "/playground")
        self.page.get_by_label("API key", exact=True).fill(self.key)
        self.page.get_by_role("button", name="Save key").click()
        expect(self.page.locator("#key-state")).to_have_text("Key saved in this browser.")
        return self

    def use_assistant(self, name: str) -> None:
        """Picks the current assistant explicitly, from the picker."""
        option = self.page.locator("#assistant-select option", has_text=name).first
        expect(option).to_be_attached()
        self.page.get_by_label("Current assistant (runs use it)").select_option(option.get_attribute("value"))
        expect(self.page.locator("#thread-assistant")).to_contain_text(f"Runs use {name}")
        expect(self.page.get_by_label("Name", exact=True)).to_have_value(name)

    def send(self, text: str) -> None:
        """Types a message and presses Enter, as people do."""
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")

    def run_ended(self, status: str):
        end = self.page.locator(".run-end").last
        expect(end).to_contain_text(f"Run {status}", timeout=60_000)
        return end

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.page.screenshot(path=str(path))
        return path

    def composer_in_view(self) -> None:
        """The page itself does not scroll; the composer stays on screen."""
        expect(self.page.get_by_role("button", name="Send")).to_be_in_viewport()
        overflow = self.page.evaluate("() => document.scrollingElement.scrollHeight - window.innerHeight")
        assert overflow <= 0, f"the page scrolls by {overflow}px"


@pytest.fixture
def playground(browser, server, isolated_client):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    pg = Playground(page, server, isolated_client.api_key)
    yield pg
    context.close()
    assert pg.errors == [], f"the page logged console errors: {pg.errors}"


def test_the_page_is_served_without_a_key_and_the_root_redirects_to_it(server):
    root = httpx.get(server + "/", follow_redirects=False)
    assert root.status_code == 303 and root.headers["location"] == "/playground"
    page = httpx.get(server + "/playground")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/playground/app.js" in page.text
    js = httpx.get(server + "/playground/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    missing = httpx.get(server + "/playground/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No playground file 'nope.js'."


def test_a_code_run_shows_its_code_logs_chart_once_and_a_csv_download_and_again_after_a_reload(
        playground, listed):
    script = listed
    script.push_tool_call("code_interpreter", {"code": CHART_CODE}, arg_chunk=11)
    script.push_text("Here: [data.csv](sandbox:/mnt/data/data.csv)")
    pg = playground.open()
    page = pg.page

    page.get_by_role("button", name="New assistant").click()
    page.get_by_label("Name", exact=True).fill("Charts")
    page.locator("#a-settings").get_by_label("Model", exact=True).select_option(script.model)
    page.locator("#a-settings").get_by_label("Instructions", exact=True).fill("Draw what is asked.")
    page.get_by_label("Temperature").fill("0.3")
    expect(page.locator("#a-settings").get_by_label("code_interpreter", exact=True)).to_be_checked()
    page.get_by_role("button", name="Create assistant").click()
    # The saved assistant is the current one at once: runs use it.
    expect(page.locator("#assistant-id")).to_contain_text("asst_")
    expect(page.locator("#thread-assistant")).to_have_text(f"Runs use Charts ({script.model}).")
    expect(page.get_by_label("Current assistant (runs use it)")).to_have_value(
        page.locator("#assistant-id").text_content())

    pg.send("Chart the squares and give me the CSV.")
    pg.run_ended("completed")

    code = page.get_by_label("Code", exact=True)
    expect(code).to_have_text(CHART_CODE)
    expect(code.locator(".kw", has_text="import").first).to_be_visible()
    expect(page.get_by_label("Logs", exact=True)).to_have_text("rows: 3\n")
    expect(page.locator(".tool .badge")).to_have_text("done")
    page.wait_for_function("() => { const i = document.querySelector('.tool img');"
                           " return i && i.complete && i.naturalWidth > 100; }")
    # The chart is shown once: in the step that drew it, not again in the message.
    expect(page.locator("#messages img")).to_have_count(1)
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text("Here: ")
    link = answer.get_by_role("link", name="data.csv")
    page.wait_for_function("() => document.querySelector('a.download').href.startsWith('blob:')")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "data.csv"
    assert Path(download.path()).read_text() == CSV
    expect(answer.locator(".text")).to_have_text("Here: data.csv")

    # The panel lists the run's steps and the API calls with their timings.
    expect(page.locator("#run-steps li")).to_have_count(2)
    expect(page.locator("#run-steps")).to_contain_text("code_interpreter")
    expect(page.locator("#api-calls")).to_contain_text("POST /v1/threads/")
    expect(page.locator("#api-calls .ms").first).to_contain_text(" ms")
    pg.composer_in_view()
    shot = pg.shot("code-run.png")
    assert shot.stat().st_size > 10_000

    # A reload reopens the same thread with its assistant, drawn from the API: code, logs, chart once, answer.
    page.reload()
    expect(page.locator("#thread-assistant")).to_have_text(f"Runs use Charts ({script.model}).")
    expect(page.get_by_label("Code", exact=True)).to_have_text(CHART_CODE)
    expect(page.get_by_label("Logs", exact=True)).to_have_text("rows: 3\n")
    expect(page.locator(".msg.assistant .text")).to_have_text("Here: data.csv")
    expect(page.locator("#messages img")).to_have_count(1)
    expect(page.locator(".run-end")).to_contain_text("Run completed")
    expect(page.get_by_label("Temperature")).to_have_value("0.3")
    # In order: the question, the code step, the answer, the run's outcome.
    kinds = page.eval_on_selector_all("#messages > li", "els => els.map(e => e.className.split(' ')[0])")
    assert kinds == ["msg", "tool", "msg", "run-end"], kinds
    pg.shot("code-run-reloaded.png")


def test_a_function_call_is_answered_from_the_form_and_its_output_stays_after_a_reload(
        playground, isolated_client, script):
    weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    isolated_client.beta.assistants.create(model=script.model, name="Weather",
                                           tools=[{"type": "function", "function": weather}])
    script.push_tool_call("get_weather", {"city": "Paris"})
    script.push_text(lambda req: f"In **Paris** it is {tool_outputs(req)[-1]}.")
    pg = playground.open()
    page = pg.page
    pg.use_assistant("Weather")

    pg.send("Weather in Paris?")
    answer_box = page.get_by_label('get_weather({"city": "Paris"})')
    expect(answer_box).to_be_visible(timeout=60_000)
    expect(answer_box).to_be_focused()
    assert "get_weather returned" in answer_box.get_attribute("placeholder")
    expect(page.locator("#run-state")).to_have_text("Run waiting for function results")
    answer_box.fill("sunny")
    page.get_by_role("button", name="Submit tool outputs").click()
    pg.run_ended("completed")
    last = page.locator(".msg.assistant").last
    expect(last).to_contain_text("In Paris it is sunny.")
    expect(last.locator("strong")).to_have_text("Paris")
    expect(page.get_by_label("Function output")).to_have_text("→ sunny")
    expect(page.locator("#run-steps")).to_contain_text("get_weather")
    expect(page.locator("#run-steps")).to_contain_text("tokens")
    pg.shot("function-call.png")

    page.reload()
    expect(page.get_by_label("Function call")).to_have_text('get_weather({"city": "Paris"})')
    expect(page.get_by_label("Function output")).to_have_text("→ sunny")
    expect(page.locator(".msg.assistant").last).to_contain_text("In Paris it is sunny.")


def test_cancel_stops_a_slow_run_and_a_reload_shows_it_cancelled(playground, isolated_client, script):
    isolated_client.beta.assistants.create(model=script.model, name="Sleepy", tools=[{"type": "code_interpreter"}])
    script.push_tool_call("code_interpreter", {"code": "import time\nprint('dozing')\ntime.sleep(30)\nprint('woke')"})
    pg = playground.open()
    page = pg.page
    pg.use_assistant("Sleepy")

    pg.send("Take your time.")
    expect(page.get_by_label("Code", exact=True)).to_contain_text("time.sleep(30)", timeout=60_000)
    expect(page.locator(".tool .badge")).to_have_text("running")
    page.get_by_role("button", name="Cancel run").click()
    pg.run_ended("cancelled")
    expect(page.locator(".tool .badge")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    script.push_text("Awake again.")
    pg.send("Still there?")
    expect(page.locator(".msg.assistant").last).to_contain_text("Awake again.", timeout=60_000)
    pg.run_ended("completed")

    page.reload()
    expect(page.get_by_label("Code", exact=True)).to_contain_text("time.sleep(30)")
    expect(page.locator(".run-end").first).to_contain_text("Run cancelled")
    expect(page.locator(".run-end").last).to_contain_text("Run completed")
    expect(page.locator(".tool .badge")).to_have_text("cancelled")
    kinds = page.eval_on_selector_all("#messages > li", "els => els.map(e => e.className.split(' ')[0])")
    assert kinds == ["msg", "tool", "run-end", "msg", "msg", "run-end"], kinds
    pg.shot("cancelled-reloaded.png")


def test_a_thread_made_through_the_sdk_is_listed_and_opens_with_its_work(playground, isolated_client, script):
    a = isolated_client.beta.assistants.create(model=script.model, name="From an app",
                                               tools=[{"type": "code_interpreter"}])
    isolated_client.beta.assistants.create(model=script.model, name="Another one")
    script.push_tool_call("code_interpreter", {"code": "print(6 * 7)"})
    script.push_text("# Result\n\nIt is `42`:\n\n- six\n- seven <b>times</b>")
    thread = isolated_client.beta.threads.create(messages=[{"role": "user", "content": "Six times seven?"}])
    run = isolated_client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id)
    assert run.status == "completed"

    pg = playground.open()
    page = pg.page
    item = page.locator(f'#threads [data-thread-id="{thread.id}"]')
    expect(item).to_be_visible()
    item.locator("button.open").click()
    # The thread opens with the assistant its run used.
    expect(page.locator("#thread-assistant")).to_contain_text("Runs use From an app")
    expect(page.get_by_label("Logs", exact=True)).to_have_text("42\n")
    answer = page.locator(".msg.assistant .text")
    expect(answer.locator("h2")).to_have_text("Result")
    expect(answer.locator("code")).to_have_text("42")
    expect(answer.locator("li")).to_have_count(2)
    # Markdown is drawn from text: what looks like HTML stays text.
    expect(answer.locator("li").last).to_have_text("seven <b>times</b>")
    expect(answer.locator("b")).to_have_count(0)

    # Deleting a message and the thread from the page.
    page.locator(".msg.user").get_by_role("button", name="Delete message").click()
    expect(page.locator(".msg.user")).to_have_count(0)
    assert [m.role for m in isolated_client.beta.threads.messages.list(thread.id)] == ["assistant"]
    item.get_by_role("button", name="Delete thread Untitled thread").click()
    expect(item).to_have_count(0)
    expect(page.locator("#messages > li")).to_have_count(0)
    assert [t["id"] for t in httpx.get(pg.server + "/v1/threads", headers={
        "Authorization": f"Bearer {pg.key}"}).json()["data"]] == []


def test_a_wrong_key_shows_its_error_by_the_key_and_is_not_saved(playground):
    pg = playground
    pg.allow_failed_requests = True
    page = pg.page
    page.goto(pg.server + "/playground")
    page.get_by_label("API key", exact=True).fill("sk-not-a-key")
    page.get_by_label("API key", exact=True).press("Enter")
    expect(page.locator("#key-error")).to_be_visible()
    expect(page.locator("#key-error")).to_contain_text("key")
    expect(page.locator("#key-state")).to_have_text("No key yet.")
    assert page.evaluate("() => localStorage.getItem('assistd.key')") is None


def test_api_errors_are_shown_where_the_action_was_taken(playground, http, listed):
    bad = [{"name": "bad name!"}]
    expected = http.post("/assistants", json={"model": "some-model", "tools": [{"type": "function", "function": bad[0]}]})
    assert expected.status_code == 400
    pg = playground.open()
    pg.allow_failed_requests = True
    page = pg.page
    page.get_by_role("button", name="New assistant").click()
    page.locator("#a-settings").get_by_label("Model", exact=True).select_option(listed.model)
    page.locator("#a-settings").get_by_label("code_interpreter", exact=True).uncheck()
    page.get_by_label("Functions (JSON array of function definitions)").fill(json.dumps(bad))
    page.get_by_role("button", name="Create assistant").click()
    alert = page.locator("#assistant-form").get_by_role("alert")
    expect(alert).to_have_text(expected.json()["error"]["message"])
    expect(page.get_by_role("alert")).to_have_count(1)
    # Keyboard focus is visible.
    page.get_by_label("Name", exact=True).focus()
    page.keyboard.press("Shift+Tab")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline


def test_shift_enter_is_a_new_line_and_enter_sends(playground, isolated_client, script):
    isolated_client.beta.assistants.create(model=script.model, name="Lines")
    script.push_text("Two lines read.")
    pg = playground.open()
    page = pg.page
    pg.use_assistant("Lines")
    box = page.get_by_label("Message", exact=True)
    box.type("first")
    box.press("Shift+Enter")
    box.type("second")
    expect(box).to_have_value("first\nsecond")
    expect(page.locator(".msg")).to_have_count(0)
    box.press("Enter")
    pg.run_ended("completed")
    assert page.locator(".msg.user .text p").inner_text() == "first\nsecond"
    expect(box).to_have_value("")


def test_on_a_phone_sized_screen_nothing_scrolls_sideways_and_every_control_is_labelled(
        browser, server, isolated_client, script):
    isolated_client.beta.assistants.create(model=script.model, name="Pocket", tools=[{"type": "code_interpreter"}])
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = Playground(context.new_page(), server, isolated_client.api_key).open()
    pg.use_assistant("Pocket")
    pg.send("Hello from a phone.")
    pg.run_ended("completed")
    page = pg.page

    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, textarea, select, button')]
        .filter(e => e.offsetParent !== null)
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unlabelled == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
    context.close()
    assert pg.errors == [], f"the page logged console errors: {pg.errors}"


@pytest.mark.parametrize("continuation", ["previous_response_id", "a conversation"])
def test_responses_mode_streams_code_and_its_output_and_continues_in_the_same_container(
        playground, listed, continuation):
    script = listed
    script.push_tool_call("code_interpreter", {"code": "x = 21\nopen('/mnt/data/notes.txt', 'w').write('hi')\nprint('x is', x)"})
    script.push_text("Set **x** to 21.")
    script.push_tool_call("code_interpreter", {"code": "print(x * 2)"})
    script.push_text("Twice x is 42: [notes.txt](sandbox:/mnt/data/notes.txt)")
    pg = playground.open()
    page = pg.page
    page.get_by_role("button", name="Responses").click()
    expect(page.get_by_role("button", name="Responses")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#a-chat")).to_be_hidden()
    page.locator("#r-settings").get_by_label("Model", exact=True).select_option(script.model)
    expect(page.locator("#r-settings").get_by_label("code_interpreter", exact=True)).to_be_checked()
    page.locator("#r-settings").get_by_label("Instructions", exact=True).fill("Use Python.")
    page.get_by_label("Continue with").select_option(label=continuation)

    box = page.get_by_label("Input", exact=True)
    box.fill("Set x to 21.")
    box.press("Enter")
    end = page.locator("#r-items .run-end").last
    expect(end).to_contain_text("Response completed", timeout=60_000)
    first_id = end.get_attribute("data-response-id")
    assert first_id.startswith("resp_")
    code = page.locator("#r-items").get_by_label("Code", exact=True)
    expect(code).to_have_text("x = 21\nopen('/mnt/data/notes.txt', 'w').write('hi')\nprint('x is', x)")
    expect(page.locator("#r-items").get_by_label("Logs", exact=True)).to_have_text("x is 21\n")
    expect(page.locator("#r-items .msg.assistant strong")).to_have_text("x")
    if continuation == "previous_response_id":
        expect(page.locator("#r-chain")).to_have_text(f"previous_response_id {first_id}")
    else:
        expect(page.locator("#r-chain")).to_contain_text("conversation conv_")
    container = page.locator("#c-id").text_content()
    assert container.startswith("cntr_"), container

    # The second input continues the first (previous_response_id): same container, x still set.
    box.fill("Double it.")
    box.press("Enter")
    expect(page.locator("#r-items .run-end")).to_have_count(2, timeout=60_000)
    expect(page.locator("#r-items .run-end").last).to_contain_text("Response completed")
    expect(page.locator("#r-items").get_by_label("Logs", exact=True).last).to_have_text("42\n")
    expect(page.locator("#c-id")).to_have_text(container)
    second = script.requests[-1]
    assert "Set x to 21." in json.dumps(second["messages"]), "the second response did not carry the first's context"
    # The container's files, and the answer's link to one of them, download.
    expect(page.locator("#c-files")).to_contain_text("notes.txt")
    link = page.locator("#r-items .msg.assistant").last.get_by_role("link", name="notes.txt")
    page.wait_for_function("() => [...document.querySelectorAll('#r-items a.download')].every(a => a.href.startsWith('blob:'))")
    with page.expect_download() as info:
        link.click()
    assert Path(info.value.path()).read_text() == "hi"
    pg.composer_in_view()
    pg.shot(f"responses-{continuation.split()[-1]}.png")

    # A reload comes back to Responses mode with the same chat, read from the API, and goes on with it.
    page.reload()
    expect(page.get_by_role("button", name="Responses")).to_have_attribute("aria-pressed", "true")
    items = page.locator("#r-items")
    expect(items.get_by_label("Code", exact=True)).to_have_count(2)
    expect(items.get_by_label("Logs", exact=True).last).to_have_text("42\n")
    expect(items.locator(".msg.user")).to_have_count(2)
    expect(items.locator(".msg.user").first).to_have_text("userSet x to 21.")
    expect(items.locator(".msg.assistant").last).to_contain_text("Twice x is 42: notes.txt")
    expect(page.locator("#c-id")).to_have_text(container)
    expect(page.locator("#c-files")).to_contain_text("notes.txt")
    script.push_tool_call("code_interpreter", {"code": "print(x + 1)"})
    script.push_text("Done.")
    page.locator("#r-settings").get_by_label("Model", exact=True).select_option(script.model)
    box.fill("Add one.")
    box.press("Enter")
    expect(items.locator(".msg.assistant").last).to_contain_text("Done.", timeout=60_000)
    expect(items.get_by_label("Logs", exact=True).last).to_have_text("22\n")


def test_responses_mode_answers_a_function_call_from_the_form(playground, listed):
    script = listed
    script.push_tool_call("get_weather", {"city": "Oslo"})
    script.push_text(lambda req: f"Oslo: {tool_outputs(req)[-1]}.")
    pg = playground.open()
    page = pg.page
    page.get_by_role("button", name="Responses").click()
    page.locator("#r-settings").get_by_label("Model", exact=True).select_option(script.model)
    page.locator("#r-settings").get_by_label("code_interpreter", exact=True).uncheck()
    page.get_by_label("Functions (JSON array: name, description, parameters)").fill(json.dumps(
        [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]))
    page.get_by_label("Input", exact=True).fill("Weather in Oslo?")
    page.get_by_label("Input", exact=True).press("Enter")
    answer = page.get_by_label('get_weather({"city": "Oslo"})')
    expect(answer).to_be_visible(timeout=60_000)
    answer.fill("snow")
    page.get_by_role("button", name="Send function outputs").click()
    expect(page.locator("#r-items .msg.assistant").last).to_contain_text("Oslo: snow.", timeout=60_000)
    expect(page.locator("#r-items").get_by_label("Function output")).to_have_text("→ snow")


def test_a_file_search_run_shows_its_results_citations_and_attachments_by_name(playground, isolated_client, script):
    from test_file_search import NOTES, SMALL_CHUNKS, cite_first_result

    f = isolated_client.files.create(file=("zephyr.md", NOTES), purpose="assistants")
    vs = isolated_client.vector_stores.create(file_ids=[f.id], chunking_strategy=SMALL_CHUNKS)
    isolated_client.beta.assistants.create(model=script.model, name="Librarian", tools=[{"type": "file_search"}],
                                           tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    script.push_tool_call("file_search", {"query": "When is the Zephyr launch?"})
    script.push_text(cite_first_result)
    pg = playground.open()
    page = pg.page
    pg.use_assistant("Librarian")
    page.get_by_label("Attach files").set_input_files(
        files=[{"name": "agenda.md", "mimeType": "text/markdown", "buffer": b"# Agenda\n\nLaunch review.\n"}])
    pg.send("When do we launch?")
    pg.run_ended("completed")
    results = page.get_by_label("Search results")
    expect(results.locator("li").first).to_contain_text("zephyr.md")
    expect(page.locator(".msg.assistant").last).to_contain_text("It launches on Tuesday, 14 March")
    expect(page.locator(".msg.assistant .cite")).to_have_text("[1]")
    expect(page.locator(".msg.assistant .citations")).to_contain_text("zephyr.md")
    expect(page.locator(".msg.user .attachments")).to_have_text("Attached: agenda.md")

    page.reload()
    expect(page.get_by_label("Search results").locator("li").first).to_contain_text("zephyr.md")
    expect(page.locator(".msg.user .attachments")).to_have_text("Attached: agenda.md")
    expect(page.locator(".msg.assistant .citations")).to_contain_text("zephyr.md")
    pg.shot("file-search.png")


def test_the_thread_list_pages_through_every_thread_of_the_project(playground, isolated_client):
    made = [isolated_client.beta.threads.create(metadata={"title": f"Thread {i}"}).id for i in range(32)]
    pg = playground.open()
    page = pg.page
    items = page.locator("#threads li[data-thread-id]")
    expect(items).to_have_count(30)
    expect(items.first).to_contain_text("Thread 31")
    page.get_by_role("button", name="More threads").click()
    expect(items).to_have_count(32)
    expect(page.get_by_role("button", name="More threads")).to_have_count(0)
    assert page.eval_on_selector_all("#threads li[data-thread-id]", "els => els.map(e => e.dataset.threadId)") \
        == list(reversed(made))
