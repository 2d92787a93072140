"""Hybrid file_search: BM25 and embeddings (from the scripted upstream's `/v1/embeddings`), fused by the
`hybrid_search` weights, with attribute filters applied before ranking.

The scripted upstream embeds each word to a hashed dimension; a test steers meanings per word with words of its
own (suffixed with a fresh id), so tests sharing the session server do not disturb each other.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import openai
import psycopg
import pytest

from helpers import upload
from test_lifecycle import Server, lifecycle_db  # noqa: F401  (the fixture is used by name)

KEYWORD_ONLY = {"hybrid_search": {"embedding_weight": 0, "text_weight": 1}}
VECTOR_ONLY = {"hybrid_search": {"embedding_weight": 1, "text_weight": 0}}


def word(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}"


def store_with(client, *texts: str, **kw):
    files = [upload(client, f"doc{i}.txt", t.encode()) for i, t in enumerate(texts)]
    vs = client.vector_stores.create(file_ids=[f.id for f in files], **kw)
    return vs, files


def search(client, vs, query, **kw):
    return list(client.vector_stores.search(vs.id, query=query, **kw))


def test_the_vector_leg_finds_a_passage_sharing_no_word_with_the_query(client, upstream):
    car, automobile = word("car"), word("automobile")
    upstream.same_meaning(car, automobile)
    vs, (manual, garden) = store_with(client, f"{automobile} repair manual, chapter two: brakes",
                                      "garden hoses and watering cans for the summer")
    assert search(client, vs, car, ranking_options=KEYWORD_ONLY) == []
    results = search(client, vs, car)
    assert results and results[0].file_id == manual.id
    assert 0 < results[0].score <= 1
    assert all(r.file_id != garden.id for r in results)


def test_the_keyword_leg_finds_an_exact_code_the_vectors_miss(client, upstream):
    code = word("xk")
    upstream.no_meaning(code)
    vs, (part, other) = store_with(client, f"Part {code} fits the pump housing of model seven.",
                                   "Part numbers are printed on the pump housing label.")
    assert all(r.file_id != part.id for r in search(client, vs, code, ranking_options=VECTOR_ONLY))
    results = search(client, vs, code)
    assert [r.file_id for r in results][:1] == [part.id]
    assert f"{code}" in results[0].content[0].text


def test_the_weights_change_the_order(client, upstream):
    alpha, beta, gamma, delta = word("alpha"), word("beta"), word("gamma"), word("delta")
    upstream.same_meaning(alpha, gamma)
    upstream.same_meaning(beta, delta)
    vs, (literal, meaning) = store_with(
        client, f"{alpha} appears here among plenty of unrelated filler words about pottery kilns",
        f"{gamma} {delta}")
    query = f"{alpha} {beta}"
    by_text = search(client, vs, query, ranking_options={"hybrid_search": {"embedding_weight": 0.1,
                                                                           "text_weight": 0.9}})
    by_meaning = search(client, vs, query, ranking_options={"hybrid_search": {"embedding_weight": 0.9,
                                                                              "text_weight": 0.1}})
    assert by_text[0].file_id == literal.id, by_text
    assert by_meaning[0].file_id == meaning.id, by_meaning
    for results in (by_text, by_meaning):
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_a_filter_keeping_one_percent_of_the_files_still_fills_the_page(client):
    topic = word("walrus")
    files = [upload(client, f"loud{i}.txt", f"{topic} {topic} {topic} census {i}".encode()) for i in range(99)]
    quiet = upload(client, "quiet.txt", " ".join(f"Section {i}: one {topic} seen on the ice floe." for i in range(120))
                   .encode())
    vs = client.vector_stores.create()
    batch = client.vector_stores.file_batches.create(vs.id, file_ids=[f.id for f in files],
                                                     attributes={"kind": "loud"})
    assert batch.file_counts.completed == 99
    small = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    assert client.vector_stores.files.create(vs.id, file_id=quiet.id, attributes={"kind": "quiet"},
                                             chunking_strategy=small).status == "completed"
    unfiltered = search(client, vs, topic, max_num_results=10)
    assert len(unfiltered) == 10 and all(r.file_id != quiet.id for r in unfiltered)
    kept = search(client, vs, topic, max_num_results=10, filters={"type": "eq", "key": "kind", "value": "quiet"})
    assert len(kept) == 10
    assert {r.file_id for r in kept} == {quiet.id}
    assert all(r.attributes == {"kind": "quiet"} for r in kept)


def test_a_refused_embedding_fails_the_file_and_keyword_search_still_works(client, upstream):
    marker, topic = word("refuseme"), word("heron")
    upstream.refuse_embedding(marker)
    vs, (good,) = store_with(client, f"The {topic} nests by the river in spring.")
    bad = upload(client, "bad.txt", f"{marker} {topic} notes".encode())
    vsf = client.vector_stores.files.create(vs.id, file_id=bad.id)
    assert vsf.status == "failed"
    assert vsf.last_error.code == "server_error"
    assert "embedding" in vsf.last_error.message and "refused" in vsf.last_error.message
    assert client.vector_stores.retrieve(vs.id).file_counts.failed == 1
    # The failed file is not searchable; the query's own embedding refused falls back to keywords.
    assert [r.file_id for r in search(client, vs, topic)] == [good.id]
    assert [r.file_id for r in search(client, vs, f"{topic} {marker}")] == [good.id]


def test_an_upstream_without_the_embedding_model_leaves_a_new_store_keyword_only(client, upstream):
    marker, topic = word("chatonly"), word("egret")
    upstream.refuse_embedding(marker, status=404)
    vs, (only,) = store_with(client, f"{marker}: the {topic} wades in the shallows.")
    assert client.vector_stores.files.retrieve(only.id, vector_store_id=vs.id).status == "completed"
    assert [r.file_id for r in search(client, vs, topic)] == [only.id]
    # A store already indexed with the model keeps its vectors consistent: a 404 now fails the file.
    indexed, _ = store_with(client, f"The {topic} hunts at dawn.")
    late = upload(client, "late.txt", f"{marker} {topic} notes".encode())
    vsf = client.vector_stores.files.create(indexed.id, file_id=late.id)
    assert vsf.status == "failed" and "404" in vsf.last_error.message


@pytest.mark.parametrize("options, param", [
    ({"hybrid_search": {"embedding_weight": 1}}, None),
    ({"hybrid_search": {"embedding_weight": -1, "text_weight": 1}}, "ranking_options.hybrid_search.embedding_weight"),
    ({"hybrid_search": {"embedding_weight": 0, "text_weight": 0}}, "ranking_options.hybrid_search"),
    ({"hybrid_search": {"embedding_weight": "a lot", "text_weight": 1}}, None),
    ({"hybrid_search": {"embedding_weight": 1, "text_weight": 1, "rrf_k": 60}}, None),
    ({"score_threshold": 1.5}, "ranking_options.score_threshold"),
])
def test_bad_ranking_options_are_a_400_naming_the_field(client, http, options, param):
    vs, _ = store_with(client, "anything at all")
    before = client.vector_stores.retrieve(vs.id)
    r = http.post(f"/vector_stores/{vs.id}/search", json={"query": "anything", "ranking_options": options})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param, error
    assert client.vector_stores.retrieve(vs.id).last_active_at == before.last_active_at


def test_two_replicas_see_a_file_added_through_the_other_at_once(lifecycle_db, upstream, tmp_path):  # noqa: F811
    a, b = (Server(lifecycle_db, upstream, tmp_path, f"hyb-{n}-{uuid.uuid4().hex[:6]}") for n in "ab")
    try:
        boat, ship, quay = word("boat"), word("ship"), word("quay")
        upstream.same_meaning(boat, ship)

        def seen(query, ranking):
            return {r.file_id for r in b.client.vector_stores.search(vs.id, query=query, ranking_options=ranking)}

        first = upload(a.client, "first.txt", f"the {boat} leaves the {quay} at noon".encode())
        vs = a.client.vector_stores.create(file_ids=[first.id])
        # B loads the store's vectors and keyword index, then A adds a file: B's next search must see it
        # (B brings its copies up to date from the files changed since).
        assert seen(ship, VECTOR_ONLY) == {first.id} and seen(quay, KEYWORD_ONLY) == {first.id}
        second = upload(a.client, "second.txt", f"a {ship} in the harbour by the {quay}".encode())
        a.client.vector_stores.files.create(vs.id, file_id=second.id)
        assert seen(ship, VECTOR_ONLY) == {first.id, second.id}
        assert seen(quay, KEYWORD_ONLY) == {first.id, second.id}
        a.client.vector_stores.files.delete(first.id, vector_store_id=vs.id)
        assert seen(ship, VECTOR_ONLY) == {second.id}
        assert seen(quay, KEYWORD_ONLY) == {second.id} and seen(boat, KEYWORD_ONLY) == set()
    finally:
        for s in (a, b):
            s.terminate()


def test_rewrite_query_asks_the_chat_model_once_and_searches_its_rewrite(client, http, upstream):
    rewriter = upstream.script("gpt-4o-mini")  # ASSISTD_REWRITE_MODEL's default
    code = word("gearbox")
    rewriter.push_text(f"{code} manual")
    vs, (manual,) = store_with(client, f"The {code} manual covers clutch repair.")
    body = http.post(f"/vector_stores/{vs.id}/search",
                     json={"query": "how do I fix the thing that changes gears?", "rewrite_query": True}).json()
    assert body["search_query"] == [f"{code} manual"]
    assert body["data"][0]["file_id"] == manual.id
    assert len(rewriter.requests) == 1
    assert rewriter.requests[0]["messages"][-1]["content"] == "how do I fix the thing that changes gears?"
    # Without rewrite_query the query is searched as written, and the model is not asked.
    body = http.post(f"/vector_stores/{vs.id}/search", json={"query": "gears"}).json()
    assert body["search_query"] == ["gears"] and len(rewriter.requests) == 1


@pytest.mark.runs
def test_a_runs_file_search_uses_the_same_ranking_and_shows_its_fused_scores(client, script, upstream):
    car, automobile = word("car"), word("automobile")
    upstream.same_meaning(car, automobile)
    vs, (manual, _) = store_with(client, f"{automobile} repair manual, chapter two: brakes",
                                 f"{car} keyword page with the word itself and little else said here")
    options = {"hybrid_search": {"embedding_weight": 0.8, "text_weight": 0.2}}
    a = client.beta.assistants.create(model=script.model,
                                      tools=[{"type": "file_search", "file_search": {"ranking_options": options}}],
                                      tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    script.push_tool_call("file_search", {"query": car})
    script.push_text("done")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Find it."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc",
                                               include=["step_details.tool_calls[*].file_search.results[*].content"])
    results = step.data[0].step_details.tool_calls[0].file_search.results
    direct = search(client, vs, car, ranking_options=options, max_num_results=20)
    assert [(r.file_id, round(r.score, 6)) for r in results] == [(r.file_id, round(r.score, 6)) for r in direct]
    assert len(results) == 2


@pytest.mark.runs
def test_a_responses_file_search_applies_its_filters_before_ranking(client, script, http):
    topic = word("otter")
    files = [upload(client, f"otter{i}.txt", f"{topic} {topic} sighting number {i}".encode()) for i in range(6)]
    vs = client.vector_stores.create()
    for i, f in enumerate(files):
        client.vector_stores.files.create(vs.id, file_id=f.id, attributes={"region": "north" if i == 4 else "south"})
    script.push_tool_call("file_search", {"query": topic})
    script.push_text("done")
    tool = {"type": "file_search", "vector_store_ids": [vs.id], "max_num_results": 3,
            "filters": {"type": "eq", "key": "region", "value": "north"}}
    r = client.responses.create(model=script.model, input="otters up north?", tools=[tool],
                                include=["file_search_call.results"])
    search = r.output[0]
    assert [res.file_id for res in search.results] == [files[4].id]
    assert all(0 < res.score <= 1 for res in search.results)
    # A malformed filter is a 400 naming it, and nothing is created.
    bad = http.post("/responses", json={"model": script.model, "input": "x",
                                        "tools": [{**tool, "filters": {"type": "eq", "key": "region"}}]})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["param"] == "tools[0].filters.value"


EXACT_SQL = Path(__file__).resolve().parents[2] / "src" / "retrieval" / "bm25_exact.sql"


def test_a_rare_terms_chunk_ranks_first_among_many_common_term_chunks(client):
    common, rare = word("harbour"), word("quokka")
    loud = [f"{common} {common} {common} notes on the {common} wall, number {i}" for i in range(40)]
    needle = f"A long survey of the coast: one {common} and, once, a {rare} sighted near the old lighthouse steps."
    vs, files = store_with(client, *loud, needle)
    results = search(client, vs, f"{common} {rare}", ranking_options=KEYWORD_ONLY, max_num_results=50)
    assert len(results) == 41
    assert results[0].file_id == files[-1].id, [r.content[0].text for r in results[:3]]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < scores[0] <= 1


def test_keyword_ranking_is_the_bm25_statements_on_a_small_store(client, database_url):
    """The in-memory index ranks and scores exactly as BM25 in one SQL statement over the same chunks
    (src/retrieval/bm25_exact.sql, the former keyword leg)."""
    rng = random.Random(22)
    vocab = [word(w) for w in ("kelp", "otter", "tide", "reef", "gull", "crab", "shoal", "dune")]
    texts = [" ".join(rng.choice(vocab[: rng.randint(2, 8)]) for _ in range(rng.randint(3, 40))) for _ in range(30)]
    vs, files = store_with(client, *texts)
    queries = [vocab[0], f"{vocab[1]} {vocab[7]}", f"the {vocab[2]} and {vocab[5]} {vocab[6]}", " ".join(vocab)]
    with psycopg.connect(database_url) as db:
        for query in queries:
            got = search(client, vs, query, ranking_options=KEYWORD_ONLY, max_num_results=50)
            rows = exact(db, vs.id, query)
            want = [(file_id, round(score, 9)) for _, file_id, _, score in rows]
            assert want, query
            assert sorted([(r.file_id, round(r.score, 9)) for r in got], key=lambda x: (-x[1], x[0])) == \
                sorted(want, key=lambda x: (-x[1], x[0])), query
            assert [round(r.score, 9) for r in got] == [s for _, s in want], query


def exact(db, store: str, query: str, depth: int = 50):
    # PREPARE / EXECUTE take no bound parameters: a client-side cursor puts the values in the text.
    cur = psycopg.ClientCursor(db)
    cur.execute("DEALLOCATE ALL")
    cur.execute(f"PREPARE bm25(text[], text, text[], bigint, bigint, float8, float8) AS {EXACT_SQL.read_text()}")
    return cur.execute("EXECUTE bm25(%s, %s, NULL, %s, 64, 1.2, 0.75)", ([store], query, depth)).fetchall()


def test_a_file_added_or_removed_changes_keyword_results_at_once(client):
    term = word("lantern")
    vs, (first,) = store_with(client, f"a {term} on the hook")
    assert [r.file_id for r in search(client, vs, term, ranking_options=KEYWORD_ONLY)] == [first.id]
    second = upload(client, "second.txt", f"two {term} {term} by the door".encode())
    client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=second.id)
    assert [r.file_id for r in search(client, vs, term, ranking_options=KEYWORD_ONLY)] == [second.id, first.id]
    client.vector_stores.files.delete(vector_store_id=vs.id, file_id=second.id)
    assert [r.file_id for r in search(client, vs, term, ranking_options=KEYWORD_ONLY)] == [first.id]


def test_a_replicas_keyword_index_sees_a_file_added_through_the_other_and_its_result_limit(
        lifecycle_db, upstream, tmp_path):  # noqa: F811
    a = Server(lifecycle_db, upstream, tmp_path, f"kw-a-{uuid.uuid4().hex[:6]}")
    b = Server(lifecycle_db, upstream, tmp_path, f"kw-b-{uuid.uuid4().hex[:6]}", ASSISTD_SEARCH_MAX_RESULTS="60")
    try:
        term = word("beacon")
        first = upload(a.client, "first.txt", f"a {term} on the cliff".encode())
        vs = a.client.vector_stores.create(file_ids=[first.id])
        # B loads the store's keyword index, then A adds a file: B's next search must rank it.
        hits = b.client.vector_stores.search(vs.id, query=term, ranking_options=KEYWORD_ONLY, max_num_results=60)
        assert [r.file_id for r in hits] == [first.id]
        second = upload(a.client, "second.txt", f"{term} {term}, the {term} again".encode())
        a.client.vector_stores.files.create(vs.id, file_id=second.id)
        hits = b.client.vector_stores.search(vs.id, query=term, ranking_options=KEYWORD_ONLY)
        assert [r.file_id for r in hits] == [second.id, first.id]
        with pytest.raises(openai.BadRequestError) as e:
            b.client.vector_stores.search(vs.id, query=term, max_num_results=61)
        assert e.value.body["code"] == "integer_above_max_value" and e.value.body["param"] == "max_num_results"
        with pytest.raises(openai.BadRequestError):
            a.client.vector_stores.search(vs.id, query=term, max_num_results=51)
    finally:
        for s in (a, b):
            s.terminate()
