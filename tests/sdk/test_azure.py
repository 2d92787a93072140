"""Azure clients and several upstreams.

openai-python's `AzureOpenAI` (it puts `/openai` in front of every path, adds `?api-version=` and sends its key in
an `api-key` header) runs Azure's code-interpreter sample unchanged against assistd. A server of its own, with
`ASSISTD_UPSTREAMS`, routes runs by model to an OpenAI-shaped and an Azure-shaped scripted upstream.
"""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import psycopg
import pytest
from openai import AzureOpenAI

import assistd_process
from assistd_process import with_dbname
from conftest import KEY_A, UPSTREAM_KEY, WORK
from helpers import text_of
from upstream import AzureUpstream, Upstream

API_VERSION = "2024-05-01-preview"


def azure_client(server: str, key: str = KEY_A, **kw) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=server, api_key=key, api_version=API_VERSION, max_retries=0, timeout=60,
                       **kw)


# -- the Azure client surface ---------------------------------------------------------------------------------

@pytest.mark.runs
def test_azures_code_interpreter_sample_runs_unchanged_with_only_the_endpoint_changed(server, script):
    client = azure_client(server)
    script.push_tool_call("code_interpreter", {"code": "import csv\nprint(sum(int(r['n']) for r in "
                                                        "csv.DictReader(open('/mnt/data/' + __import__('os')"
                                                        ".listdir('/mnt/data')[0]))))"})
    script.push_text("The total is 6.")
    file = client.files.create(file=("numbers.csv", b"n\n1\n2\n3\n"), purpose="assistants")
    assistant = client.beta.assistants.create(
        model=script.model, instructions="You are a data analyst.", tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [file.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum the column n."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error

    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    calls = [tc for s in steps.data if s.type == "tool_calls" for tc in s.step_details.tool_calls]
    assert [o.logs.strip() for o in calls[0].code_interpreter.outputs if o.type == "logs"] == ["6"]
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert text_of(messages.data[0]) == "The total is 6."
    assert client.beta.assistants.retrieve(assistant.id).tool_resources.code_interpreter.file_ids == [file.id]


@pytest.mark.runs
def test_a_run_streams_through_the_azure_client(server, script):
    client = azure_client(server)
    script.push_text("Streamed through Azure.")
    assistant = client.beta.assistants.create(model=script.model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = [e.event for e in stream]
        final = stream.get_final_messages()
    assert events[-1] == "thread.run.completed"
    assert "thread.message.delta" in events
    assert text_of(final[-1]) == "Streamed through Azure."


def test_lists_take_api_version_and_objects_are_the_bearer_keys_project(server, client):
    azure = azure_client(server)
    assistant = client.beta.assistants.create(model="gpt-4o", name=f"azure-{uuid.uuid4().hex[:6]}")
    assert azure.beta.assistants.retrieve(assistant.id).name == assistant.name
    listed = azure.beta.assistants.list(limit=100, order="desc")
    assert assistant.id in [a.id for a in listed.data]
    assert azure.files.list().object == "list"


def test_a_wrong_or_missing_api_key_is_refused(server):
    with pytest.raises(openai.AuthenticationError) as e:
        azure_client(server, key="sk-not-a-key").beta.assistants.list()
    assert e.value.status_code == 401
    assert "not-a-key" not in str(e.value)
    r = httpx.get(f"{server}/openai/assistants", params={"api-version": API_VERSION},
                  headers={"OpenAI-Beta": "assistants=v2"})
    assert r.status_code == 401 and "api-key" in r.json()["error"]["message"]


def test_deployment_style_paths_and_the_bearer_header_serve_the_same_routes(server):
    headers = {"api-key": KEY_A, "OpenAI-Beta": "assistants=v2"}
    q = {"api-version": API_VERSION}
    created = httpx.post(f"{server}/openai/deployments/gpt-4o/assistants", params=q, headers=headers,
                         json={"model": "gpt-4o"})
    assert created.status_code == 200, created.text
    asst = created.json()["id"]
    for url, h in [(f"{server}/openai/assistants/{asst}", headers),
                   (f"{server}/v1/assistants/{asst}", {"Authorization": f"Bearer {KEY_A}", **headers}),
                   (f"{server}/v1/assistants/{asst}", {"api-key": KEY_A, "OpenAI-Beta": "assistants=v2"})]:
        r = httpx.get(url, params=q, headers=h)
        assert r.status_code == 200 and r.json()["id"] == asst, (url, r.text)
    # Bodies still refuse unknown fields; api-version is a query parameter, not a body field.
    bad = httpx.post(f"{server}/openai/assistants", params=q, headers=headers,
                     json={"model": "gpt-4o", "api-version": API_VERSION})
    assert bad.status_code == 400
    missing = httpx.get(f"{server}/openai/nothing-here", params=q, headers=headers)
    assert missing.status_code == 404 and "/openai/nothing-here" in missing.json()["error"]["message"]


# -- several upstreams ---------------------------------------------------------------------------------------

OPENAI_KEY = "sk-openai-upstream-key"
AZURE_KEY = "azure-upstream-key-123"
ROUTED_KEY = "sk-routed"


@pytest.fixture(scope="module")
def routed(database_url, upstream, tmp_path_factory):
    """A server whose runs go by model to an OpenAI-shaped upstream, an Azure deployment, a mis-keyed entry,
    or (unmatched) the session's default upstream. Yields (client, openai_upstream, azure_upstream, url)."""
    oai = Upstream()
    oai.required_key = OPENAI_KEY
    oai.listed_models = ["oai-listed", "not-routed-here"]
    oai.start()
    az = AzureUpstream(api_key=AZURE_KEY, api_version="2024-10-21")
    az.listed_models = ["az-listed"]
    az.start()
    upstreams = [
        {"models": ["oai-*", "shared"], "base_url": oai.base_url, "api_key": OPENAI_KEY},
        {"models": ["az-fixed"], "base_url": az.base_url, "api_key": AZURE_KEY, "kind": "azure",
         "api_version": "2024-10-21", "deployment": "my-deployment"},
        {"models": ["az-*"], "base_url": az.base_url, "api_key": AZURE_KEY, "kind": "azure",
         "api_version": "2024-10-21"},
        {"models": ["badkey-*"], "base_url": oai.base_url, "api_key": "sk-wrong-upstream-key", "max_retries": 0},
    ]
    config = tmp_path_factory.mktemp("upstreams") / "upstreams.json"
    config.write_text(json.dumps(upstreams))
    name = "assistd_azure_" + uuid.uuid4().hex[:10]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        "DATABASE_URL": with_dbname(database_url, name),
        "ASSISTD_API_KEYS": ROUTED_KEY,
        "ASSISTD_DATA_DIR": str(tmp_path_factory.mktemp("routed-data")),
        "ASSISTD_UPSTREAMS": f"@{config}",
        "ASSISTD_UPSTREAM_BASE_URL": upstream.base_url,
        "ASSISTD_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "ASSISTD_UPSTREAM_RETRY_BASE_MS": "50",
        "ASSISTD_SANDBOX_INSTANCE": f"azure-{uuid.uuid4().hex[:8]}",
        "ASSISTD_SANDBOX_POOL_SIZE": "0",
    }
    log = WORK / "routed-server.log"
    proc, url = assistd_process.start(env, log)
    client = openai.OpenAI(base_url=url + "/v1", api_key=ROUTED_KEY, max_retries=0, timeout=60)
    yield client, oai, az, url, log
    assistd_process.stop(proc)
    oai.stop()
    az.stop()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_with(client, model: str):
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=100)
    last = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    return run, last


@pytest.mark.runs
def test_runs_route_by_model_to_each_upstream_and_unmatched_models_to_the_default(routed, upstream):
    client, oai, az, _, _ = routed
    oai.script("oai-model").push_text("from the OpenAI-shaped upstream")
    az.script("az-fixed").push_text("from the fixed Azure deployment")
    az.script("az-by-name").push_text("from the Azure deployment named like the model")
    upstream.script("elsewhere").push_text("from the default upstream")

    for model, text in [("oai-model", "from the OpenAI-shaped upstream"),
                        ("az-fixed", "from the fixed Azure deployment"),
                        ("az-by-name", "from the Azure deployment named like the model"),
                        ("elsewhere", "from the default upstream")]:
        run, last = run_with(client, model)
        assert run.status == "completed", (model, run.last_error)
        assert text_of(last) == text, model

    assert [p.split("?")[0] for p in az.paths] == ["/openai/deployments/my-deployment/chat/completions",
                                                   "/openai/deployments/az-by-name/chat/completions"]
    assert all("api-version=2024-10-21" in p for p in az.paths)
    assert oai.script_for("oai-model").headers[-1]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "elsewhere" not in [r.get("model") for r in oai.all_requests + az.all_requests]


@pytest.mark.runs
def test_a_wrong_key_at_one_upstream_fails_only_its_own_runs_and_never_shows_the_key(routed):
    client, oai, _, url, log = routed
    oai.script("oai-still-fine").push_text("still fine")
    run, _ = run_with(client, "badkey-model")
    assert run.status == "failed"
    assert "401" in run.last_error.message
    assert "sk-wrong-upstream-key" not in run.last_error.message
    run, last = run_with(client, "oai-still-fine")
    assert run.status == "completed" and text_of(last) == "still fine"
    metrics = httpx.get(url + "/metrics").text
    logs = log.read_text(errors="replace")
    for secret in ["sk-wrong-upstream-key", OPENAI_KEY, AZURE_KEY, UPSTREAM_KEY]:
        assert secret not in metrics and secret not in logs, secret


def test_models_lists_static_entries_and_what_each_upstream_answers(routed, upstream):
    client, _, _, url, _ = routed
    ids = [m.id for m in client.models.list()]
    # Static names (not prefixes), then each upstream's own list where a run with the model would go there.
    assert ids[:2] == ["shared", "az-fixed"]
    assert "oai-listed" in ids and "az-listed" in ids
    assert "not-routed-here" not in ids  # the OpenAI-shaped upstream lists it, but runs with it go elsewhere
    assert client.models.retrieve("az-listed").owned_by == "scripted"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    azure = AzureOpenAI(azure_endpoint=url, api_key=ROUTED_KEY, api_version=API_VERSION, max_retries=0)
    assert [m.id for m in azure.models.list()] == ids


# -- the setting is checked at start ---------------------------------------------------------------------------

@pytest.mark.parametrize("setting, expected", [
    ('[{"models": ["a"], "base_url": "http://127.0.0.1:9/v1"}, {"models": ["b"], "base_url": "ftp://x"}]',
     "ASSISTD_UPSTREAMS entry 2"),
    ('[{"models": ["a"], "base_url": "http://127.0.0.1:9", "kind": "azure", "api_key": "k"}]',
     "needs an `api_version`"),
    ('[{"models": [], "base_url": "http://127.0.0.1:9"}]', "`models` is empty"),
    ('[{"models": ["a"], "base_url": "http://127.0.0.1:9", "kind": "bedrock"}]', "unknown variant"),
    ('{"models": ["a"]}', "not a JSON list"),
    ("@/nonexistent/upstreams.json", "cannot read /nonexistent/upstreams.json"),
])
def test_a_bad_upstreams_setting_stops_the_server_with_a_message_naming_it(database_url, tmp_path, setting,
                                                                            expected):
    env = {"DATABASE_URL": database_url, "ASSISTD_API_KEYS": "sk-x", "ASSISTD_DATA_DIR": str(tmp_path),
           "ASSISTD_UPSTREAMS": setting, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"}
    with pytest.raises(assistd_process.StartError) as e:
        assistd_process.start(env, tmp_path / "server.log", timeout=30)
    assert "exited with" in str(e.value)
    assert "ASSISTD_UPSTREAMS" in str(e.value) and expected in str(e.value), str(e.value)
