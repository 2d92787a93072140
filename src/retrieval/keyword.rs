//! The keyword leg: BM25 over each store's inverted index (lexeme -> chunks with the lexeme's
//! count), held in this replica's memory like the vectors ([`super::vectors`]) and checked
//! against the store's `version` on every search, so no replica ranks stale text. The index is
//! built from the chunks' tsvectors (English stemming and stop words, as they were analysed),
//! so it scores exactly what `bm25_exact.sql` (the statement it replaced) scores, but a query
//! costs one pass over its terms' postings instead of reading every matching chunk's tsvector:
//! milliseconds at 100k chunks where the statement took seconds for common words.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use sqlx::PgPool;

use super::vectors::{ChunkKey, StoreState};

/// BM25's term-frequency saturation and length normalisation (the usual values).
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Query lexemes beyond this many are ignored.
const MAX_TERMS: i64 = 64;

/// One store's inverted index, as of `version`.
struct StoreTerms {
    version: i64,
    files: Vec<Arc<str>>,
    /// Per chunk: its file (index into `files`) and chunk index, in (file, index) order.
    chunks: Vec<(u32, i32)>,
    /// Per chunk: its length in tokens (the `tokens` column BM25 normalises by).
    lengths: Vec<u32>,
    tokens: u64,
    /// Lexeme -> its postings, `postings[start..end]`.
    terms: HashMap<Box<str>, (u32, u32)>,
    /// (chunk, occurrences in the chunk), grouped by lexeme.
    postings: Vec<(u32, u16)>,
}

impl StoreTerms {
    fn postings(&self, lexeme: &str) -> &[(u32, u16)] {
        self.terms
            .get(lexeme)
            .map_or(&[], |&(s, e)| &self.postings[s as usize..e as usize])
    }
}

/// This replica's copy of the searched stores' inverted indexes.
#[derive(Clone, Default)]
pub struct TermCache {
    stores: Arc<Mutex<HashMap<String, Arc<StoreTerms>>>>,
    /// One load at a time: searches arriving while a store is read wait for that copy
    /// rather than each reading it again.
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl TermCache {
    /// The best `depth` chunks of the stores for `query` by BM25, best first, only of `files`
    /// when given (the filter applies before ranking, so it never empties a page). A score is
    /// BM25 divided by the most any chunk could score for the query (every query term, each
    /// saturated), so it is in 0..1 and means the same whatever else the store holds. The
    /// term statistics (chunks, their mean length, chunks per lexeme) are over the searched
    /// stores together.
    pub async fn best(
        &self,
        db: &PgPool,
        stores: &[StoreState],
        query: &str,
        files: Option<&HashSet<String>>,
        depth: usize,
    ) -> sqlx::Result<Vec<(ChunkKey, f64)>> {
        if stores.is_empty() || depth == 0 {
            return Ok(vec![]);
        }
        let lexemes: Vec<String> =
            sqlx::query_scalar("SELECT lexeme FROM unnest(to_tsvector('english', $1)) LIMIT $2")
                .bind(query)
                .bind(MAX_TERMS)
                .fetch_all(db)
                .await?;
        let mut indexes = Vec::with_capacity(stores.len());
        for state in stores {
            indexes.push((state, self.current(db, state).await?));
        }
        Ok(rank(&indexes, &lexemes, files, depth))
    }

    async fn current(&self, db: &PgPool, state: &StoreState) -> sqlx::Result<Arc<StoreTerms>> {
        if let Some(t) = self.fresh(state) {
            return Ok(t);
        }
        let _one = self.loading.lock().await;
        if let Some(t) = self.fresh(state) {
            return Ok(t);
        }
        let loaded = Arc::new(load(db, &state.vector_store_id).await?);
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let keep = match stores.get(&state.vector_store_id) {
            Some(other) if other.version > loaded.version => other.clone(),
            _ => {
                stores.insert(state.vector_store_id.clone(), loaded.clone());
                loaded
            }
        };
        Ok(keep)
    }

    fn fresh(&self, state: &StoreState) -> Option<Arc<StoreTerms>> {
        let stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        stores
            .get(&state.vector_store_id)
            .filter(|t| t.version >= state.version)
            .cloned()
    }
}

/// BM25 over the indexes, as `bm25_exact.sql` computes it: for each chunk holding a query
/// lexeme, the sum over those lexemes of idf * tf (k1 + 1) / (tf + k1 (1 - b + b len / avglen)).
fn rank(
    indexes: &[(&StoreState, Arc<StoreTerms>)],
    lexemes: &[String],
    files: Option<&HashSet<String>>,
    depth: usize,
) -> Vec<(ChunkKey, f64)> {
    let n: u64 = indexes.iter().map(|(_, t)| t.chunks.len() as u64).sum();
    let tokens: u64 = indexes.iter().map(|(_, t)| t.tokens).sum();
    let avglen = tokens.max(1) as f64 / n.max(1) as f64;
    let n = n as f64;
    let weighted: Vec<(&str, f64)> = lexemes
        .iter()
        .filter_map(|lexeme| {
            let df: usize = indexes.iter().map(|(_, t)| t.postings(lexeme).len()).sum();
            (df > 0).then(|| {
                let df = df as f64;
                (lexeme.as_str(), (1.0 + (n - df + 0.5) / (df + 0.5)).ln())
            })
        })
        .collect();
    let most = weighted.iter().map(|(_, idf)| idf).sum::<f64>() * (K1 + 1.0);
    if weighted.is_empty() || most == 0.0 {
        return vec![];
    }
    let mut found: Vec<(ChunkKey, f64)> = vec![];
    for (state, index) in indexes {
        let allowed: Option<Vec<bool>> =
            files.map(|f| index.files.iter().map(|id| f.contains(&**id)).collect());
        let norms: Vec<f64> = index
            .lengths
            .iter()
            .map(|&len| K1 * (1.0 - B + B * f64::from(len) / avglen))
            .collect();
        let mut scores = vec![0.0f64; index.chunks.len()];
        let mut touched: Vec<u32> = vec![];
        for (lexeme, idf) in &weighted {
            for &(chunk, tf) in index.postings(lexeme) {
                let c = chunk as usize;
                if let Some(a) = &allowed {
                    if !a[index.chunks[c].0 as usize] {
                        continue;
                    }
                }
                let tf = f64::from(tf);
                if scores[c] == 0.0 {
                    touched.push(chunk);
                }
                scores[c] += idf * (tf * (K1 + 1.0)) / (tf + norms[c]);
            }
        }
        let mut scored: Vec<(u32, f64)> = touched
            .into_iter()
            .map(|c| (c, scores[c as usize] / most))
            .collect();
        // Chunks are in (file, index) order, so ties keep the statement's order.
        let by_score = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > depth {
            scored.select_nth_unstable_by(depth - 1, by_score);
            scored.truncate(depth);
        }
        let store: Arc<str> = Arc::from(state.vector_store_id.as_str());
        found.extend(scored.into_iter().map(|(c, score)| {
            let (file, idx) = index.chunks[c as usize];
            (
                (store.clone(), index.files[file as usize].clone(), idx),
                score,
            )
        }));
    }
    found.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    found.truncate(depth);
    found
}

/// A store's inverted index and the version it is as of, read in one snapshot.
async fn load(db: &PgPool, vector_store_id: &str) -> sqlx::Result<StoreTerms> {
    let started = std::time::Instant::now();
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM vector_store_stats WHERE vector_store_id = $1")
            .bind(vector_store_id)
            .fetch_optional(&mut *tx)
            .await?;
    let mut out = StoreTerms {
        version: version.unwrap_or(0),
        files: vec![],
        chunks: vec![],
        lengths: vec![],
        tokens: 0,
        terms: HashMap::new(),
        postings: vec![],
    };
    // Postings arrive chunk by chunk; they are grouped by lexeme after (a counting sort).
    let mut term_of: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = vec![];
    let mut raw: Vec<(u32, u32, u16)> = vec![];
    {
        let mut rows = sqlx::query_as::<_, (String, i32, i32, Vec<String>, Vec<i32>)>(
            "SELECT c.file_id, c.idx, c.tokens, u.lexemes, u.tfs
             FROM vector_store_chunks c
             CROSS JOIN LATERAL (
                 SELECT coalesce(array_agg(x.lexeme), '{}') AS lexemes,
                        coalesce(array_agg(coalesce(array_length(x.positions, 1), 1)), '{}') AS tfs
                 FROM unnest(c.tsv) x
             ) u
             WHERE c.vector_store_id = $1
             ORDER BY c.file_id, c.idx",
        )
        .bind(vector_store_id)
        .fetch(&mut *tx);
        while let Some((file_id, idx, tokens, lexemes, tfs)) = rows.try_next().await? {
            if out.files.last().is_none_or(|f| **f != *file_id) {
                out.files.push(Arc::from(file_id.as_str()));
            }
            let chunk = out.chunks.len() as u32;
            out.chunks.push(((out.files.len() - 1) as u32, idx));
            let tokens = tokens.max(0) as u32;
            out.lengths.push(tokens);
            out.tokens += u64::from(tokens);
            for (lexeme, tf) in lexemes.into_iter().zip(tfs) {
                let next = names.len() as u32;
                let term = *term_of.entry(lexeme).or_insert_with_key(|l| {
                    names.push(l.clone());
                    next
                });
                raw.push((term, chunk, tf.clamp(1, i32::from(u16::MAX)) as u16));
            }
        }
    }
    tx.commit().await?;
    drop(term_of);
    let mut starts = vec![0u32; names.len() + 1];
    for &(term, _, _) in &raw {
        starts[term as usize + 1] += 1;
    }
    for t in 0..names.len() {
        starts[t + 1] += starts[t];
    }
    let mut next = starts.clone();
    out.postings = vec![(0, 0); raw.len()];
    // Chunks were read in order, so each lexeme's postings stay in chunk order.
    for (term, chunk, tf) in raw {
        let at = &mut next[term as usize];
        out.postings[*at as usize] = (chunk, tf);
        *at += 1;
    }
    out.terms = names
        .into_iter()
        .enumerate()
        .map(|(t, name)| (name.into_boxed_str(), (starts[t], starts[t + 1])))
        .collect();
    tracing::debug!(
        vector_store_id,
        chunks = out.chunks.len(),
        postings = out.postings.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "keyword index loaded"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file name, its lexemes with their counts, its length.
    type Doc<'a> = (&'a str, &'a [(&'a str, u16)], u32);

    fn store(docs: &[Doc]) -> StoreTerms {
        let mut names: Vec<&str> = docs
            .iter()
            .flat_map(|(_, t, _)| t.iter().map(|(l, _)| *l))
            .collect();
        names.sort();
        names.dedup();
        let mut terms = HashMap::new();
        let mut postings = vec![];
        for name in names {
            let start = postings.len() as u32;
            for (c, (_, t, _)) in docs.iter().enumerate() {
                if let Some((_, tf)) = t.iter().find(|(l, _)| *l == name) {
                    postings.push((c as u32, *tf));
                }
            }
            terms.insert(Box::from(name), (start, postings.len() as u32));
        }
        StoreTerms {
            version: 1,
            files: docs.iter().map(|(f, _, _)| Arc::from(*f)).collect(),
            chunks: (0..docs.len() as u32).map(|c| (c, 0)).collect(),
            lengths: docs.iter().map(|(_, _, len)| *len).collect(),
            tokens: docs.iter().map(|(_, _, len)| u64::from(*len)).sum(),
            terms,
            postings,
        }
    }

    fn state() -> StoreState {
        StoreState {
            vector_store_id: "vs".into(),
            version: 1,
            embedding: None,
        }
    }

    #[test]
    fn a_rare_term_outranks_a_common_one_and_scores_stay_in_0_to_1() {
        let index = Arc::new(store(&[
            ("a", &[("common", 3)], 10),
            ("b", &[("common", 1), ("rare", 1)], 10),
            ("c", &[("common", 2)], 10),
            ("d", &[("other", 1)], 10),
        ]));
        let s = state();
        let lexemes = vec!["common".to_string(), "rare".to_string()];
        let ranked = rank(&[(&s, index.clone())], &lexemes, None, 10);
        let order: Vec<&str> = ranked.iter().map(|(k, _)| &*k.1).collect();
        assert_eq!(order, ["b", "a", "c"]);
        assert!(ranked.iter().all(|(_, s)| (0.0..=1.0).contains(s)));
        let only: HashSet<String> = ["c".to_string()].into();
        let filtered = rank(&[(&s, index)], &lexemes, Some(&only), 10);
        assert_eq!(filtered.len(), 1);
        assert_eq!(&*filtered[0].0 .1, "c");
    }
}
