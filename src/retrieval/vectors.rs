//! The vector leg: each store's chunk embeddings held in this replica's memory and searched
//! exactly (a dot product with every vector of the searched stores). A copy is tagged with the
//! store's `version` (moved on by every chunk written or removed, on any replica); each
//! search reads the versions first and brings what changed up to date ([`super::cache`]), so
//! no replica serves stale results.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;

use super::cache::{self, StoreCache, Versioned};

/// A chunk: (store, file, index in the file).
pub type ChunkKey = (Arc<str>, Arc<str>, i32);

/// One store's vectors, all of one length, back to back.
pub struct StoreVectors {
    version: i64,
    dimensions: usize,
    files: Vec<Arc<str>>,
    /// Per vector: its file (index into `files`) and chunk index.
    chunks: Vec<(u32, i32)>,
    data: Vec<f32>,
}

/// How a store's vectors were made, as its stats row records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Embedding {
    pub model: String,
    pub dimensions: u32,
}

/// A searched store's version and embedding model (None: nothing embedded yet).
pub struct StoreState {
    pub vector_store_id: String,
    pub version: i64,
    pub embedding: Option<Embedding>,
}

impl Versioned for StoreVectors {
    fn version(&self) -> i64 {
        self.version
    }
}

pub type VectorCache = StoreCache<StoreVectors>;

/// The version and embedding model of each store that has chunks.
pub async fn states(db: &PgPool, vector_store_ids: &[String]) -> sqlx::Result<Vec<StoreState>> {
    let rows: Vec<(String, i64, Option<String>, Option<i32>)> = sqlx::query_as(
        "SELECT vector_store_id, version, embedding_model, embedding_dimensions
         FROM vector_store_stats WHERE vector_store_id = ANY($1)",
    )
    .bind(vector_store_ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(vector_store_id, version, model, dims)| StoreState {
            vector_store_id,
            version,
            embedding: model.map(|model| Embedding {
                model,
                dimensions: dims.unwrap_or(0).max(0) as u32,
            }),
        })
        .collect())
}

impl StoreCache<StoreVectors> {
    /// The best `depth` chunks of `stores` by cosine with `query` (a unit vector), best
    /// first, only of `files` when given. Stores whose copy is older than `state.version` are
    /// reloaded first.
    pub async fn nearest(
        &self,
        db: &PgPool,
        stores: &[&StoreState],
        query: &[f32],
        files: Option<&HashSet<String>>,
        depth: usize,
    ) -> sqlx::Result<Vec<(ChunkKey, f32)>> {
        let mut best: Vec<(ChunkKey, f32)> = vec![];
        for state in stores {
            let id = &state.vector_store_id;
            let vectors = self
                .current(id, state.version, |held| load(db, id, held))
                .await?;
            if vectors.dimensions != query.len() {
                continue;
            }
            let store: Arc<str> = Arc::from(state.vector_store_id.as_str());
            let allowed: Option<Vec<bool>> =
                files.map(|f| vectors.files.iter().map(|id| f.contains(&**id)).collect());
            let mut scored: Vec<(usize, f32)> = vectors
                .data
                .chunks_exact(vectors.dimensions)
                .enumerate()
                .filter(|(i, _)| {
                    allowed
                        .as_ref()
                        .is_none_or(|a| a[vectors.chunks[*i].0 as usize])
                })
                .map(|(i, v)| (i, dot(v, query)))
                .collect();
            top(&mut scored, depth);
            best.extend(scored.into_iter().map(|(i, score)| {
                let (file, idx) = vectors.chunks[i];
                (
                    (store.clone(), vectors.files[file as usize].clone(), idx),
                    score,
                )
            }));
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        best.truncate(depth);
        Ok(best)
    }
}

/// A store's vectors as of its version, read in one snapshot: the files changed since `held`
/// re-read and the rest kept from it, or the whole store.
async fn load(
    db: &PgPool,
    vector_store_id: &str,
    held: Option<Arc<StoreVectors>>,
) -> sqlx::Result<StoreVectors> {
    let (mut tx, snapshot) =
        cache::begin(db, vector_store_id, held.as_ref().map(|h| h.version)).await?;
    let base = held.zip(snapshot.changed);
    let only: Option<Vec<&String>> = base.as_ref().map(|(_, changed)| changed.iter().collect());
    let sql = format!(
        "SELECT c.file_id, c.idx, c.embedding FROM vector_store_chunks c
         WHERE c.vector_store_id = $1 AND c.embedding IS NOT NULL AND {}
         ORDER BY c.file_id, c.idx",
        cache::only_files(only.is_some())
    );
    let rows: Vec<(String, i32, Vec<f32>)> = sqlx::query_as(&sql)
        .bind(vector_store_id)
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut out = StoreVectors {
        version: snapshot.version,
        dimensions: 0,
        files: vec![],
        chunks: vec![],
        data: vec![],
    };
    if let Some((held, changed)) = &base {
        out.keep(held, changed);
    }
    if out.chunks.is_empty() {
        out.dimensions = rows.first().map_or(0, |r| r.2.len());
    }
    out.chunks.reserve(rows.len());
    out.data.reserve(rows.len() * out.dimensions);
    for (file_id, idx, embedding) in rows {
        if embedding.len() != out.dimensions {
            continue;
        }
        if out.files.last().is_none_or(|f| **f != *file_id) {
            out.files.push(Arc::from(file_id.as_str()));
        }
        out.chunks.push(((out.files.len() - 1) as u32, idx));
        out.data.extend_from_slice(&embedding);
    }
    tracing::debug!(
        vector_store_id,
        chunks = out.chunks.len(),
        changed_files = base.as_ref().map(|(_, c)| c.len()),
        "vectors loaded"
    );
    Ok(out)
}

impl StoreVectors {
    /// Takes `held`'s vectors of the files not in `changed`.
    fn keep(&mut self, held: &StoreVectors, changed: &HashSet<String>) {
        self.dimensions = held.dimensions;
        let mut renumbered: Vec<Option<u32>> = Vec::with_capacity(held.files.len());
        for file in &held.files {
            renumbered.push((!changed.contains(&**file)).then(|| {
                self.files.push(file.clone());
                (self.files.len() - 1) as u32
            }));
        }
        let vectors = held.data.chunks_exact(held.dimensions.max(1));
        for (&(file, idx), vector) in held.chunks.iter().zip(vectors) {
            if let Some(file) = renumbered[file as usize] {
                self.chunks.push((file, idx));
                self.data.extend_from_slice(vector);
            }
        }
    }
}

/// Eight running sums, so the compiler can keep them in SIMD registers (a single sum must be
/// added in order, one lane at a time): 100k vectors of 384 take a few ms instead of tens.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Keeps the `n` highest scores, best first.
fn top(scored: &mut Vec<(usize, f32)>, n: usize) {
    if scored.len() > n && n > 0 {
        scored.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(n);
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_sums_every_product() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..19).map(|i| (i % 3) as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
    }

    #[test]
    fn top_keeps_the_best_in_order() {
        let mut s = vec![(0, 0.1), (1, 0.9), (2, 0.5), (3, 0.7)];
        top(&mut s, 2);
        assert_eq!(s, vec![(1, 0.9), (3, 0.7)]);
    }

    #[test]
    fn keeping_drops_the_changed_files_vectors_only() {
        let held = StoreVectors {
            version: 1,
            dimensions: 2,
            files: vec![Arc::from("a"), Arc::from("b"), Arc::from("c")],
            chunks: vec![(0, 0), (1, 0), (1, 1), (2, 0)],
            data: vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.6, 0.8],
        };
        let mut out = StoreVectors {
            version: 2,
            dimensions: 0,
            files: vec![],
            chunks: vec![],
            data: vec![],
        };
        out.keep(&held, &["b".to_string()].into());
        assert_eq!(out.dimensions, 2);
        assert_eq!(out.files, vec![Arc::from("a"), Arc::from("c")]);
        assert_eq!(out.chunks, vec![(0, 0), (1, 0)]);
        assert_eq!(out.data, vec![1.0, 0.0, 0.6, 0.8]);
    }
}
