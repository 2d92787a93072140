"""Containers and their files through the official SDK: create, list (name filter, paging), retrieve, delete;
files uploaded as multipart or copied from /v1/files, listed, retrieved, downloaded and deleted; memory and network
limits; other projects' and expired containers."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from helpers import bad_request, list_all, not_found, upload


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def named(client, name: str) -> list:
    return list_all(client.containers.list, extra_query={"name": name})


def file_rows(database_url: str, container_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM container_files WHERE container_id = %s",
                            (container_id,)).fetchone()[0]


def test_a_new_container_runs_with_openai_defaults(client):
    c = client.containers.create(name="My Container")
    assert c.id.startswith("cntr_")
    assert c.object == "container"
    assert c.name == "My Container"
    assert c.status == "running"
    assert abs(c.created_at - time.time()) < 60
    assert c.expires_after.anchor == "last_active_at"
    assert c.expires_after.minutes == 20
    assert c.to_dict()["memory_limit"] == "1g"
    assert c.to_dict()["network_policy"] == {"type": "disabled"}
    got = client.containers.retrieve(c.id)
    assert (got.id, got.name, got.status) == (c.id, "My Container", "running")
    assert got.last_active_at >= c.last_active_at


def test_expires_after_and_a_permitted_memory_limit_are_kept(client):
    c = client.containers.create(name=unique("tiered"), expires_after={"anchor": "last_active_at", "minutes": 5},
                                 extra_body={"memory_limit": "4g", "network_policy": {"type": "disabled"}})
    got = client.containers.retrieve(c.id).to_dict()
    assert got["expires_after"] == {"anchor": "last_active_at", "minutes": 5}
    assert got["memory_limit"] == "4g"
    assert got["network_policy"] == {"type": "disabled"}


def test_list_filters_by_name_and_pages_with_after(isolated_client):
    client = isolated_client
    name = unique("paged")
    made = [client.containers.create(name=name).id for _ in range(3)]
    other = client.containers.create(name=unique("other")).id
    page = client.containers.list(limit=2, extra_query={"name": name})
    assert len(page.data) == 2 and page.has_more
    assert [c.id for c in page.data] == made[::-1][:2]  # newest first
    every = named(client, name)
    assert [c.id for c in every] == made[::-1]
    # The SDK's own auto-paging follows `after` too.
    walked = [c.id for c in client.containers.list(limit=1, order="asc", extra_query={"name": name})]
    assert walked == made
    everything = [c.id for c in client.containers.list()]
    assert other in everything and set(made) <= set(everything)


def test_delete_removes_the_container(client):
    name = unique("doomed")
    c = client.containers.create(name=name)
    assert client.containers.delete(c.id) is None  # the SDK casts deletes to None
    with not_found():
        client.containers.retrieve(c.id)
    assert named(client, name) == []
    with not_found():
        client.containers.delete(c.id)


def test_a_multipart_upload_lands_in_mnt_data_and_downloads_byte_identical(client):
    c = client.containers.create(name=unique("upload"))
    data = b"city,temp\nParis,21\nOslo,9\n"
    f = client.containers.files.create(c.id, file=("weather.csv", data))
    assert f.id.startswith("cfile_")
    assert f.object == "container.file"
    assert f.container_id == c.id
    assert f.path == "/mnt/data/weather.csv"
    assert f.bytes == len(data)
    assert f.source == "user"
    got = client.containers.files.retrieve(f.id, container_id=c.id)
    assert got.path == f.path and got.bytes == len(data)
    content = client.containers.files.content.retrieve(f.id, container_id=c.id)
    assert content.read() == data
    # The same name again is numbered, as in a thread's sandbox.
    again = client.containers.files.create(c.id, file=("weather.csv", b"x"))
    assert again.path == "/mnt/data/weather (1).csv"


def test_a_file_id_is_copied_in_as_json(client):
    c = client.containers.create(name=unique("by-id"))
    data = bytes(range(256)) * 8
    source = upload(client, "blob.bin", data)
    f = client.containers.files.create(c.id, file_id=source.id)
    assert (f.path, f.bytes, f.source) == ("/mnt/data/blob.bin", len(data), "user")
    assert client.containers.files.content.retrieve(f.id, container_id=c.id).read() == data


def test_file_ids_at_create_are_copied_and_listed(client):
    a = upload(client, "a.txt", b"alpha\n")
    b = upload(client, "b.txt", b"bravo!\n")
    c = client.containers.create(name=unique("seeded"), file_ids=[a.id, b.id])
    files = list_all(client.containers.files.list, container_id=c.id)
    assert sorted((f.path, f.bytes, f.source) for f in files) == [
        ("/mnt/data/a.txt", 6, "user"), ("/mnt/data/b.txt", 7, "user")]


def test_files_list_pages_and_delete_removes_a_file(client):
    c = client.containers.create(name=unique("files"))
    made = [client.containers.files.create(c.id, file=(f"f{i}.txt", b"%d" % i)).id for i in range(3)]
    page = client.containers.files.list(c.id, limit=2, order="asc")
    assert [f.id for f in page.data] == made[:2] and page.has_more
    assert [f.id for f in list_all(client.containers.files.list, container_id=c.id, order="asc")] == made
    assert client.containers.files.delete(made[1], container_id=c.id) is None
    left = [f.id for f in list_all(client.containers.files.list, container_id=c.id, order="asc")]
    assert left == [made[0], made[2]]
    with not_found():
        client.containers.files.retrieve(made[1], container_id=c.id)
    with not_found():
        client.containers.files.content.retrieve(made[1], container_id=c.id)
    # Gone from /mnt/data too: the same name is free again.
    again = client.containers.files.create(c.id, file=("f1.txt", b"new"))
    assert again.path == "/mnt/data/f1.txt"


def run_in(client, script, container_id: str, code: str):
    """A response whose model runs `code` in the container."""
    script.push_tool_call("code_interpreter", {"code": code})
    script.push_text("done")
    r = client.responses.create(model=script.model, input="run it",
                                tools=[{"type": "code_interpreter", "container": container_id}])
    assert r.status == "completed", r.error


@pytest.mark.runs
def test_files_the_code_deletes_or_renames_leave_the_list(client, script):
    c = client.containers.create(name=unique("code-removes"))
    kept = client.containers.files.create(c.id, file=("kept.txt", b"keep"))
    doomed = client.containers.files.create(c.id, file=("doomed.txt", b"bye"))
    run_in(client, script, c.id, "open('/mnt/data/draft.txt', 'w').write('draft')")
    listed = {f.path: f for f in list_all(client.containers.files.list, container_id=c.id)}
    assert set(listed) == {"/mnt/data/kept.txt", "/mnt/data/doomed.txt", "/mnt/data/draft.txt"}
    draft = listed["/mnt/data/draft.txt"]
    run_in(client, script, c.id, "import os\nos.remove('/mnt/data/doomed.txt')\n"
                                 "os.rename('/mnt/data/draft.txt', '/mnt/data/final.txt')")
    listed = {f.path: f for f in list_all(client.containers.files.list, container_id=c.id)}
    assert set(listed) == {"/mnt/data/kept.txt", "/mnt/data/final.txt"}
    assert listed["/mnt/data/kept.txt"].id == kept.id
    assert listed["/mnt/data/final.txt"].source == "assistant"
    assert client.containers.files.content.retrieve(listed["/mnt/data/final.txt"].id,
                                                    container_id=c.id).read() == b"draft"
    for gone in (doomed.id, draft.id):
        with not_found():
            client.containers.files.retrieve(gone, container_id=c.id)
        with not_found():
            client.containers.files.content.retrieve(gone, container_id=c.id)


def test_memory_above_the_cap_is_refused_and_nothing_is_stored(client):
    name = unique("huge")
    with bad_request(param="memory_limit", message_contains="16g"):
        client.containers.create(name=name, extra_body={"memory_limit": "16g"})
    with bad_request(param="memory_limit"):
        client.containers.create(name=name, extra_body={"memory_limit": "3g"})
    assert named(client, name) == []


def test_an_allowlist_network_policy_is_refused_where_the_operator_gives_no_network(client):
    name = unique("net")
    with bad_request(param="network_policy.allowed_domains", message_contains="no network access"):
        client.containers.create(name=name, extra_body={
            "network_policy": {"type": "allowlist", "allowed_domains": ["example.com"]}})
    assert named(client, name) == []


def test_bad_create_input_leaves_nothing(client, http):
    name = unique("bad")
    with bad_request(param="file_ids"):
        client.containers.create(name=name, file_ids=["file-doesnotexist"])
    with bad_request(param="expires_after"):
        client.containers.create(name=name, expires_after={"anchor": "created_at", "minutes": 5})
    with bad_request(param="expires_after"):
        client.containers.create(name=name, expires_after={"anchor": "last_active_at", "minutes": 0})
    r = http.post("/containers", json={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "name"
    r = http.post("/containers", json={"name": name, "colour": "red"})
    assert r.status_code == 400
    assert named(client, name) == []


def test_a_json_add_without_file_id_is_refused(client, http, database_url):
    c = client.containers.create(name=unique("json"))
    r = http.post(f"/containers/{c.id}/files", json={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file_id"
    with not_found():
        client.containers.files.create(c.id, file_id="file-doesnotexist")
    assert file_rows(database_url, c.id) == 0


def test_unknown_and_other_projects_containers_are_not_found(client, other_client):
    c = client.containers.create(name=unique("mine"))
    f = client.containers.files.create(c.id, file=("secret.txt", b"s3cret"))
    for who, cid in [(client, "cntr_doesnotexist"), (other_client, c.id)]:
        with not_found():
            who.containers.retrieve(cid)
        with not_found():
            who.containers.delete(cid)
        with not_found():
            who.containers.files.list(cid)
        with not_found():
            who.containers.files.create(cid, file=("x.txt", b"x"))
        with not_found():
            who.containers.files.retrieve(f.id, container_id=cid)
        with not_found():
            who.containers.files.content.retrieve(f.id, container_id=cid)
    assert c.id not in [x.id for x in other_client.containers.list()]
    # Still there, untouched, for its own project.
    assert client.containers.retrieve(c.id).status == "running"
    assert client.containers.files.content.retrieve(f.id, container_id=c.id).read() == b"s3cret"


def test_an_expired_container_stays_listed_and_refuses_use(client, database_url):
    name = unique("stale")
    c = client.containers.create(name=name, expires_after={"anchor": "last_active_at", "minutes": 1})
    f = client.containers.files.create(c.id, file=("kept.txt", b"before"))
    # An hour without use, as the clock would have it.
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE containers SET last_active_at = last_active_at - 3600, "
                     "data = data || jsonb_build_object('last_active_at', last_active_at - 3600) WHERE id = %s",
                     (c.id,))
    assert [x.status for x in named(client, name)] == ["expired"]
    assert client.containers.retrieve(c.id).status == "expired"
    with bad_request(message_contains="expired"):
        client.containers.files.create(c.id, file=("new.txt", b"after"))
    with bad_request(message_contains="expired"):
        client.containers.files.content.retrieve(f.id, container_id=c.id)
    with bad_request(message_contains="expired"):
        client.containers.files.delete(f.id, container_id=c.id)
    # Its metadata stays readable; nothing changed.
    files = list_all(client.containers.files.list, container_id=c.id)
    assert [(x.id, x.bytes) for x in files] == [(f.id, 6)]
    with psycopg.connect(database_url) as conn:
        status, blobs = conn.execute(
            "SELECT status, (SELECT count(*) FROM container_files WHERE container_id = c.id AND blob_key IS NOT NULL) "
            "FROM containers c WHERE id = %s", (c.id,)).fetchone()
        checkpoints = conn.execute("SELECT count(*) FROM sandbox_checkpoints WHERE thread_id = %s",
                                   (c.id,)).fetchone()[0]
    assert status == "expired"
    assert blobs == 0 and checkpoints == 0  # its data is discarded
    # Still deletable.
    client.containers.delete(c.id)
    with not_found():
        client.containers.retrieve(c.id)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_another_projects_cursor_pages_nothing(client, other_client, order):
    c = client.containers.create(name=unique("cursor"))
    page = other_client.containers.list(after=c.id, order=order)
    assert page.data == []
