//! file_search's retrieval: a vector store's files are read ([`extract`]) and cut into
//! overlapping chunks ([`chunk`]) when they are added; each chunk is embedded ([`embed`]) when an
//! embedding upstream is configured. A query is ranked by two legs — BM25 over an inverted index
//! of the chunks' Postgres full text ([`keyword`]) and exact cosine over the embeddings
//! ([`vectors`]), both held in memory and checked against the stores' versions — each narrowed first
//! by the attribute filter ([`filter`]), and their normalised scores are blended with the
//! `hybrid_search` weights. An optional reranker ([`rerank`]) then reorders the best of them.

mod cache;
mod chunk;
pub mod embed;
mod extract;
pub mod filter;
mod keyword;
mod rerank;
mod rewrite;
mod vectors;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::Value;
use sqlx::PgPool;

use crate::blobs::{BlobStore, Key};
use crate::objects::FileObject;
use crate::sandbox::SandboxManager;

pub use chunk::Chunking;
pub use embed::Embedder;
pub use extract::text_of;
pub use filter::Filter;
use keyword::TermCache;
pub use rerank::Reranker;
pub use rewrite::Rewriter;
use vectors::{ChunkKey, Embedding, VectorCache};

/// Why a file cannot be indexed; it becomes the vector store file's `last_error`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexFailure {
    pub code: &'static str,
    pub message: String,
}

/// One chunk found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub vector_store_id: String,
    pub file_id: String,
    pub filename: String,
    /// The fused score, in 0..=1, higher is better; results are in its order.
    pub score: f64,
    pub text: String,
}

/// How the two legs are weighted (`ranking_options.hybrid_search`); a zero weight skips its
/// leg. Both zero is refused where the request is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub embedding: f64,
    pub text: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            embedding: 0.5,
            text: 0.5,
        }
    }
}

/// One search over some stores.
#[derive(Debug, Clone)]
pub struct Search<'a> {
    pub vector_store_ids: &'a [String],
    /// Several queries: each chunk keeps its best score.
    pub queries: &'a [String],
    pub max_results: usize,
    pub score_threshold: f64,
    pub weights: Weights,
    /// Only chunks of these files (the attribute filter's verdict), when given.
    pub files: Option<HashSet<String>>,
    /// Whether the reranker (if one is configured) reorders the results: `ranker` other
    /// than `none`.
    pub rerank: bool,
}

/// Retrieval's shared parts, built once at start: the database, the blobs and the sandbox
/// (which reads documents), the embedding upstream (if any) and this replica's copy of the
/// stores' vectors and inverted indexes.
#[derive(Clone)]
pub struct Retrieval {
    db: PgPool,
    blobs: BlobStore,
    sandbox: SandboxManager,
    embedder: Option<Embedder>,
    rewriter: Option<Rewriter>,
    reranker: Option<Reranker>,
    vectors: VectorCache,
    terms: TermCache,
    max_results: usize,
}

/// Candidates each leg ranks before fusion, at least.
const MIN_DEPTH: usize = 100;

impl Retrieval {
    pub fn new(
        db: PgPool,
        blobs: BlobStore,
        sandbox: SandboxManager,
        embedder: Option<Embedder>,
        rewriter: Option<Rewriter>,
    ) -> Self {
        match &embedder {
            Some(e) => {
                tracing::info!(model = %e.model, dimensions = e.dimensions, upstream = %e.upstream(), "file_search embeddings")
            }
            None => tracing::warn!("file_search has no embedding upstream: keyword ranking only"),
        }
        Self {
            db,
            blobs,
            sandbox,
            embedder,
            rewriter,
            reranker: None,
            vectors: VectorCache::default(),
            terms: TermCache::default(),
            max_results: 50,
        }
    }

    /// Allows `vector_stores.search` up to `n` results (OpenAI's 50 by default).
    pub fn with_max_results(mut self, n: u32) -> Self {
        self.max_results = n.max(1) as usize;
        self
    }

    /// Reranks searches that ask for it (`ranker` other than `none`) with `reranker`.
    pub fn with_reranker(mut self, reranker: Option<Reranker>) -> Self {
        if let Some(r) = &reranker {
            tracing::info!(
                model = r.model(),
                upstream = r.upstream(),
                candidates = r.candidates(),
                "file_search reranker"
            );
        }
        self.reranker = reranker;
        self
    }

    /// The most results one `vector_stores.search` returns.
    pub fn max_results(&self) -> usize {
        self.max_results
    }

    /// `rewrite_query`: each query as the rewrite model puts it (as written without one).
    pub async fn rewrite(&self, queries: Vec<String>) -> Vec<String> {
        let Some(rewriter) = &self.rewriter else {
            return queries;
        };
        let mut out = Vec::with_capacity(queries.len());
        for q in &queries {
            out.push(rewriter.rewrite(q).await);
        }
        out
    }

    /// Indexes one file of a store; the `vector_store_files` row (vector_store_id, file.id)
    /// must exist already (the chunks reference it). `Ok(Ok(usage_bytes))` when indexed,
    /// `Ok(Err(failure))` when the file cannot be (not text, or the embedding upstream
    /// refused it: then nothing of it is stored).
    pub async fn index_file(
        &self,
        vector_store_id: &str,
        file: &FileObject,
        chunking: &Chunking,
    ) -> sqlx::Result<Result<u64, IndexFailure>> {
        let db = &self.db;
        let bytes = match self.blobs.read(&Key::file(&file.id)).await {
            Ok(bytes) => bytes.into(),
            Err(_) => {
                return Ok(Err(IndexFailure {
                    code: "invalid_file",
                    message: format!("The file {} could not be read.", file.id),
                }))
            }
        };
        let text = match extract::text_of(&self.sandbox, &file.filename, bytes).await {
            Ok(text) => text,
            Err(failure) => return Ok(Err(failure)),
        };
        let chunks = chunking.split(&text);
        let indices: Vec<i32> = (0..chunks.len() as i32).collect();
        let (embedding, vectors) = match self.embed_chunks(vector_store_id, &chunks).await? {
            Ok(v) => v,
            Err(failure) => return Ok(Err(failure)),
        };
        let mut tx = db.begin().await?;
        sqlx::query("DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2")
            .bind(vector_store_id)
            .bind(&file.id)
            .execute(&mut *tx)
            .await?;
        // Vectors go as one flat array (a Postgres array of arrays must be rectangular).
        let dims = vectors.first().map_or(0, Vec::len) as i32;
        let flat: Vec<f32> = vectors.concat();
        sqlx::query(
            "INSERT INTO vector_store_chunks (vector_store_id, file_id, idx, content, tokens, embedding)
             SELECT $1, $2, c.idx, c.content,
                    (SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0)
                     FROM unnest(to_tsvector('english', c.content)) u),
                    CASE WHEN $5 > 0 THEN ($6::real[])[c.idx * $5 + 1 : (c.idx + 1) * $5] END
             FROM UNNEST($3::int[], $4::text[]) AS c(idx, content)",
        )
        .bind(vector_store_id)
        .bind(&file.id)
        .bind(&indices)
        .bind(&chunks)
        .bind(dims)
        .bind(&flat)
        .execute(&mut *tx)
        .await?;
        if let Some(e) = embedding {
            sqlx::query(
                "UPDATE vector_store_stats SET embedding_model = $2, embedding_dimensions = $3
                 WHERE vector_store_id = $1 AND embedding_model IS NULL",
            )
            .bind(vector_store_id)
            .bind(&e.model)
            .bind(e.dimensions as i32)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(text.len() as u64))
    }

    /// The chunks' vectors, made the way the store's earlier files were (or, for its first,
    /// with the configured model and size); no vectors without an embedding upstream, nor for a
    /// store not yet indexed with a model when the upstream serves no such model (a chat-only
    /// upstream answers 404: the store is keyword-only rather than every file failing).
    async fn embed_chunks(
        &self,
        vector_store_id: &str,
        chunks: &[String],
    ) -> sqlx::Result<Result<(Option<Embedding>, Vec<Vec<f32>>), IndexFailure>> {
        let Some(embedder) = &self.embedder else {
            return Ok(Ok((None, vec![])));
        };
        if chunks.is_empty() {
            return Ok(Ok((None, vec![])));
        }
        let recorded: Option<(String, i32)> = sqlx::query_as(
            "SELECT embedding_model, embedding_dimensions FROM vector_store_stats
             WHERE vector_store_id = $1 AND embedding_model IS NOT NULL",
        )
        .bind(vector_store_id)
        .fetch_optional(&self.db)
        .await?;
        let unindexed = recorded.is_none();
        let (model, asked) = match recorded {
            Some((model, dims)) => (model, dims.max(0) as u32),
            None => (embedder.model.clone(), embedder.dimensions),
        };
        match embedder.embed(&model, asked, chunks).await {
            Ok(vectors) => {
                let dimensions = vectors.first().map_or(0, Vec::len) as u32;
                Ok(Ok((Some(Embedding { model, dimensions }), vectors)))
            }
            Err(refusal) if refusal.unserved && unindexed => {
                tracing::warn!(
                    vector_store_id,
                    model,
                    "the embedding upstream serves no such model: indexed for keywords only"
                );
                Ok(Ok((None, vec![])))
            }
            Err(refusal) => Ok(Err(IndexFailure {
                code: refusal.code,
                message: refusal.message,
            })),
        }
    }

    /// The best chunks for the search's queries across its stores, best first: at most
    /// `max_results`, each scoring at least `score_threshold` (after reranking, when the
    /// search asks for it and a reranker is configured).
    pub async fn search(&self, search: &Search<'_>) -> sqlx::Result<Vec<Hit>> {
        let started = Instant::now();
        let depth = MIN_DEPTH.max(search.max_results * 4);
        let files = search.files.as_ref();
        let stores = vectors::states(&self.db, search.vector_store_ids).await?;
        let want_vectors = search.weights.embedding > 0.0;
        let mut fallback = "none";
        let mut used_vectors = false;
        let mut best: HashMap<ChunkKey, f64> = HashMap::new();
        for query in search.queries {
            let text = if search.weights.text > 0.0 {
                self.terms
                    .best(&self.db, &stores, query, files, depth)
                    .await?
            } else {
                vec![]
            };
            let mut near: Vec<(ChunkKey, f32)> = vec![];
            if want_vectors {
                match self.nearest(&stores, query, files, depth).await? {
                    Ok(found) => {
                        used_vectors |= found.is_some();
                        near = found.unwrap_or_default();
                    }
                    Err(why) => fallback = why,
                }
            }
            let weights = Weights {
                // A leg that could not run does not pull every score down.
                embedding: if used_vectors {
                    search.weights.embedding
                } else {
                    0.0
                },
                text: search.weights.text,
            };
            for (key, score) in fuse(&text, &near, weights) {
                let entry = best.entry(key).or_insert(score);
                if *entry < score {
                    *entry = score;
                }
            }
        }
        let reranker = self.reranker.as_ref().filter(|_| search.rerank);
        let mut ranked: Vec<(ChunkKey, f64)> = best.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(reranker.map_or(search.max_results, |r| {
            r.candidates().max(search.max_results)
        }));
        let mut hits = self.hits(ranked).await?;
        if let Some(reranker) = reranker {
            hits = rerank::apply(reranker, &search.queries.join("\n"), hits).await;
        }
        hits.retain(|h| h.score >= search.score_threshold);
        hits.truncate(search.max_results);
        let legs = match (search.weights.text > 0.0, used_vectors) {
            (true, true) => "hybrid",
            (false, true) => "vector",
            _ => "keyword",
        };
        if want_vectors && fallback != "none" {
            tracing::info!(fallback, legs, "file_search ranked without its vector leg");
        }
        crate::metrics::file_search(legs, fallback, started.elapsed());
        Ok(hits)
    }

    /// The vector leg for one query over the stores: `Ok(None)` when no searched store holds
    /// vectors, `Err(reason)` when they cannot be searched now (no embedding upstream, or it
    /// failed on the query).
    async fn nearest(
        &self,
        stores: &[vectors::StoreState],
        query: &str,
        files: Option<&HashSet<String>>,
        depth: usize,
    ) -> sqlx::Result<Result<Option<Vec<(ChunkKey, f32)>>, &'static str>> {
        let mut by_model: Vec<(&Embedding, Vec<&vectors::StoreState>)> = vec![];
        for s in stores {
            if let Some(e) = &s.embedding {
                match by_model.iter_mut().find(|(m, _)| *m == e) {
                    Some((_, group)) => group.push(s),
                    None => by_model.push((e, vec![s])),
                }
            }
        }
        if by_model.is_empty() {
            return Ok(Ok(None));
        }
        let Some(embedder) = &self.embedder else {
            return Ok(Err("no_embedding_upstream"));
        };
        let mut found = vec![];
        for (embedding, group) in by_model {
            let asked = embedding.dimensions;
            let q = match embedder
                .embed(&embedding.model, asked, &[query.to_string()])
                .await
            {
                Ok(mut v) => v.pop().unwrap_or_default(),
                Err(_) => return Ok(Err("embedding_failed")),
            };
            found.extend(
                self.vectors
                    .nearest(&self.db, &group, &q, files, depth)
                    .await?,
            );
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        found.truncate(depth);
        Ok(Ok(Some(found)))
    }

    /// The ranked chunks with their text and file names.
    async fn hits(&self, ranked: Vec<(ChunkKey, f64)>) -> sqlx::Result<Vec<Hit>> {
        let stores: Vec<&str> = ranked.iter().map(|((s, _, _), _)| &**s).collect();
        let files: Vec<&str> = ranked.iter().map(|((_, f, _), _)| &**f).collect();
        let idxs: Vec<i32> = ranked.iter().map(|((_, _, i), _)| *i).collect();
        let rows: Vec<(String, String, i32, String, Option<String>)> = sqlx::query_as(
            "SELECT c.vector_store_id, c.file_id, c.idx, c.content, f.data->>'filename'
             FROM UNNEST($1::text[], $2::text[], $3::int[]) AS k(s, f, i)
             JOIN vector_store_chunks c ON c.vector_store_id = k.s AND c.file_id = k.f AND c.idx = k.i
             LEFT JOIN files f ON f.id = c.file_id",
        )
        .bind(&stores)
        .bind(&files)
        .bind(&idxs)
        .fetch_all(&self.db)
        .await?;
        let mut found: HashMap<(String, String, i32), (String, Option<String>)> = rows
            .into_iter()
            .map(|(s, f, i, text, name)| ((s, f, i), (text, name)))
            .collect();
        Ok(ranked
            .into_iter()
            .filter_map(|((s, f, i), score)| {
                let (text, name) = found.remove(&(s.to_string(), f.to_string(), i))?;
                Some(Hit {
                    vector_store_id: s.to_string(),
                    file_id: f.to_string(),
                    filename: name.unwrap_or_default(),
                    score,
                    text,
                })
            })
            .collect())
    }
}

/// Blends the legs: the weighted mean of each chunk's scores, each already in 0..1 (BM25 over
/// the query's best possible, cosine with negatives as 0); a chunk one leg did not find gets 0
/// from it. The result is in 0..1 and means the same in every search, so a `score_threshold`
/// does too.
fn fuse(
    text: &[(ChunkKey, f64)],
    near: &[(ChunkKey, f32)],
    weights: Weights,
) -> Vec<(ChunkKey, f64)> {
    let total = weights.text + weights.embedding;
    if total <= 0.0 {
        return vec![];
    }
    let mut fused: HashMap<ChunkKey, f64> = HashMap::new();
    if weights.text > 0.0 {
        for (key, score) in text {
            *fused.entry(key.clone()).or_insert(0.0) += weights.text * score.clamp(0.0, 1.0);
        }
    }
    if weights.embedding > 0.0 {
        for (key, score) in near.iter().filter(|(_, s)| *s > 0.0) {
            *fused.entry(key.clone()).or_insert(0.0) +=
                weights.embedding * f64::from(*score).clamp(0.0, 1.0);
        }
    }
    fused
        .into_iter()
        .map(|(k, s)| (k, (s / total).clamp(0.0, 1.0)))
        .collect()
}

/// A file's chunks in order, as indexed.
pub async fn file_content(
    db: &PgPool,
    vector_store_id: &str,
    file_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT content FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2 ORDER BY idx",
    )
    .bind(vector_store_id)
    .bind(file_id)
    .fetch_all(db)
    .await
}

/// The text a search result shows the model or a client.
pub fn snippet(hit: &Hit) -> Value {
    serde_json::json!({"type": "text", "text": hit.text})
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(n: i32) -> ChunkKey {
        (Arc::from("vs"), Arc::from("f"), n)
    }

    #[test]
    fn fusion_scores_follow_the_weights_and_stay_in_0_to_1() {
        let text = vec![(key(1), 0.9), (key(2), 0.3), (key(3), 0.1)];
        let near = vec![(key(3), 0.9), (key(2), 0.5), (key(4), 0.1)];
        let order = |w: Weights| {
            let mut f = fuse(&text, &near, w);
            assert!(f.iter().all(|(_, s)| (0.0..=1.0).contains(s)), "{f:?}");
            f.sort_by(|a, b| b.1.total_cmp(&a.1));
            f.into_iter().map(|(k, _)| k.2).collect::<Vec<_>>()
        };
        assert_eq!(
            order(Weights {
                text: 1.0,
                embedding: 0.0
            }),
            vec![1, 2, 3]
        );
        assert_eq!(
            order(Weights {
                text: 0.0,
                embedding: 1.0
            })[..2],
            [3, 2]
        );
        assert_eq!(
            order(Weights {
                text: 0.2,
                embedding: 0.8
            })[0],
            3
        );
        assert_eq!(
            order(Weights {
                text: 0.8,
                embedding: 0.2
            })[0],
            1
        );
    }
}
