"""Files: upload, list, retrieve, download content, delete."""

from __future__ import annotations

import json
import os
import time

import pytest

from helpers import list_all, not_found, pdf_bytes, png_bytes, upload


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
