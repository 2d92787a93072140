-- BM25 in one statement over the chunks' tsvectors and the per-store term statistics the chunk
-- triggers keep (migration 0014). This was the keyword leg until the in-memory index of
-- src/retrieval/keyword.rs replaced it; it stays as the reference that index must match:
-- tests/sdk/test_hybrid_search.py compares the two, and bench/retrieval/bench.py times it as the
-- baseline. It costs the whole tsvector of every chunk holding any query term (seconds for
-- common words at 100k chunks).
--
-- $1 text[] stores, $2 text query, $3 text[] files or NULL, $4 depth, $5 most query lexemes,
-- $6 k1, $7 b. Rows: store, file, chunk index, score (BM25 over the most any chunk could score).
WITH q AS (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', $2)) LIMIT $5
), st AS (
    SELECT coalesce(sum(chunks), 0)::float8 AS n,
           greatest(coalesce(sum(tokens), 0), 1)::float8 / greatest(coalesce(sum(chunks), 0), 1) AS avglen
    FROM vector_store_stats WHERE vector_store_id = ANY($1)
), w AS (
    SELECT t.lexeme, ln(1 + (st.n - sum(t.chunks) + 0.5) / (sum(t.chunks) + 0.5)) AS idf
    FROM vector_store_terms t JOIN q USING (lexeme) CROSS JOIN st
    WHERE t.vector_store_id = ANY($1)
    GROUP BY t.lexeme, st.n
)
SELECT c.vector_store_id, c.file_id, c.idx,
       sum(w.idf * (x.tf * ($6 + 1)) / (x.tf + $6 * (1 - $7 + $7 * c.tokens / st.avglen)))
         / ((SELECT sum(idf) FROM w) * ($6 + 1)) AS score
FROM vector_store_chunks c
CROSS JOIN st
CROSS JOIN LATERAL (
    SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf FROM unnest(c.tsv) u
) x
JOIN w ON w.lexeme = x.lexeme
WHERE c.vector_store_id = ANY($1)
  AND c.tsv @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM w)
  AND ($3::text[] IS NULL OR c.file_id = ANY($3))
GROUP BY c.vector_store_id, c.file_id, c.idx
ORDER BY score DESC, c.vector_store_id, c.file_id, c.idx
LIMIT $4
