//! file_search's retrieval: a vector store's files are read ([`extract`]) and cut into
//! overlapping chunks ([`chunk`]) when they are added, and a query finds the best chunks by
//! Postgres full-text search (English stemming, ranked by cover density). No embedding model is needed, so it works with any
//! upstream; the price is that it matches words, not meanings.

mod chunk;
mod extract;

use serde_json::Value;
use sqlx::PgPool;

use crate::blobs::{BlobStore, Key};
use crate::objects::FileObject;
use crate::sandbox::SandboxManager;

pub use chunk::Chunking;
pub use extract::text_of;

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
    /// In 0..=1, higher is better.
    pub score: f64,
    pub text: String,
}

/// Terms of a query that go into the full-text query; more are ignored.
const MAX_QUERY_TERMS: usize = 32;

/// Indexes one file of a store; the `vector_store_files` row (vector_store_id, file.id) must
/// exist already (the chunks reference it). `Ok(Ok(usage_bytes))` when indexed,
/// `Ok(Err(failure))` when the file cannot be (not text).
pub async fn index_file(
    db: &PgPool,
    blobs: &BlobStore,
    sandbox: &SandboxManager,
    vector_store_id: &str,
    file: &FileObject,
    chunking: &Chunking,
) -> sqlx::Result<Result<u64, IndexFailure>> {
    let bytes = match blobs.read(&Key::file(&file.id)).await {
        Ok(bytes) => bytes.into(),
        Err(_) => {
            return Ok(Err(IndexFailure {
                code: "invalid_file",
                message: format!("The file {} could not be read.", file.id),
            }))
        }
    };
    let text = match extract::text_of(sandbox, &file.filename, bytes).await {
        Ok(text) => text,
        Err(failure) => return Ok(Err(failure)),
    };
    let chunks = chunking.split(&text);
    let indices: Vec<i32> = (0..chunks.len() as i32).collect();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2")
        .bind(vector_store_id)
        .bind(&file.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO vector_store_chunks (vector_store_id, file_id, idx, content)
         SELECT $1, $2, idx, content FROM UNNEST($3::int[], $4::text[]) AS c(idx, content)",
    )
    .bind(vector_store_id)
    .bind(&file.id)
    .bind(&indices)
    .bind(&chunks)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(text.len() as u64))
}

/// The best chunks for `query` across the stores, best first, at most `max_results`, each
/// scoring at least `score_threshold`.
pub async fn search(
    db: &PgPool,
    vector_store_ids: &[String],
    query: &str,
    max_results: usize,
    score_threshold: f64,
) -> sqlx::Result<Vec<Hit>> {
    let Some(tsquery) = any_term(query) else {
        return Ok(vec![]);
    };
    // Normalization 32 maps a rank r to r / (r + 1), into 0..1.
    let rows: Vec<(String, String, Option<String>, f32, String)> = sqlx::query_as(
        "SELECT c.vector_store_id, c.file_id, f.data->>'filename', ts_rank_cd(c.tsv, q, 32) AS score, c.content
         FROM vector_store_chunks c
         CROSS JOIN to_tsquery('english', $2) AS q
         LEFT JOIN files f ON f.id = c.file_id
         WHERE c.vector_store_id = ANY($1) AND c.tsv @@ q
         ORDER BY score DESC, c.vector_store_id, c.file_id, c.idx
         LIMIT $3",
    )
    .bind(vector_store_ids)
    .bind(&tsquery)
    .bind(max_results as i64)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(vector_store_id, file_id, filename, score, text)| Hit {
            vector_store_id,
            file_id,
            filename: filename.unwrap_or_default(),
            score: f64::from(score),
            text,
        })
        .filter(|hit| hit.score >= score_threshold)
        .collect())
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

/// An OR of the query's words as a tsquery, or `None` without any. Words are letters and
/// digits only, so nothing in a query can be read as tsquery syntax.
fn any_term(query: &str) -> Option<String> {
    let mut terms: Vec<String> = vec![];
    for word in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_QUERY_TERMS {
            break;
        }
    }
    (!terms.is_empty()).then(|| terms.join(" | "))
}

/// The text a search result shows the model or a client.
pub fn snippet(hit: &Hit) -> Value {
    serde_json::json!({"type": "text", "text": hit.text})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_becomes_an_or_of_its_words_and_nothing_else() {
        assert_eq!(
            any_term("What's the Q3 revenue? (revenue!)").as_deref(),
            Some("what | s | the | q3 | revenue")
        );
        assert_eq!(any_term("&|!():*'\""), None);
        assert_eq!(any_term("  "), None);
    }
}
