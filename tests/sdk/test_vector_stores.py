"""Vector stores: stores, their files and file batches, search, through the official SDK."""

from __future__ import annotations

import io
import time

import psycopg
import pytest
from openai import omit

from helpers import (bad_request, docx_bytes, list_all, not_found, pdf_bytes, png_bytes, text_pdf_bytes,
                     upload)

NOTES = (b"Meeting notes, March.\n\nThe quarterly budget review moved to Thursday.\n"
         b"The secret launch codename is zanzibarquokka and nobody may say it aloud.\n")
RECIPE = b"# Pancakes\n\nMix flour, eggs and milk. Fry in butter until golden.\n"


def text_file(client, name="notes.txt", data=NOTES):
    return upload(client, name, data)


# ---------------------------------------------------------------------------------------------------------------
# Stores


def test_create_with_only_a_name_is_an_empty_completed_store(client):
    vs = client.vector_stores.create(name="Support FAQ", metadata={"team": "support"})
    assert vs.id.startswith("vs_")
    assert vs.object == "vector_store"
    assert vs.name == "Support FAQ"
    assert vs.status == "completed"
    assert vs.usage_bytes == 0
    assert vs.file_counts.model_dump() == {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    assert vs.metadata == {"team": "support"}
    assert abs(vs.created_at - time.time()) < 60
    assert vs.last_active_at == vs.created_at
    assert vs.expires_after is None and vs.expires_at is None
    assert client.vector_stores.retrieve(vs.id).model_dump() == vs.model_dump()


def test_create_with_files_indexes_them_before_answering(client):
    a, b = text_file(client), text_file(client, "recipe.md", RECIPE)
    vs = client.vector_stores.create(name="docs", file_ids=[a.id, b.id])
    assert vs.status == "completed"
    assert vs.file_counts.completed == 2 and vs.file_counts.total == 2
    assert vs.usage_bytes == len(NOTES) + len(RECIPE)
    files = client.vector_stores.files.list(vs.id, order="asc").data
    assert [f.id for f in files] == [a.id, b.id]
    assert all(f.status == "completed" and f.vector_store_id == vs.id for f in files)


def test_expires_after_sets_expires_at_from_last_active_at(client):
    vs = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 7})
    assert vs.expires_after.anchor == "last_active_at" and vs.expires_after.days == 7
    assert vs.expires_at == vs.last_active_at + 7 * 86400
    cleared = client.vector_stores.update(vs.id, expires_after=None)
    assert cleared.expires_after is None and cleared.expires_at is None


def test_a_store_past_expires_at_reads_as_expired(client, database_url):
    vs = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE vector_stores SET data = jsonb_set(data, '{expires_at}', to_jsonb(1)) WHERE id = %s",
                     (vs.id,))
    assert client.vector_stores.retrieve(vs.id).status == "expired"
    # Using it does not bring it back.
    client.vector_stores.search(vs.id, query="anything")
    assert client.vector_stores.retrieve(vs.id).status == "expired"


def test_update_changes_only_what_it_is_given(client):
    vs = client.vector_stores.create(name="before", metadata={"k": "v"})
    renamed = client.vector_stores.update(vs.id, name="after")
    assert renamed.name == "after"
    assert renamed.metadata == {"k": "v"}
    retagged = client.vector_stores.update(vs.id, metadata={"k": "w"})
    assert retagged.name == "after" and retagged.metadata == {"k": "w"}
    assert client.vector_stores.retrieve(vs.id).model_dump() == retagged.model_dump()


def test_list_pages_newest_first_and_by_cursor(isolated_client):
    c = isolated_client
    made = [c.vector_stores.create(name=f"s{i}").id for i in range(5)]
    assert [v.id for v in c.vector_stores.list().data] == made[::-1]
    page = c.vector_stores.list(limit=2, order="asc")
    assert [v.id for v in page.data] == made[:2] and page.has_more
    assert [v.id for v in list_all(c.vector_stores.list, limit=2, order="asc")] == made
    assert [v.id for v in c.vector_stores.list(before=made[3], order="asc").data] == made[:3]
    # The SDK's auto-pagination walks every page.
    assert [v.id for v in c.vector_stores.list(limit=2)] == made[::-1]


def test_delete_removes_the_store_but_not_its_files(client):
    f = text_file(client)
    vs = client.vector_stores.create(file_ids=[f.id])
    deleted = client.vector_stores.delete(vs.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (vs.id, "vector_store.deleted", True)
    with not_found(message=f"No vector store found with id '{vs.id}'."):
        client.vector_stores.retrieve(vs.id)
    assert client.files.retrieve(f.id).id == f.id


# ---------------------------------------------------------------------------------------------------------------
# Files


def test_add_retrieve_update_and_remove_a_file(client):
    vs = client.vector_stores.create(name="files")
    f = text_file(client)
    vsf = client.vector_stores.files.create(vs.id, file_id=f.id, attributes={"year": 2024, "team": "red"})
    assert vsf.id == f.id
    assert vsf.object == "vector_store.file"
    assert vsf.vector_store_id == vs.id
    assert vsf.status == "completed" and vsf.last_error is None
    assert vsf.usage_bytes == len(NOTES)
    assert vsf.attributes == {"year": 2024, "team": "red"}
    assert vsf.chunking_strategy.type == "static"
    assert vsf.chunking_strategy.static.max_chunk_size_tokens == 800
    assert vsf.chunking_strategy.static.chunk_overlap_tokens == 400
    assert client.vector_stores.files.retrieve(f.id, vector_store_id=vs.id).model_dump() == vsf.model_dump()

    store = client.vector_stores.retrieve(vs.id)
    assert store.file_counts.completed == 1 and store.file_counts.total == 1
    assert store.usage_bytes == len(NOTES)

    updated = client.vector_stores.files.update(f.id, vector_store_id=vs.id, attributes={"draft": True})
    assert updated.attributes == {"draft": True}
    assert client.vector_stores.files.retrieve(f.id, vector_store_id=vs.id).attributes == {"draft": True}

    removed = client.vector_stores.files.delete(f.id, vector_store_id=vs.id)
    assert (removed.id, removed.object, removed.deleted) == (f.id, "vector_store.file.deleted", True)
    with not_found(message=f"No file found with id '{f.id}' in vector store '{vs.id}'."):
        client.vector_stores.files.retrieve(f.id, vector_store_id=vs.id)
    store = client.vector_stores.retrieve(vs.id)
    assert store.file_counts.total == 0 and store.usage_bytes == 0
    # The file itself survives.
    assert client.files.content(f.id).content == NOTES


def test_a_static_chunking_strategy_is_kept_and_used(client):
    vs = client.vector_stores.create()
    words = b" ".join(b"word%d" % i for i in range(600))
    f = upload(client, "long.txt", words)
    strategy = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}
    vsf = client.vector_stores.files.create(vs.id, file_id=f.id, chunking_strategy=strategy)
    assert vsf.chunking_strategy.static.max_chunk_size_tokens == 100
    assert vsf.chunking_strategy.static.chunk_overlap_tokens == 20
    pages = list(client.vector_stores.files.content(f.id, vector_store_id=vs.id))
    assert len(pages) > 1
    assert all(p.type == "text" for p in pages)
    assert pages[0].text.startswith("word0 ") and "word599" in pages[-1].text


def test_file_content_is_the_indexed_text(client):
    f = text_file(client, "recipe.md", RECIPE)
    vs = client.vector_stores.create(file_ids=[f.id])
    raw = client.vector_stores.files.with_raw_response.content(f.id, vector_store_id=vs.id).http_response.json()
    assert raw["object"] == "vector_store.file_content.page"
    assert raw["has_more"] is False and raw["next_page"] is None
    assert "".join(p["text"] for p in raw["data"]).strip() == RECIPE.decode().strip()


def test_upload_and_poll_returns_a_completed_file(client):
    vs = client.vector_stores.create()
    vsf = client.vector_stores.files.upload_and_poll(vector_store_id=vs.id, file=("faq.md", io.BytesIO(RECIPE)))
    assert vsf.status == "completed"
    assert client.files.retrieve(vsf.id).filename == "faq.md"


@pytest.mark.parametrize("name,data", [("pixel.png", png_bytes()), ("blob.bin", bytes(range(256)))])
def test_a_file_that_is_not_text_fails_as_unsupported(client, name, data):
    vs = client.vector_stores.create()
    f = upload(client, name, data)
    vsf = client.vector_stores.files.create_and_poll(f.id, vector_store_id=vs.id)
    assert vsf.status == "failed"
    assert vsf.last_error.code == "unsupported_file"
    assert vsf.last_error.message
    store = client.vector_stores.retrieve(vs.id)
    assert (store.file_counts.failed, store.file_counts.completed, store.file_counts.total) == (1, 0, 1)
    assert store.status == "completed"


@pytest.mark.parametrize("name,data", [
    ("plan.pdf", text_pdf_bytes("The Zephyr kickoff is in Porto.", "Second line of the plan.")),
    ("plan.docx", docx_bytes("The Zephyr kickoff is in Porto.", "Second paragraph of the plan.")),
])
def test_pdf_and_word_documents_are_read_in_the_sandbox_and_searchable(client, name, data):
    vs = client.vector_stores.create()
    vsf = client.vector_stores.files.upload_and_poll(vector_store_id=vs.id, file=(name, io.BytesIO(data)))
    assert vsf.status == "completed", vsf.last_error
    assert vsf.usage_bytes > 0
    text = "".join(part.text for part in client.vector_stores.files.content(vsf.id, vector_store_id=vs.id))
    assert "The Zephyr kickoff is in Porto." in text
    [hit] = client.vector_stores.search(vs.id, query="kickoff Porto").data
    assert hit.file_id == vsf.id and hit.filename == name


def test_a_document_without_text_fails_as_invalid(client):
    vs = client.vector_stores.create()
    vsf = client.vector_stores.files.upload_and_poll(vector_store_id=vs.id, file=("empty.pdf", io.BytesIO(pdf_bytes())))
    assert vsf.status == "failed"
    assert vsf.last_error.code == "invalid_file"


def test_the_files_list_filters_by_status_and_paginates(client):
    vs = client.vector_stores.create()
    good = [text_file(client, f"n{i}.txt", NOTES).id for i in range(3)]
    bad = upload(client, "x.pdf", pdf_bytes()).id
    for fid in good + [bad]:
        client.vector_stores.files.create(vs.id, file_id=fid)
    assert [f.id for f in client.vector_stores.files.list(vs.id, filter="failed").data] == [bad]
    assert [f.id for f in client.vector_stores.files.list(vs.id, filter="completed", order="asc").data] == good
    assert client.vector_stores.files.list(vs.id, filter="cancelled").data == []
    walked = list_all(lambda **kw: client.vector_stores.files.list(vs.id, **kw), limit=1, order="asc")
    assert [f.id for f in walked] == good + [bad]


def test_one_file_in_two_stores_pages_within_each(client):
    f1, f2 = text_file(client), text_file(client, "r.md", RECIPE)
    vs1 = client.vector_stores.create(file_ids=[f1.id, f2.id])
    vs2 = client.vector_stores.create(file_ids=[f1.id, f2.id])
    for vs in (vs1, vs2):
        page = client.vector_stores.files.list(vs.id, limit=1, order="asc")
        assert [f.id for f in page.data] == [f1.id] and page.has_more
        nxt = client.vector_stores.files.list(vs.id, after=f1.id, order="asc")
        assert [f.id for f in nxt.data] == [f2.id]
        assert all(f.vector_store_id == vs.id for f in nxt.data)
    client.vector_stores.files.delete(f1.id, vector_store_id=vs1.id)
    assert client.vector_stores.files.retrieve(f1.id, vector_store_id=vs2.id).status == "completed"


# ---------------------------------------------------------------------------------------------------------------
# File batches


def test_create_and_poll_a_batch_and_list_its_files(client):
    vs = client.vector_stores.create()
    ids = [text_file(client, f"b{i}.txt").id for i in range(3)]
    outsider = text_file(client, "outside.txt")
    client.vector_stores.files.create(vs.id, file_id=outsider.id)
    batch = client.vector_stores.file_batches.create_and_poll(vs.id, file_ids=ids)
    assert batch.id.startswith("vsfb_")
    assert batch.object == "vector_store.files_batch"
    assert batch.vector_store_id == vs.id
    assert batch.status == "completed"
    assert batch.file_counts.model_dump() == {"in_progress": 0, "completed": 3, "failed": 0, "cancelled": 0, "total": 3}
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id).model_dump() == batch.model_dump()
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, order="asc")
    assert [f.id for f in listed.data] == ids
    assert client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="failed").data == []
    assert client.vector_stores.retrieve(vs.id).file_counts.total == 4


def test_a_batch_of_files_with_their_own_attributes(client):
    vs = client.vector_stores.create()
    a, b = text_file(client), text_file(client, "r.md", RECIPE)
    # `files` is newer than this SDK's signature, so it goes in extra_body.
    batch = client.vector_stores.file_batches.create(vs.id, file_ids=omit, extra_body={"files": [
        {"file_id": a.id, "attributes": {"kind": "notes"}},
        {"file_id": b.id, "attributes": {"kind": "recipe"},
         "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0}}},
    ]})
    assert batch.file_counts.completed == 2
    got = client.vector_stores.files.retrieve(b.id, vector_store_id=vs.id)
    assert got.attributes == {"kind": "recipe"}
    assert got.chunking_strategy.static.max_chunk_size_tokens == 200


def test_upload_and_poll_a_batch_counts_failures(client):
    vs = client.vector_stores.create()
    batch = client.vector_stores.file_batches.upload_and_poll(
        vs.id, files=[("a.txt", io.BytesIO(NOTES)), ("b.png", io.BytesIO(png_bytes()))])
    assert batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.failed, batch.file_counts.total) == (1, 1, 2)
    failed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id, filter="failed").data
    assert len(failed) == 1 and failed[0].last_error.code == "unsupported_file"


def test_a_finished_batch_cannot_be_cancelled(client):
    vs = client.vector_stores.create()
    batch = client.vector_stores.file_batches.create(vs.id, file_ids=[text_file(client).id])
    with bad_request(message="Cannot cancel vector store file batch with status 'completed'."):
        client.vector_stores.file_batches.cancel(batch.id, vector_store_id=vs.id)
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id).status == "completed"


def test_batch_requests_need_exactly_one_list_of_files(client, http):
    vs = client.vector_stores.create()
    f = text_file(client)
    with bad_request(param="file_ids") as info:
        client.vector_stores.file_batches.create(vs.id, file_ids=[])
    assert info.value.body["code"] == "empty_array"
    r = http.post(f"/vector_stores/{vs.id}/file_batches", json={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file_ids"
    r = http.post(f"/vector_stores/{vs.id}/file_batches",
                  json={"file_ids": [f.id], "files": [{"file_id": f.id}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "files"
    r = http.post(f"/vector_stores/{vs.id}/file_batches", json={"files": [{"file_id": f.id}, {"file_id": "file-nope"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "files[1].file_id"
    assert client.vector_stores.files.list(vs.id).data == []


# ---------------------------------------------------------------------------------------------------------------
# Search


def test_search_finds_the_chunk_with_a_distinctive_word(client):
    notes, recipe = text_file(client), text_file(client, "recipe.md", RECIPE)
    vs = client.vector_stores.create(file_ids=[notes.id, recipe.id])
    before = client.vector_stores.retrieve(vs.id).last_active_at
    results = list(client.vector_stores.search(vs.id, query="what is the zanzibarquokka codename?"))
    assert results, "no result"
    top = results[0]
    assert top.file_id == notes.id
    assert top.filename == "notes.txt"
    assert 0 < top.score <= 1
    assert top.content[0].type == "text" and "zanzibarquokka" in top.content[0].text
    # The vector leg may bring the recipe too (it shares 'what is the'), always ranked and scored lower.
    assert all(r.score < top.score for r in results if r.file_id == recipe.id)
    keyword_only = list(client.vector_stores.search(vs.id, query="what is the zanzibarquokka codename?",
                                                    ranking_options={"hybrid_search": {"embedding_weight": 0,
                                                                                       "text_weight": 1}}))
    assert [r.file_id for r in keyword_only] == [notes.id]
    assert client.vector_stores.retrieve(vs.id).last_active_at >= before


def test_search_page_shape_and_query_lists(client, http):
    f = text_file(client, "recipe.md", RECIPE)
    vs = client.vector_stores.create(file_ids=[f.id])
    body = http.post(f"/vector_stores/{vs.id}/search", json={"query": ["pancakes", "butter"]}).json()
    assert body["object"] == "vector_store.search_results.page"
    assert body["search_query"] == ["pancakes", "butter"]
    assert body["has_more"] is False and body["next_page"] is None
    assert len(body["data"]) == 1  # one chunk, found by both queries, listed once
    assert http.post(f"/vector_stores/{vs.id}/search", json={"query": "spaceship"}).json()["data"] == []


def test_search_honours_max_results_threshold_and_filters(client):
    vs = client.vector_stores.create()
    ids = []
    for year in (2023, 2024, 2025):
        f = text_file(client, f"y{year}.txt", b"annual report about walruses in %d\n" % year)
        client.vector_stores.files.create(vs.id, file_id=f.id, attributes={"year": year, "kind": "report"})
        ids.append(f.id)
    assert len(list(client.vector_stores.search(vs.id, query="walruses"))) == 3
    assert len(list(client.vector_stores.search(vs.id, query="walruses", max_num_results=2))) == 2
    assert list(client.vector_stores.search(vs.id, query="walruses", ranking_options={"score_threshold": 1.0})) == []
    recent = client.vector_stores.search(vs.id, query="walruses", filters={"type": "gte", "key": "year", "value": 2024})
    assert sorted(r.file_id for r in recent) == sorted(ids[1:])
    assert all(r.attributes["kind"] == "report" for r in recent)
    either = client.vector_stores.search(vs.id, query="walruses", filters={"type": "or", "filters": [
        {"type": "eq", "key": "year", "value": 2023}, {"type": "eq", "key": "year", "value": 2025}]})
    assert sorted(r.file_id for r in either) == sorted([ids[0], ids[2]])


def test_bad_search_requests_name_their_parameter(client):
    vs = client.vector_stores.create()
    with bad_request(param="max_num_results"):
        client.vector_stores.search(vs.id, query="x", max_num_results=51)
    with bad_request(param="ranking_options.score_threshold"):
        client.vector_stores.search(vs.id, query="x", ranking_options={"score_threshold": 1.5})
    with bad_request(param="query"):
        client.vector_stores.search(vs.id, query="")
    with bad_request(param="filters.value"):
        client.vector_stores.search(vs.id, query="x", filters={"type": "in", "key": "k", "value": "a"})
    with bad_request(param="filters.type"):
        client.vector_stores.search(vs.id, query="x", filters={"type": "like", "key": "k", "value": "a"})


# ---------------------------------------------------------------------------------------------------------------
# Errors and isolation


def test_unknown_ids_are_404s_naming_them(client):
    with not_found(message="No vector store found with id 'vs_nope'."):
        client.vector_stores.retrieve("vs_nope")
    with not_found(message="No vector store found with id 'vs_nope'."):
        client.vector_stores.files.list("vs_nope")
    with not_found(message="No vector store found with id 'vs_nope'."):
        client.vector_stores.search("vs_nope", query="x")
    with not_found():
        client.vector_stores.delete("vs_nope")
    vs = client.vector_stores.create()
    with not_found(message=f"No file found with id 'file-nope' in vector store '{vs.id}'."):
        client.vector_stores.files.retrieve("file-nope", vector_store_id=vs.id)
    with not_found():
        client.vector_stores.file_batches.retrieve("vsfb_nope", vector_store_id=vs.id)


def test_adding_an_unknown_file_is_refused_and_changes_nothing(client):
    vs = client.vector_stores.create()
    with bad_request(param="file_id", message="Invalid 'file_id': no file found with id 'file-nope'."):
        client.vector_stores.files.create(vs.id, file_id="file-nope")
    with bad_request(param="file_ids"):
        client.vector_stores.create(name="never", file_ids=["file-nope"])
    assert client.vector_stores.files.list(vs.id).data == []
    assert client.vector_stores.retrieve(vs.id).file_counts.total == 0


@pytest.mark.parametrize("strategy,param,code", [
    ({"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
     "chunking_strategy.static.max_chunk_size_tokens", "integer_below_min_value"),
    ({"type": "static", "static": {"max_chunk_size_tokens": 5000, "chunk_overlap_tokens": 0}},
     "chunking_strategy.static.max_chunk_size_tokens", "integer_above_max_value"),
    ({"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401}},
     "chunking_strategy.static.chunk_overlap_tokens", "invalid_value"),
    ({"type": "static"}, "chunking_strategy.static", "missing_required_parameter"),
    ({"type": "fancy"}, "chunking_strategy.type", "invalid_value"),
])
def test_a_bad_chunking_strategy_is_refused_and_changes_nothing(isolated_client, strategy, param, code):
    c = isolated_client
    f = text_file(c)
    with bad_request(param=param) as info:
        c.vector_stores.create(file_ids=[f.id], chunking_strategy=strategy)
    assert info.value.body["code"] == code
    assert c.vector_stores.list().data == []
    vs = c.vector_stores.create()
    with bad_request(param=param):
        c.vector_stores.files.create(vs.id, file_id=f.id, chunking_strategy=strategy)
    assert c.vector_stores.files.list(vs.id).data == []


def test_other_bad_fields_name_their_parameter(client):
    with bad_request(param="expires_after.days") as info:
        client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 366})
    assert info.value.body["code"] == "integer_above_max_value"
    with bad_request(param="expires_after.anchor"):
        client.vector_stores.create(expires_after={"anchor": "created_at", "days": 1})
    with bad_request(param="metadata"):
        client.vector_stores.create(metadata={f"k{i}": "v" for i in range(17)})
    vs = client.vector_stores.create()
    f = text_file(client)
    with bad_request(param="attributes.nested"):
        client.vector_stores.files.create(vs.id, file_id=f.id, attributes={"nested": {"a": 1}})
    with bad_request(param="filter"):
        client.vector_stores.files.list(vs.id, filter="done")
    vs_after = client.vector_stores.update(vs.id, name="kept")
    with bad_request(param="expires_after.days"):
        client.vector_stores.update(vs.id, name="lost", expires_after={"anchor": "last_active_at", "days": 0})
    assert client.vector_stores.retrieve(vs.id).name == vs_after.name == "kept"


def test_another_projects_store_is_invisible(client, other_client):
    f = text_file(client)
    vs = client.vector_stores.create(name="mine", file_ids=[f.id])
    theirs = text_file(other_client)
    for call in (lambda: other_client.vector_stores.retrieve(vs.id),
                 lambda: other_client.vector_stores.update(vs.id, name="stolen"),
                 lambda: other_client.vector_stores.delete(vs.id),
                 lambda: other_client.vector_stores.search(vs.id, query="zanzibarquokka"),
                 lambda: other_client.vector_stores.files.list(vs.id),
                 lambda: other_client.vector_stores.files.retrieve(f.id, vector_store_id=vs.id),
                 lambda: other_client.vector_stores.files.delete(f.id, vector_store_id=vs.id),
                 lambda: other_client.vector_stores.files.content(f.id, vector_store_id=vs.id),
                 lambda: other_client.vector_stores.files.create(vs.id, file_id=theirs.id),
                 lambda: other_client.vector_stores.file_batches.create(vs.id, file_ids=[theirs.id])):
        with not_found():
            call()
    assert vs.id not in [v.id for v in other_client.vector_stores.list()]
    # Nor can this project add the other project's file.
    with bad_request(param="file_id"):
        client.vector_stores.files.create(vs.id, file_id=theirs.id)
    got = client.vector_stores.retrieve(vs.id)
    assert got.name == "mine" and got.file_counts.total == 1
