"""The optional reranker: a server of its own with `ASSISTD_RERANK_MODEL` set sends the best fused candidates to the
scripted upstream's `/rerank`, whose order each test steers with a marker word of its own (`upstream.rerank_by`).
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from helpers import upload
from test_lifecycle import Server

RERANK_MODEL = "rerank-scripted"
CANDIDATES = 5
KEYWORD_ONLY = {"hybrid_search": {"embedding_weight": 0, "text_weight": 1}}


def word(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(new_database, upstream, tmp_path_factory):
    s = Server(new_database(), upstream, tmp_path_factory.mktemp("rerank"), f"rerank-{uuid.uuid4().hex[:6]}",
               ASSISTD_RERANK_MODEL=RERANK_MODEL, ASSISTD_RERANK_CANDIDATES=str(CANDIDATES))
    yield s
    s.terminate()


@pytest.fixture(scope="module")
def client(server):
    return server.client


def reranks_of(upstream, query: str) -> list[dict]:
    return [r for r in upstream.rerank_requests if r["query"] == query]


def store(client, topic: str, n: int = 3):
    """Files whose keyword score falls with their number: file i holds `topic` n - i times, and a word of its own."""
    own = [word(f"own{i}") for i in range(n)]
    files = [upload(client, f"doc{i}.txt", f"{' '.join([topic] * (n - i))} {own[i]} filler text".encode())
             for i in range(n)]
    vs = client.vector_stores.create(file_ids=[f.id for f in files])
    return vs, files, own


def search(client, vs, query, **kw):
    return list(client.vector_stores.search(vs.id, query=query, ranking_options=kw.pop("ranking", KEYWORD_ONLY),
                                            **kw))


def rerank_count(server, outcome: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    pattern = rf'^assistd_file_search_rerank_total{{outcome="{outcome}"}} (\S+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


def test_the_reranker_reorders_the_results_and_sets_their_scores(client, upstream):
    topic = word("kestrel")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[2], own[1])
    fused = search(client, vs, topic, ranking={**KEYWORD_ONLY, "ranker": "none"})
    assert [r.file_id for r in fused] == [f.id for f in files]
    reranked = search(client, vs, topic)
    assert [r.file_id for r in reranked] == [files[2].id, files[1].id, files[0].id]
    assert [r.score for r in reranked] == [2 / 3, 1 / 3, 0.0]
    (sent,) = reranks_of(upstream, topic)
    assert sent["model"] == RERANK_MODEL and sent["top_n"] == 3
    assert sorted(sent["documents"]) == sorted(r.content[0].text for r in fused)


def test_ranker_none_skips_the_reranker_and_auto_uses_it(client, upstream):
    topic = word("plover")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[1])
    plain = search(client, vs, topic, ranking={**KEYWORD_ONLY, "ranker": "none"})
    assert [r.file_id for r in plain] == [f.id for f in files]
    assert reranks_of(upstream, topic) == []
    for ranker in ("auto", "default-2024-11-15"):
        assert search(client, vs, topic, ranking={**KEYWORD_ONLY, "ranker": ranker})[0].file_id == files[1].id
    assert len(reranks_of(upstream, topic)) == 2


def test_a_failing_reranker_leaves_the_fused_order_and_is_counted(client, server, upstream):
    topic = word("grebe")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[2], status=503)
    fused = search(client, vs, topic, ranking={**KEYWORD_ONLY, "ranker": "none"})
    failed_before = rerank_count(server, "failed")
    results = search(client, vs, topic)
    assert [(r.file_id, r.score) for r in results] == [(r.file_id, r.score) for r in fused]
    assert len(reranks_of(upstream, topic)) == 1
    assert rerank_count(server, "failed") == failed_before + 1
    log = server.log_path.read_text()
    assert "the reranker failed" in log and "503" in log


def test_a_tei_answer_with_raw_logits_still_gives_scores_in_0_to_1(client, upstream):
    topic = word("curlew")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[1], own[2], tei=True)
    results = search(client, vs, topic)
    assert [r.file_id for r in results] == [files[1].id, files[2].id, files[0].id]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores), scores


def test_only_the_best_candidates_are_sent_and_the_rest_follow_below_them(client, upstream):
    topic = word("dunlin")
    n = CANDIDATES + 3
    vs, files, own = store(client, topic, n)
    upstream.rerank_by(topic, own[CANDIDATES - 1])
    results = search(client, vs, topic, max_num_results=n)
    (sent,) = reranks_of(upstream, topic)
    assert len(sent["documents"]) == CANDIDATES
    ids = [r.file_id for r in results]
    assert ids[0] == files[CANDIDATES - 1].id
    assert ids[CANDIDATES:] == [f.id for f in files[CANDIDATES:]]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores), scores


def test_score_threshold_applies_to_the_reranked_scores(client, upstream):
    topic = word("avocet")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[2])
    fused = search(client, vs, topic, ranking={**KEYWORD_ONLY, "ranker": "none"})
    threshold = min(r.score for r in fused) / 2
    assert len(search(client, vs, topic, ranking={**KEYWORD_ONLY, "ranker": "none",
                                                  "score_threshold": threshold})) == 3
    kept = search(client, vs, topic, ranking={**KEYWORD_ONLY, "score_threshold": threshold})
    assert [(r.file_id, r.score) for r in kept] == [(files[2].id, 0.5)]


def test_an_unknown_ranker_is_a_400(client, server, upstream):
    topic = word("stint")
    vs, _, _ = store(client, topic, 1)
    r = httpx.post(f"{server.url}/v1/vector_stores/{vs.id}/search", headers={"Authorization": f"Bearer {client.api_key}"},
                   json={"query": topic, "ranking_options": {"ranker": "best"}})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert reranks_of(upstream, topic) == []


@pytest.mark.runs
def test_a_runs_file_search_shows_the_reranked_scores(client, upstream):
    topic = word("godwit")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[2], own[0])
    script = upstream.script()
    a = client.beta.assistants.create(model=script.model, tools=[{"type": "file_search"}],
                                      tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    script.push_tool_call("file_search", {"query": topic})
    script.push_text("done")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Find it."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc",
                                               include=["step_details.tool_calls[*].file_search.results[*].content"])
    results = step.data[0].step_details.tool_calls[0].file_search.results
    assert [(r.file_id, r.score) for r in results] == [(files[2].id, 2 / 3), (files[0].id, 1 / 3),
                                                       (files[1].id, 0.0)]
    # The model read them in that order.
    read = script.requests[-1]["messages"][-1]["content"]
    assert read.index(own[2]) < read.index(own[0]) < read.index(own[1])


@pytest.mark.runs
def test_a_responses_file_search_with_ranker_none_keeps_the_fused_order(client, upstream):
    topic = word("knot")
    vs, files, own = store(client, topic)
    upstream.rerank_by(topic, own[2])
    for ranker, first in (("none", files[0].id), ("auto", files[2].id)):
        script = upstream.script()
        script.push_tool_call("file_search", {"query": topic})
        script.push_text("done")
        tool = {"type": "file_search", "vector_store_ids": [vs.id], "ranking_options": {"ranker": ranker}}
        r = client.responses.create(model=script.model, input="knots?", tools=[tool],
                                    include=["file_search_call.results"])
        assert r.output[0].results[0].file_id == first, ranker
    assert len(reranks_of(upstream, topic)) == 1
