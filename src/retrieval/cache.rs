//! This replica's copy of something per store (the keyword index, the vectors), tagged with
//! the store's `version` (moved on by every chunk written or removed, on any replica). A search
//! reads the versions first and brings a stale copy up to date: from the files changed since
//! (the `vector_store_changes` log) when the log still covers them, else whole.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// A copy of a store's data as of a version.
pub trait Versioned {
    fn version(&self) -> i64;
}

pub struct StoreCache<T> {
    stores: Arc<Mutex<HashMap<String, Arc<T>>>>,
    /// One load at a time: searches arriving while a store is read wait for that copy
    /// rather than each reading it again.
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl<T> Clone for StoreCache<T> {
    fn clone(&self) -> Self {
        Self {
            stores: self.stores.clone(),
            loading: self.loading.clone(),
        }
    }
}

impl<T> Default for StoreCache<T> {
    fn default() -> Self {
        Self {
            stores: Arc::default(),
            loading: Arc::default(),
        }
    }
}

impl<T: Versioned> StoreCache<T> {
    /// The store's copy as of `version` or newer: the one held, or what `load` makes from
    /// the one held (stale, or none).
    pub async fn current<F, Fut>(&self, id: &str, version: i64, load: F) -> sqlx::Result<Arc<T>>
    where
        F: FnOnce(Option<Arc<T>>) -> Fut,
        Fut: Future<Output = sqlx::Result<T>>,
    {
        if let Some(t) = self.fresh(id, version) {
            return Ok(t);
        }
        let _one = self.loading.lock().await;
        if let Some(t) = self.fresh(id, version) {
            return Ok(t);
        }
        let held = self.get(id);
        let loaded = Arc::new(load(held).await?);
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let keep = match stores.get(id) {
            Some(other) if other.version() > loaded.version() => other.clone(),
            _ => {
                stores.insert(id.to_string(), loaded.clone());
                loaded
            }
        };
        Ok(keep)
    }

    fn get(&self, id: &str) -> Option<Arc<T>> {
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn fresh(&self, id: &str, version: i64) -> Option<Arc<T>> {
        self.get(id).filter(|t| t.version() >= version)
    }
}

/// Where a load starts from, read in the caller's snapshot: the store's version, and the
/// files changed since the held copy's version (None: read the store whole).
pub struct Snapshot {
    pub version: i64,
    pub changed: Option<HashSet<String>>,
}

/// A REPEATABLE READ, read-only transaction on `db` and the store's [`snapshot`] taken in it:
/// what a load reads next in the same transaction is the store as of that version.
pub async fn begin(
    db: &PgPool,
    vector_store_id: &str,
    held: Option<i64>,
) -> sqlx::Result<(Transaction<'static, Postgres>, Snapshot)> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let snapshot = snapshot(&mut tx, vector_store_id, held).await?;
    Ok((tx, snapshot))
}

/// The store's version and, when `held` (a version) is still covered by the change log, the
/// files added, removed or re-indexed after it. Run inside a REPEATABLE READ transaction, with
/// the chunks read after it in the same one.
pub async fn snapshot(
    tx: &mut PgConnection,
    vector_store_id: &str,
    held: Option<i64>,
) -> sqlx::Result<Snapshot> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT version, changes_since FROM vector_store_stats WHERE vector_store_id = $1",
    )
    .bind(vector_store_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((version, since)) = row else {
        return Ok(Snapshot {
            version: 0,
            changed: None,
        });
    };
    let changed = match held {
        Some(held) if held >= since => Some(
            sqlx::query_scalar(
                "SELECT DISTINCT file_id FROM vector_store_changes
                 WHERE vector_store_id = $1 AND version > $2",
            )
            .bind(vector_store_id)
            .bind(held)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect(),
        ),
        _ => None,
    };
    Ok(Snapshot { version, changed })
}

/// The condition reading only the changed files (`$2`), or every file: two statements rather
/// than `($2 IS NULL OR ...)`, which a generic plan cannot narrow with the primary key.
pub fn only_files(changed: bool) -> &'static str {
    if changed {
        "c.file_id = ANY($2)"
    } else {
        "$2::text[] IS NULL"
    }
}
