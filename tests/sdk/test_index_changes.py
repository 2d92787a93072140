"""A replica brings its copy of a store's keyword index and vectors up to date from the files changed since
(`vector_store_changes`, written by the chunk triggers), and reads the store whole when that log no longer reaches
back to its copy's version."""

from __future__ import annotations

import uuid

import psycopg

from helpers import upload

KEYWORD_ONLY = {"hybrid_search": {"embedding_weight": 0, "text_weight": 1}}
VECTOR_ONLY = {"hybrid_search": {"embedding_weight": 1, "text_weight": 0}}


def word(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}"


def found(client, vs, query, ranking) -> set[str]:
    return {r.file_id for r in client.vector_stores.search(vs.id, query=query, ranking_options=ranking)}


def test_the_change_log_names_each_file_added_or_removed_and_is_pruned_after_an_hour(client, database_url):
    topic = word("tern")
    first, second = (upload(client, f"{n}.txt", f"the {topic} dives, {n}".encode()) for n in ("one", "two"))
    vs = client.vector_stores.create(file_ids=[first.id])
    client.vector_stores.files.create(vs.id, file_id=second.id)
    client.vector_stores.files.delete(first.id, vector_store_id=vs.id)
    with psycopg.connect(database_url, autocommit=True) as db:
        rows = db.execute("SELECT file_id, version FROM vector_store_changes WHERE vector_store_id = %s"
                          " ORDER BY version", (vs.id,)).fetchall()
        assert [f for f, _ in rows] == [first.id, second.id, first.id]
        (version,) = db.execute("SELECT version FROM vector_store_stats WHERE vector_store_id = %s",
                                (vs.id,)).fetchone()
        assert rows[-1][1] == version
        db.execute("UPDATE vector_store_changes SET at = now() - interval '2 hours' WHERE vector_store_id = %s",
                   (vs.id,))
        third = upload(client, "three.txt", f"a {topic} again".encode())
        client.vector_stores.files.create(vs.id, file_id=third.id)
        rows = db.execute("SELECT file_id FROM vector_store_changes WHERE vector_store_id = %s",
                          (vs.id,)).fetchall()
        assert rows == [(third.id,)]
        (since,) = db.execute("SELECT changes_since FROM vector_store_stats WHERE vector_store_id = %s",
                              (vs.id,)).fetchone()
        assert since == version


def test_a_copy_older_than_the_change_log_is_read_whole(client, database_url):
    topic = word("skua")
    first = upload(client, "first.txt", f"a {topic} over the cliffs".encode())
    vs = client.vector_stores.create(file_ids=[first.id])
    assert found(client, vs, topic, KEYWORD_ONLY) == {first.id} == found(client, vs, topic, VECTOR_ONLY)
    second = upload(client, "second.txt", f"the {topic} steals a fish".encode())
    client.vector_stores.files.create(vs.id, file_id=second.id)
    # The log no longer reaches back to the copies this server holds: only a whole read finds the new file.
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("DELETE FROM vector_store_changes WHERE vector_store_id = %s", (vs.id,))
        db.execute("UPDATE vector_store_stats SET changes_since = version WHERE vector_store_id = %s", (vs.id,))
    assert found(client, vs, topic, KEYWORD_ONLY) == {first.id, second.id}
    assert found(client, vs, topic, VECTOR_ONLY) == {first.id, second.id}
