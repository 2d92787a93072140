//! Where checkpoints are kept: the blob in the blob store, the row in Postgres
//! (`sandbox_checkpoints`: which blob, its manifest, when the thread last used it). Shared by
//! every replica, so a thread's next session restores wherever it starts. Rows older than
//! `ASSISTD_SANDBOX_RETAIN_SECS` are swept with their blobs, and deleting the thread deletes
//! both.
//!
//! A thread's checkpoint lives under one of two keys, `checkpoints/<thread_id>` and
//! `checkpoints/<thread_id>.alt`; the next one is written under the other, the row switched to
//! it, and the old blob removed in the background. Replacing a 60 MB blob in place cost
//! 50-230 ms on a local ext4 disk (that rename frees the old file's blocks and flushes the new
//! file's), writing beside it nothing; the two names are fixed, so a thread's blobs are found
//! without its row (which deleting the thread may already have removed).

use std::time::Duration;

use sqlx::PgPool;

use super::{BlobStream, Manifest};
use crate::blobs::{BlobStore, BlobWriter, Key};

#[derive(Clone, Debug)]
pub struct Checkpoints {
    db: PgPool,
    blobs: BlobStore,
    retain: Duration,
}

/// A checkpoint being written: it becomes the thread's at [`Checkpoints::commit`], and
/// nothing if it is dropped or aborted.
pub(crate) struct Draft {
    pub out: BlobWriter,
    /// The rest of the box (a whole-box checkpoint), under the main key and `.box`.
    pub box_out: Option<BlobWriter>,
    key: Key,
}

/// The suffix of a checkpoint's second blob (see `whole_box`).
const BOX: &str = ".box";

impl Draft {
    pub async fn abort(self) {
        for out in std::iter::once(self.out).chain(self.box_out) {
            if let Err(e) = out.abort().await {
                tracing::warn!(error = %e, "dropping a half-written checkpoint");
            }
        }
    }
}

impl Checkpoints {
    /// `retain`: how long after its last use a checkpoint is kept.
    pub fn new(db: PgPool, blobs: BlobStore, retain: Duration) -> Checkpoints {
        Checkpoints { db, blobs, retain }
    }

    /// The thread's two keys.
    fn keys(thread_id: &str) -> [Key; 2] {
        [
            Key::checkpoint(thread_id),
            Key::checkpoint_alternate(thread_id),
        ]
    }

    /// Which of the thread's keys the row names.
    fn key_named(thread_id: &str, blob_key: &str) -> Key {
        let [first, second] = Self::keys(thread_id);
        if blob_key == second.to_string() {
            second
        } else {
            first
        }
    }

    /// Starts the thread's next checkpoint, under the key its current one does not use (with a
    /// second blob for the rest of the box when `whole_box`).
    pub(crate) async fn begin(&self, thread_id: &str, whole_box: bool) -> anyhow::Result<Draft> {
        let current: Option<String> =
            sqlx::query_scalar("SELECT blob_key FROM sandbox_checkpoints WHERE thread_id = $1")
                .bind(thread_id)
                .fetch_optional(&self.db)
                .await?;
        let [first, second] = Self::keys(thread_id);
        let key = match current {
            Some(current) if current == first.to_string() => second,
            _ => first,
        };
        Ok(Draft {
            out: self.blobs.writer(&key),
            box_out: whole_box.then(|| self.blobs.writer(&key.beside(BOX))),
            key,
        })
    }

    /// Makes the draft the thread's checkpoint, with its row; returns its size. A thread
    /// deleted meanwhile keeps none.
    pub(crate) async fn commit(
        &self,
        thread_id: &str,
        draft: Draft,
        manifest: &Manifest,
    ) -> anyhow::Result<u64> {
        let Draft { out, box_out, key } = draft;
        let mut size = out.finish().await?;
        if let Some(box_out) = box_out {
            size += box_out.finish().await?;
        }
        // A paused E2B sandbox is checkpointed as it pauses.
        let saved = sqlx::query(
            "INSERT INTO sandbox_checkpoints (thread_id, blob_key, size, metadata) \
             SELECT $1, $2, $3, $4 \
             WHERE EXISTS (SELECT 1 FROM threads WHERE id = $1) \
                OR EXISTS (SELECT 1 FROM containers WHERE id = $1 \
                           AND status IN ('running', 'paused')) \
             ON CONFLICT (thread_id) DO UPDATE SET blob_key = $2, size = $3, metadata = $4, \
             created_at = now(), last_used_at = now()",
        )
        .bind(thread_id)
        .bind(key.to_string())
        .bind(size as i64)
        .bind(sqlx::types::Json(manifest))
        .execute(&self.db)
        .await;
        match saved {
            // A session whose thread or container was deleted meanwhile (or whose container
            // expired) keeps no checkpoint.
            Ok(done) if done.rows_affected() == 0 => {
                self.remove_blobs(thread_id).await?;
                Ok(0)
            }
            Ok(_) => {
                let old = Self::keys(thread_id).into_iter().find(|k| *k != key);
                let blobs = self.blobs.clone();
                tokio::spawn(async move {
                    if let Some(old) = old {
                        for old in [old.beside(BOX), old] {
                            if let Err(e) = blobs.remove(&old).await {
                                tracing::warn!(key = %old, error = %e, "removing a replaced checkpoint");
                            }
                        }
                    }
                });
                Ok(size)
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                self.remove_blobs(thread_id).await?;
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The thread's checkpoint, if it has one: its manifest, size and blobs as streams (the
    /// second for the rest of the box, when it was kept).
    /// Marks it used, and no longer the session's end: the session restoring it may run code
    /// and then crash, and the next restore must not say nothing was lost.
    pub(crate) async fn load(
        &self,
        thread_id: &str,
    ) -> anyhow::Result<Option<(Manifest, u64, (BlobStream, Option<BlobStream>))>> {
        let found: Option<(String, sqlx::types::Json<Manifest>)> = sqlx::query_as(
            "UPDATE sandbox_checkpoints c SET last_used_at = now(), \
             metadata = c.metadata || '{\"at_end\": false}' \
             FROM (SELECT thread_id, metadata FROM sandbox_checkpoints \
                   WHERE thread_id = $1 FOR UPDATE) old \
             WHERE c.thread_id = old.thread_id RETURNING c.blob_key, old.metadata",
        )
        .bind(thread_id)
        .fetch_optional(&self.db)
        .await?;
        let Some((blob_key, sqlx::types::Json(manifest))) = found else {
            return Ok(None);
        };
        let key = Self::key_named(thread_id, &blob_key);
        let (mut size, blob) = self.blobs.stream(&key).await?;
        let box_blob = match manifest.whole_box {
            Some(_) => {
                let (box_size, box_blob) = self.blobs.stream(&key.beside(BOX)).await?;
                size += box_size;
                Some(box_blob)
            }
            None => None,
        };
        Ok(Some((manifest, size, (blob, box_blob))))
    }

    /// Copies the session's current checkpoint to `to` (and its second blob beside it),
    /// without marking it used; returns its manifest, or None when there is none. A snapshot.
    pub(crate) async fn copy_to(
        &self,
        thread_id: &str,
        to: &Key,
    ) -> anyhow::Result<Option<Manifest>> {
        let found: Option<(String, sqlx::types::Json<Manifest>)> = sqlx::query_as(
            "SELECT blob_key, metadata FROM sandbox_checkpoints WHERE thread_id = $1",
        )
        .bind(thread_id)
        .fetch_optional(&self.db)
        .await?;
        let Some((blob_key, sqlx::types::Json(manifest))) = found else {
            return Ok(None);
        };
        let key = Self::key_named(thread_id, &blob_key);
        self.blobs.copy(&key, to).await?;
        if manifest.whole_box.is_some() {
            self.blobs.copy(&key.beside(BOX), &to.beside(BOX)).await?;
        }
        Ok(Some(manifest))
    }

    /// Makes a copy of what [`Checkpoints::copy_to`] left at `from` the session's checkpoint,
    /// as taken at its end: a new sandbox begins from a snapshot this way.
    pub(crate) async fn adopt(
        &self,
        thread_id: &str,
        from: &Key,
        manifest: &Manifest,
    ) -> anyhow::Result<()> {
        let key = Key::checkpoint(thread_id);
        self.blobs.copy(from, &key).await?;
        if manifest.whole_box.is_some() {
            self.blobs.copy(&from.beside(BOX), &key.beside(BOX)).await?;
        }
        let mut manifest = manifest.clone();
        manifest.at_end = true;
        sqlx::query(
            "INSERT INTO sandbox_checkpoints (thread_id, blob_key, size, metadata) \
             VALUES ($1, $2, 0, $3) \
             ON CONFLICT (thread_id) DO UPDATE SET blob_key = $2, metadata = $3, \
             created_at = now(), last_used_at = now()",
        )
        .bind(thread_id)
        .bind(key.to_string())
        .bind(sqlx::types::Json(&manifest))
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Removes what [`Checkpoints::copy_to`] left at `key`.
    pub(crate) async fn remove_copy(&self, key: &Key) -> anyhow::Result<()> {
        self.blobs.remove(&key.beside(BOX)).await?;
        self.blobs.remove(key).await?;
        Ok(())
    }

    /// Marks the thread's checkpoint (if any) as used now: retention counts from the end of
    /// the last session that could have used it. `at_end`: the session ending now holds
    /// exactly what the checkpoint holds (nothing ran since it was taken or restored).
    pub async fn touch(&self, thread_id: &str, at_end: bool) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE sandbox_checkpoints SET last_used_at = now(), \
             metadata = CASE WHEN $2 THEN metadata || '{\"at_end\": true}' ELSE metadata END \
             WHERE thread_id = $1",
        )
        .bind(thread_id)
        .bind(at_end)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Deletes the thread's checkpoint (the thread is being deleted; its row may already be
    /// gone with it, the blob keys do not depend on the row).
    pub async fn forget(&self, thread_id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sandbox_checkpoints WHERE thread_id = $1")
            .bind(thread_id)
            .execute(&self.db)
            .await?;
        self.remove_blobs(thread_id).await
    }

    /// Deletes the checkpoints not used within the retention period; returns how many. A
    /// paused sandbox's checkpoint is the sandbox: it stays while the sandbox is paused.
    pub async fn sweep(&self) -> anyhow::Result<usize> {
        let threads: Vec<String> = sqlx::query_scalar(
            "DELETE FROM sandbox_checkpoints k \
             WHERE last_used_at < now() - make_interval(secs => $1) \
               AND NOT EXISTS (SELECT 1 FROM containers c \
                               WHERE c.id = k.thread_id AND c.status = 'paused') \
             RETURNING thread_id",
        )
        .bind(self.retain.as_secs_f64())
        .fetch_all(&self.db)
        .await?;
        for thread_id in &threads {
            self.remove_blobs(thread_id).await?;
        }
        Ok(threads.len())
    }

    async fn remove_blobs(&self, thread_id: &str) -> anyhow::Result<()> {
        for key in Self::keys(thread_id) {
            self.blobs.remove(&key.beside(BOX)).await?;
            self.blobs.remove(&key).await?;
        }
        Ok(())
    }

    pub fn retain(&self) -> Duration {
        self.retain
    }
}
