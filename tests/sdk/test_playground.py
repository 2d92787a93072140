"""The browser playground at /playground, driven in Debian's headless Chromium through Playwright.

Each test pastes a key of a project of its own, works the page as a person would, and checks what the page
shows against what the run produced. Console errors and uncaught page errors fail the test. Screenshots go
to .tmp/playground/.
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
        self.page.locator("#assistants").get_by_role("button", name=name, exact=True).click()
        expect(self.page.locator("#thread-assistant")).to_contain_text(name)

    def send(self, text: str) -> None:
        self.page.get_by_label("Message", exact=True).fill(text)
        self.page.get_by_role("button", name="Send").click()

    def run_ended(self, status: str):
        end = self.page.locator(".run-end").last
        expect(end).to_contain_text(f" {status}", timeout=60_000)
        return end

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


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


def test_a_code_run_shows_its_code_logs_chart_and_a_csv_download(playground, script):
    script.push_tool_call("code_interpreter", {"code": CHART_CODE}, arg_chunk=11)
    script.push_text("Here: [data.csv](sandbox:/mnt/data/data.csv)")
    pg = playground.open()
    page = pg.page

    page.get_by_role("button", name="New assistant").click()
    page.get_by_label("Name", exact=True).fill("Charts")
    page.get_by_label("Model", exact=True).fill(script.model)
    page.get_by_label("Instructions", exact=True).fill("Draw what is asked.")
    expect(page.get_by_label("code_interpreter", exact=True)).to_be_checked()
    page.get_by_role("button", name="Save assistant").click()
    expect(page.locator("#assistant-id")).to_contain_text("asst_")
    pg.use_assistant("Charts")

    pg.send("Chart the squares and give me the CSV.")
    pg.run_ended("completed")

    code = page.get_by_label("Code", exact=True)
    expect(code).to_have_text(CHART_CODE)
    expect(code.locator(".kw", has_text="import").first).to_be_visible()
    expect(page.get_by_label("Logs", exact=True)).to_have_text("rows: 3\n")
    page.wait_for_function("() => { const i = document.querySelector('.tool img');"
                           " return i && i.complete && i.naturalWidth > 100; }")
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

    shot = pg.shot("code-run.png")
    assert shot.stat().st_size > 10_000

    # The thread is remembered in this browser: after a reload it opens again with its answer.
    page.reload()
    page.locator("#threads").get_by_role("button", name="Chart the squares").click()
    expect(page.locator(".msg.assistant .text")).to_have_text("Here: data.csv")
    expect(page.locator(".msg.assistant img")).to_have_count(1)


def test_a_function_call_is_answered_from_the_form_and_the_run_finishes(playground, isolated_client, script):
    weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    isolated_client.beta.assistants.create(model=script.model, name="Weather",
                                           tools=[{"type": "function", "function": weather}])
    script.push_tool_call("get_weather", {"city": "Paris"})
    script.push_text(lambda req: f"In Paris it is {tool_outputs(req)[-1]}.")
    pg = playground.open()
    pg.use_assistant("Weather")

    pg.send("Weather in Paris?")
    answer_box = pg.page.get_by_label('get_weather({"city": "Paris"})')
    expect(answer_box).to_be_visible(timeout=60_000)
    expect(pg.page.locator("#run-state")).to_have_text("Run requires_action")
    answer_box.fill("sunny")
    pg.page.get_by_role("button", name="Submit tool outputs").click()
    pg.run_ended("completed")
    expect(pg.page.locator(".msg.assistant").last).to_contain_text("In Paris it is sunny.")

    pg.run_ended("completed").get_by_role("button", name="Steps and usage").click()
    expect(pg.page.locator(".details").last).to_contain_text("tokens")
    pg.shot("function-call.png")


def test_cancel_stops_a_slow_run_and_the_thread_takes_the_next_message(playground, isolated_client, script):
    isolated_client.beta.assistants.create(model=script.model, name="Sleepy", tools=[{"type": "code_interpreter"}])
    script.push_tool_call("code_interpreter", {"code": "import time\ntime.sleep(30)\nprint('woke')"})
    pg = playground.open()
    page = pg.page
    pg.use_assistant("Sleepy")

    pg.send("Take your time.")
    expect(page.get_by_label("Code", exact=True)).to_contain_text("time.sleep(30)", timeout=60_000)
    page.get_by_role("button", name="Cancel run").click()
    pg.run_ended("cancelled")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()

    script.push_text("Awake again.")
    pg.send("Still there?")
    expect(page.locator(".msg.assistant").last).to_contain_text("Awake again.", timeout=60_000)


def test_api_errors_are_shown_as_the_api_words_them(playground, http):
    bad = [{"name": "bad name!"}]
    expected = http.post("/assistants", json={"model": "some-model", "tools": [{"type": "function", "function": bad[0]}]})
    assert expected.status_code == 400
    pg = playground.open()
    pg.allow_failed_requests = True
    pg.page.get_by_role("button", name="New assistant").click()
    pg.page.get_by_label("Model", exact=True).fill("some-model")
    pg.page.get_by_label("code_interpreter", exact=True).uncheck()
    pg.page.get_by_label("Functions (JSON array of function definitions)").fill(json.dumps(bad))
    pg.page.get_by_role("button", name="Save assistant").click()
    expect(pg.page.get_by_role("alert")).to_have_text(expected.json()["error"]["message"])


def test_on_a_phone_sized_screen_nothing_scrolls_sideways_and_every_control_is_labelled(
        browser, server, isolated_client, script):
    isolated_client.beta.assistants.create(model=script.model, name="Pocket", tools=[{"type": "code_interpreter"}])
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = Playground(context.new_page(), server, isolated_client.api_key).open()
    pg.use_assistant("Pocket")
    pg.send("Hello from a phone.")
    pg.run_ended("completed")
    page = pg.page
    page.get_by_role("button", name="New assistant").click()

    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, textarea, select, button')]
        .filter(e => e.offsetParent !== null)
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unlabelled == []
    pg.shot("phone.png")
    context.close()
    assert pg.errors == [], f"the page logged console errors: {pg.errors}"
