//! Expiring containers that sat unused past `expires_after`: marked `expired` (they stay
//! listed), their file bytes removed. The caller then forgets their sandbox sessions, which
//! drops each session and its checkpoint wherever it lives.

use sqlx::PgPool;

use crate::blobs::{BlobStore, Key};
use crate::ids;

/// Marks the running containers now due as expired (only `only`, when given) and removes
/// their files' bytes; returns their ids, whose sessions the caller must forget. Each due
/// container is returned to exactly one caller, however many replicas sweep at once.
pub async fn expire_due(
    db: &PgPool,
    blobs: &BlobStore,
    only: Option<&str>,
) -> sqlx::Result<Vec<String>> {
    let expired: Vec<String> = sqlx::query_scalar(
        "UPDATE containers SET status = 'expired',
             data = data || jsonb_build_object('status', 'expired')
         WHERE status = 'running'
           AND COALESCE(expires_at, last_active_at + expires_after_minutes * 60) <= $1
           AND ($2::text IS NULL OR id = $2)
           -- Sandboxes with autoPause pause instead (see `pause`).
           AND NOT EXISTS (SELECT 1 FROM e2b_sandboxes s WHERE s.id = containers.id AND s.auto_pause)
         RETURNING id",
    )
    .bind(ids::now())
    .bind(only)
    .fetch_all(db)
    .await?;
    if expired.is_empty() {
        return Ok(expired);
    }
    let files: Vec<String> = sqlx::query_scalar(
        "UPDATE container_files SET blob_key = NULL
         WHERE container_id = ANY($1) AND blob_key IS NOT NULL RETURNING id",
    )
    .bind(&expired)
    .fetch_all(db)
    .await?;
    for file_id in files {
        if let Err(e) = blobs.remove(&Key::container_file(&file_id)).await {
            tracing::warn!(file_id, error = %e, "removing an expired container file's bytes");
        }
    }
    for id in &expired {
        tracing::info!(container = id, "container expired");
    }
    Ok(expired)
}
