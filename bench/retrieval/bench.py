"""Retrieval quality and speed of file_search on a BEIR-format dataset, through the HTTP API.

Indexes the corpus (one file per document: title, blank line, text) into one vector store with file batches, then
searches every test query three ways — keyword only, vector only, hybrid (`ranking_options.hybrid_search`) — and
prints nDCG@10 and Recall@100 for each (the server is started with ASSISTD_SEARCH_MAX_RESULTS=100, as OpenAI's 50
would cap the recall), search latency p50/p95 and indexing files/s. The keyword leg's former statement
(src/retrieval/bm25_exact.sql, BM25 in SQL) is run on the same store as the baseline, timed, and compared with the
keyword leg's rankings. Embeddings come from bench/retrieval/embed_server.py (all-MiniLM-L6-v2, cached on disk; or
hashed words for scale runs).

Environment (set by run.sh): DATA (the BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv), BENCH_WORK,
DATABASE_URL, ASSISTD_BIN, BENCH_EMBED_PYTHON; optional BENCH_SPLIT=test, BENCH_MAX_DOCS, BENCH_MAX_QUERIES,
BENCH_TEXT_WEIGHT / BENCH_EMBEDDING_WEIGHT (hybrid's weights, default 0.5 / 0.5), BENCH_CONCURRENCY=4,
BENCH_CHUNK_TOKENS / BENCH_CHUNK_OVERLAP (a static chunking strategy; default the server's 800 / 400),
BENCH_EMBED_HASHED=DIMS (hashed-word vectors instead of MiniLM), BENCH_BASELINE_QUERIES (how many queries the old
statement runs, default all; it takes seconds a query at 100k chunks).
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
import assistd_process  # noqa: E402

KEY = "sk-bench-retrieval"
PAGE = 100
EXACT_SQL = ROOT / "src" / "retrieval" / "bm25_exact.sql"


def read_beir(folder: Path, split: str, max_docs: int | None, max_queries: int | None):
    corpus = {}
    with open(folder / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            corpus[str(d["_id"])] = (d.get("title") or "", d.get("text") or "")
    queries = {}
    with open(folder / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].lstrip("-").isdigit():
                continue
            qid, did, score = parts[0], parts[1], int(parts[2])
            if score > 0:
                qrels.setdefault(qid, {})[did] = score
    if max_docs:
        # Keep every judged document, then fill up to max_docs with the rest.
        judged = {d for rel in qrels.values() for d in rel}
        keep = [d for d in corpus if d in judged] + [d for d in corpus if d not in judged]
        corpus = {d: corpus[d] for d in keep[:max_docs]}
    qids = [q for q in qrels if q in queries and any(d in corpus for d in qrels[q])]
    if max_queries:
        qids = qids[:max_queries]
    return corpus, {q: queries[q] for q in qids}, qrels


def ndcg_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rel: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(rel)) / len(rel) if rel else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    data = Path(os.environ["DATA"])
    work = Path(os.environ["BENCH_WORK"])
    split = os.environ.get("BENCH_SPLIT", "test")
    max_docs = int(os.environ.get("BENCH_MAX_DOCS", "0")) or None
    max_queries = int(os.environ.get("BENCH_MAX_QUERIES", "0")) or None
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "4"))
    hybrid = {"embedding_weight": float(os.environ.get("BENCH_EMBEDDING_WEIGHT", "0.5")),
              "text_weight": float(os.environ.get("BENCH_TEXT_WEIGHT", "0.5"))}
    corpus, queries, qrels = read_beir(data, split, max_docs, max_queries)
    print(f"dataset {data}: {len(corpus)} documents, {len(queries)} queries ({split})", flush=True)

    port = free_port()
    cache = Path(os.environ.get("BENCH_EMBED_CACHE", ROOT / ".tmp" / "bench-retrieval" / "embeddings.sqlite"))
    hashed = os.environ.get("BENCH_EMBED_HASHED", "")
    embedder = subprocess.Popen([os.environ["BENCH_EMBED_PYTHON"], str(Path(__file__).with_name("embed_server.py")),
                                 "--port", str(port), "--cache", str(cache)] + (["--hashed", hashed] if hashed else []),
                                env={**os.environ, "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1"}, stdout=subprocess.PIPE, text=True)
    embedder.stdout.readline()  # "embeddings on ..." once the model is loaded
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "ASSISTD_API_KEYS": KEY,
        "ASSISTD_DATA_DIR": str(work / "data"),
        "ASSISTD_UPSTREAM_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "ASSISTD_EMBEDDING_MODEL": "hashed-words" if hashed else "all-MiniLM-L6-v2",
        "ASSISTD_EMBEDDING_DIMENSIONS": "0",
        "ASSISTD_REWRITE_MODEL": "",
        "ASSISTD_SANDBOX_POOL_SIZE": "0",
        "ASSISTD_SANDBOX_INSTANCE": f"bench-retrieval-{os.getpid()}",
        "ASSISTD_MAX_BODY_BYTES": str(64 << 20),
        "ASSISTD_SEARCH_MAX_RESULTS": str(PAGE),
        "RUST_LOG": "warn",
    }
    server, url = assistd_process.start(env, work / "server.log")
    try:
        return run(url, corpus, queries, qrels, hybrid, concurrency, chunking())
    finally:
        assistd_process.stop(server)
        embedder.terminate()
        embedder.wait()


def chunking() -> dict | None:
    tokens = os.environ.get("BENCH_CHUNK_TOKENS")
    if not tokens:
        return None
    return {"type": "static", "static": {"max_chunk_size_tokens": int(tokens),
                                         "chunk_overlap_tokens": int(os.environ.get("BENCH_CHUNK_OVERLAP", "0"))}}


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def documents(hits, doc_of) -> list[str]:
    """A ranking of chunks as a ranking of documents (each document at its first chunk)."""
    ranked: list[str] = []
    for file_id in hits:
        did = doc_of.get(file_id)
        if did and did not in ranked:
            ranked.append(did)
    return ranked


def run(url, corpus, queries, qrels, hybrid, concurrency, chunking) -> int:
    http = httpx.Client(base_url=f"{url}/v1", headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
    store = http.post("/vector_stores", json={"name": "bench"}).raise_for_status().json()["id"]

    def upload(item):
        did, (title, text) = item
        body = f"{title}\n\n{text}".strip().encode()
        r = http.post("/files", files={"file": (f"{did}.txt", body)}, data={"purpose": "assistants"})
        return r.raise_for_status().json()["id"], did

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        doc_of = dict(pool.map(upload, corpus.items()))
    uploaded = time.monotonic()
    ids = list(doc_of)
    batches = [ids[i:i + 100] for i in range(0, len(ids), 100)]

    def attach(batch):
        body = {"file_ids": batch} | ({"chunking_strategy": chunking} if chunking else {})
        r = http.post(f"/vector_stores/{store}/file_batches", json=body).raise_for_status().json()
        return r["file_counts"]["completed"], r["file_counts"]["failed"]

    done = failed = 0
    with ThreadPoolExecutor(concurrency) as pool:
        for n, (ok, bad) in enumerate(pool.map(attach, batches)):
            done, failed = done + ok, failed + bad
            print(f"\rindexed {done}/{len(ids)} ({failed} failed)", end="", flush=True)
    indexed = time.monotonic()
    print(f"\nuploads {len(ids) / (uploaded - started):.1f} files/s; "
          f"indexing (chunk + embed + store) {len(ids) / (indexed - uploaded):.1f} files/s", flush=True)

    with psycopg.connect(os.environ["DATABASE_URL"]) as db:
        chunks = db.execute("SELECT chunks FROM vector_store_stats WHERE vector_store_id = %s", (store,)).fetchone()[0]
    print(f"{chunks} chunks", flush=True)

    modes = {
        "keyword": {"hybrid_search": {"embedding_weight": 0, "text_weight": 1}},
        "vector": {"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
        "hybrid": {"hybrid_search": hybrid},
    }
    # The first search of each leg loads the store's index / vectors into the server's memory.
    first = {}
    for mode, options in modes.items():
        t0 = time.perf_counter()
        http.post(f"/vector_stores/{store}/search", json={"query": next(iter(queries.values())), "max_num_results": PAGE,
                                                          "ranking_options": options}).raise_for_status()
        first[mode] = (time.perf_counter() - t0) * 1000
    print("first search (loads the store into memory): "
          + ", ".join(f"{m} {ms:.0f} ms" for m, ms in first.items()), flush=True)
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    latency: dict[str, list[float]] = {m: [] for m in modes}
    keyword_top: dict[str, list[str]] = {}
    for qid, text in queries.items():
        for mode, options in modes.items():
            t0 = time.perf_counter()
            r = http.post(f"/vector_stores/{store}/search",
                          json={"query": text, "max_num_results": PAGE, "ranking_options": options})
            latency[mode].append((time.perf_counter() - t0) * 1000)
            ranked = documents([hit["file_id"] for hit in r.raise_for_status().json()["data"]], doc_of)
            if mode == "keyword":
                keyword_top[qid] = ranked
            rel = qrels[qid]
            results[mode].append((ndcg_at(ranked, rel, 10), recall_at(ranked, rel, PAGE)))
    changes = after_a_change(http, store, next(iter(queries.values())), modes)
    baseline = exact_statement(store, queries, qrels, doc_of, keyword_top)

    print(f"\n| ranking | queries | nDCG@10 | Recall@{PAGE} | search p50 | search p95 |")
    print("|---|---:|---:|---:|---:|---:|")
    if baseline:
        nd, rc, lat, n, _ = baseline
        print(f"| keyword, old statement (SQL only) | {n} | {nd:.3f} | {rc:.3f} | {pct(lat, 50):.1f} ms | "
              f"{pct(lat, 95):.1f} ms |")
    for mode in modes:
        nd = statistics.mean(r[0] for r in results[mode])
        rc = statistics.mean(r[1] for r in results[mode])
        print(f"| {mode} | {len(queries)} | {nd:.3f} | {rc:.3f} | {pct(latency[mode], 50):.1f} ms | "
              f"{pct(latency[mode], 95):.1f} ms |")
    if baseline:
        same = baseline[4]
        print(f"\nkeyword leg vs the old statement: the same top-10 documents in order for {same}/{baseline[3]} "
              f"queries (their nDCG@10 over those queries: {baseline[0]:.3f} vs "
              f"{statistics.mean(results['keyword'][i][0] for i in range(baseline[3])):.3f})")
    print(f"\nhybrid weights {hybrid}; {len(ids)} files, {chunks} chunks, {len(queries)} queries")
    print("first search after a change (only the changed file re-read): "
          + "; ".join(f"{what}: " + ", ".join(f"{m} {ms:.0f} ms" for m, ms in t.items()) for what, t in changes))
    return 0


def after_a_change(http, store, query, modes):
    """Times the first keyword and vector search after one file is added to the store, then after it is removed:
    each brings the server's copy up to date from the files changed since."""
    timings = []
    body = f"{query}\n\nA note added while the store is searched.".encode()
    file_id = http.post("/files", files={"file": ("added.txt", body)},
                        data={"purpose": "assistants"}).raise_for_status().json()["id"]
    for what, change in (("file added", lambda: http.post(f"/vector_stores/{store}/files", json={"file_id": file_id})),
                         ("file removed", lambda: http.delete(f"/vector_stores/{store}/files/{file_id}"))):
        change().raise_for_status()
        took = {}
        for mode in ("keyword", "vector"):
            t0 = time.perf_counter()
            http.post(f"/vector_stores/{store}/search", json={"query": query, "max_num_results": PAGE,
                                                              "ranking_options": modes[mode]}).raise_for_status()
            took[mode] = (time.perf_counter() - t0) * 1000
        timings.append((what, took))
    return timings


def exact_statement(store, queries, qrels, doc_of, keyword_top):
    """Runs the former keyword statement (BM25 in SQL) on the first BENCH_BASELINE_QUERIES queries: nDCG@10,
    Recall@100, latencies (the statement alone, no HTTP), and for how many queries its top-10 documents equal the
    keyword leg's."""
    limit = int(os.environ.get("BENCH_BASELINE_QUERIES", str(len(queries))))
    if limit <= 0:
        return None
    sql = EXACT_SQL.read_text()
    scores, latency, same = [], [], 0
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        # PREPARE / EXECUTE take no bound parameters: a client-side cursor puts the values in the text.
        db = psycopg.ClientCursor(conn)
        db.execute(f"PREPARE bm25(text[], text, text[], bigint, bigint, float8, float8) AS {sql}")
        for n, (qid, text) in enumerate(list(queries.items())[:limit]):
            t0 = time.perf_counter()
            rows = db.execute("EXECUTE bm25(%s, %s, NULL, %s, 64, 1.2, 0.75)", ([store], text, PAGE)).fetchall()
            latency.append((time.perf_counter() - t0) * 1000)
            ranked = documents([row[1] for row in rows], doc_of)
            same += ranked[:10] == keyword_top[qid][:10]
            rel = qrels[qid]
            scores.append((ndcg_at(ranked, rel, 10), recall_at(ranked, rel, PAGE)))
            print(f"\rold statement {n + 1}/{limit}", end="", flush=True)
    print()
    return (statistics.mean(s[0] for s in scores), statistics.mean(s[1] for s in scores), latency, len(scores), same)


if __name__ == "__main__":
    sys.exit(main())
