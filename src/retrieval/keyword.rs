//! The keyword leg: BM25 in one SQL statement over the chunks' tsvectors (English stemming and
//! stop words, as the chunks were analysed), with the per-store term statistics the chunk
//! triggers keep (migration 0014).

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;

use super::vectors::ChunkKey;

/// BM25's term-frequency saturation and length normalisation (the usual values).
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Query lexemes beyond this many are ignored.
const MAX_TERMS: i64 = 64;

/// The best `depth` chunks of the stores for `query` by BM25, best first, only of `files`
/// when given (the filter applies before ranking, so it never empties a page). A score is
/// BM25 divided by the most any chunk could score for the query (every query term, each
/// saturated), so it is in 0..1 and means the same whatever else the store holds.
pub async fn best(
    db: &PgPool,
    vector_store_ids: &[String],
    query: &str,
    files: Option<&HashSet<String>>,
    depth: usize,
) -> sqlx::Result<Vec<(ChunkKey, f64)>> {
    let files: Option<Vec<&str>> = files.map(|f| f.iter().map(String::as_str).collect());
    // The idf of each query lexeme over the searched stores together; the tsquery (an OR of
    // those lexemes) finds candidate chunks through the GIN index; the score sums, over the
    // chunk's lexemes that are query lexemes, idf * tf (k1 + 1) / (tf + k1 (1 - b + b len / avglen)).
    let rows: Vec<(String, String, i32, f64)> = sqlx::query_as(
        "WITH q AS (
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
         LIMIT $4",
    )
    .bind(vector_store_ids)
    .bind(query)
    .bind(files)
    .bind(depth as i64)
    .bind(MAX_TERMS)
    .bind(K1)
    .bind(B)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(store, file, idx, score)| ((Arc::from(store), Arc::from(file), idx), score))
        .collect())
}
