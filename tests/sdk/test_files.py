"""Files: upload, list, retrieve, download content, delete."""

from __future__ import annotations

import json
import os
import time

import psycopg
import pytest

from helpers import bad_request, list_all, not_found, pdf_bytes, png_bytes, upload

PURPOSES = "['fine-tune', 'assistants', 'batch', 'user_data', 'vision', 'evals']"
JSONL = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'


def test_upload_returns_a_file_object(client):
    data = b"city,temp\nParis,21\nOslo,9\n"
    f = upload(client, "weather.csv", data)
    assert f.id.startswith("file-")
    assert f.object == "file"
    assert f.bytes == len(data)
    assert f.filename == "weather.csv"
    assert f.purpose == "assistants"
    assert abs(f.created_at - time.time()) < 60


def test_upload_from_a_path_on_disk(client, tmp_path):
    p = tmp_path / "notes.txt"
    p.write_bytes(b"hello from disk\n")
    with open(p, "rb") as fh:
        f = client.files.create(file=fh, purpose="assistants")
    assert f.filename == "notes.txt"
    assert f.bytes == 16


@pytest.mark.parametrize(
    "name,data,content_type",
    [
        ("table.csv", b"a,b\n1,2\n", "text/csv"),
        ("pixel.png", png_bytes(), "image/png"),
        ("doc.json", json.dumps({"k": [1, 2, 3]}).encode(), "application/json"),
        ("readme.txt", "plain text, with ünïcode\n".encode(), "text/plain"),
        ("paper.pdf", pdf_bytes(), "application/pdf"),
        ("blob.bin", os.urandom(4096) + b"\x00\xff" * 100, "application/octet-stream"),
    ],
)
def test_content_download_is_byte_identical_with_the_right_content_type(client, name, data, content_type):
    f = upload(client, name, data)
    content = client.files.content(f.id)
    assert content.content == data
    assert content.response.headers["content-type"].split(";")[0].strip() == content_type


def test_a_larger_upload_round_trips(client):
    data = os.urandom(3 * 1024 * 1024)
    f = upload(client, "big.bin", data)
    assert f.bytes == len(data)
    assert client.files.content(f.id).content == data


def test_retrieve_returns_what_upload_returned(client):
    f = upload(client, "r.txt", b"r")
    assert client.files.retrieve(f.id).model_dump() == f.model_dump()


def test_list_filters_by_purpose_and_orders_newest_first(isolated_client):
    c = isolated_client
    a1 = upload(c, "a1.txt", b"1")
    v = upload(c, "v.png", png_bytes(), purpose="vision")
    a2 = upload(c, "a2.txt", b"2")
    assert [f.id for f in c.files.list().data] == [a2.id, v.id, a1.id]
    assert [f.id for f in c.files.list(purpose="assistants").data] == [a2.id, a1.id]
    assert [f.id for f in c.files.list(purpose="vision").data] == [v.id]
    assert [f.id for f in c.files.list(order="asc").data] == [a1.id, v.id, a2.id]


def test_list_paginates_with_limit_and_after(isolated_client):
    c = isolated_client
    ids = [upload(c, f"{i}.txt", str(i).encode()).id for i in range(5)]
    page = c.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2]
    assert page.has_more is True
    assert [f.id for f in list_all(c.files.list, limit=2)] == ids[::-1]
    assert [f.id for f in list_all(c.files.list, limit=2, order="asc")] == ids


def test_files_list_accepts_limits_above_100(isolated_client):
    upload(isolated_client, "x.txt", b"x")
    assert len(isolated_client.files.list(limit=10000).data) == 1


def test_delete_removes_the_file_and_its_content(client):
    f = upload(client, "del.txt", b"delete me")
    d = client.files.delete(f.id)
    assert d.id == f.id
    assert d.object == "file"
    assert d.deleted is True
    with not_found(message_contains=f.id):
        client.files.retrieve(f.id)
    with not_found(message_contains=f.id):
        client.files.content(f.id)
    with not_found():
        client.files.delete(f.id)
    assert f.id not in [x.id for x in client.files.list().data]


def test_a_unicode_filename_is_kept(client):
    f = upload(client, "résumé € 2026.txt", b"cv")
    assert f.filename == "résumé € 2026.txt"
    assert client.files.retrieve(f.id).filename == "résumé € 2026.txt"


def test_a_filename_with_path_components_never_becomes_a_path(client, data_dir):
    f = upload(client, "../../../escaped-upload.txt", b"stay inside")
    assert client.files.content(f.id).content == b"stay inside"
    # Nothing named after the upload appeared next to or above the data directory.
    for d in (data_dir.parent, data_dir.parent.parent, data_dir.parent.parent.parent):
        assert not (d / "escaped-upload.txt").exists()


def test_an_unknown_purpose_is_rejected_with_openais_message(client):
    with bad_request(param="purpose", message=f"'bogus' is not one of {PURPOSES} - 'purpose'") as info:
        upload(client, "x.txt", b"x", purpose="bogus")
    assert info.value.body["param"] == "purpose"
    assert info.value.body["code"] is None


def test_an_upload_without_a_file_part_names_file(http):
    r = http.post("/files", files={"purpose": (None, "assistants")})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "'file' is a required property", "type": "invalid_request_error",
                                 "param": "file", "code": None}


def test_an_upload_without_a_purpose_names_purpose(http):
    r = http.post("/files", files={"file": ("x.txt", b"x")})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "'purpose' is a required property", "type": "invalid_request_error",
                                 "param": "purpose", "code": None}


@pytest.mark.parametrize("purpose,api", [("batch", "Batch API"), ("fine-tune", "Fine-Tuning API")])
def test_batch_and_fine_tune_uploads_must_be_jsonl(client, purpose, api):
    with bad_request(message=f"Invalid file format for {api}. Must be .jsonl") as info:
        upload(client, "input.csv", b"a,b\n", purpose=purpose)
    assert info.value.body["param"] is None
    assert info.value.body["code"] is None
    assert upload(client, "input.jsonl", JSONL, purpose=purpose).purpose == purpose


def _blobs(data_dir):
    return {p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file()}


def test_a_rejected_upload_changes_nothing(isolated_client, data_dir):
    c = isolated_client
    kept = upload(c, "kept.txt", b"kept")
    blobs = _blobs(data_dir)
    rejected = [
        dict(purpose="bogus"),
        dict(purpose="batch"),  # not .jsonl
        dict(purpose="fine-tune"),
        dict(purpose="assistants", expires_after={"anchor": "created_at", "seconds": 10}),
        dict(purpose="assistants", expires_after={"anchor": "last_active_at", "seconds": 3600}),
    ]
    for kw in rejected:
        with bad_request():
            c.files.create(file=("data.csv", os.urandom(256 * 1024)), **kw)
    assert [f.id for f in c.files.list().data] == [kept.id]
    assert _blobs(data_dir) == blobs


def test_expires_after_sets_expires_at(client):
    f = client.files.create(file=("e.txt", b"e"), purpose="assistants",
                            expires_after={"anchor": "created_at", "seconds": 3600})
    assert f.expires_at == f.created_at + 3600
    assert client.files.retrieve(f.id).expires_at == f.created_at + 3600
    assert client.files.content(f.id).content == b"e"


def test_batch_files_expire_after_thirty_days_by_default(client):
    f = upload(client, "batch.jsonl", JSONL, purpose="batch")
    assert f.expires_at == f.created_at + 2592000
    g = client.files.create(file=("b2.jsonl", JSONL), purpose="batch",
                            expires_after={"anchor": "created_at", "seconds": 7200})
    assert g.expires_at == g.created_at + 7200


def test_a_file_without_expiry_carries_a_null_expires_at(client, http):
    f = upload(client, "forever.txt", b"f")
    assert f.expires_at is None
    body = http.get(f"/files/{f.id}").json()
    assert "expires_at" in body and body["expires_at"] is None


@pytest.mark.parametrize("expires_after,param,code,message", [
    ({"anchor": "created_at", "seconds": 10}, "expires_after.seconds", "integer_below_min_value",
     "Invalid 'expires_after.seconds': integer below minimum value. Expected a value >= 3600, but got 10 instead."),
    ({"anchor": "created_at", "seconds": 2592001}, "expires_after.seconds", "integer_above_max_value",
     "Invalid 'expires_after.seconds': integer above maximum value. "
     "Expected a value <= 2592000, but got 2592001 instead."),
    ({"anchor": "x", "seconds": 3600}, "expires_after.anchor", "invalid_value",
     "Invalid value: 'x'. Supported values are: 'created_at'."),
])
def test_an_out_of_range_expires_after_is_rejected(client, expires_after, param, code, message):
    with bad_request(param=param, message=message) as info:
        client.files.create(file=("x.txt", b"x"), purpose="assistants", expires_after=expires_after)
    assert info.value.body["param"] == param
    assert info.value.body["code"] == code


def test_an_expired_file_is_gone(isolated_client, database_url):
    c = isolated_client
    live = upload(c, "live.txt", b"live")
    f = c.files.create(file=("old.txt", b"old"), purpose="assistants",
                       expires_after={"anchor": "created_at", "seconds": 3600})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE files SET data = jsonb_set(data, '{expires_at}', to_jsonb(1)) WHERE id = %s", (f.id,))
    message = f"No such File object: {f.id}"
    with not_found(message=message):
        c.files.retrieve(f.id)
    with not_found(message=message):
        c.files.content(f.id)
    with not_found(message=message):
        c.files.delete(f.id)
    assert [x.id for x in c.files.list().data] == [live.id]
    assert [x.id for x in c.files.list(purpose="assistants").data] == [live.id]
    with bad_request(param="tool_resources", message_contains=f.id):
        c.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": [f.id]}})
