//! The run queue is the `runs` table: workers claim queued runs with `FOR UPDATE SKIP LOCKED`,
//! keep a heartbeat while they hold them, and anyone may clean up after a worker that died.

use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;

use super::placement::not_held_elsewhere;
use crate::auth::Project;
use crate::ids;
use crate::objects::Run;

/// How long a worker may be silent before its runs are taken to be orphaned.
pub const STALE_SECS: i64 = 15;

/// A claimed run: its project, its object (already `in_progress`) and the chat turns it
/// added before (when resumed after tool outputs).
pub struct Claimed {
    pub project: Project,
    pub run: Run,
    pub transcript: Vec<Value>,
    /// Its events go through Postgres to the replica streaming it.
    pub relay: bool,
    /// The sandbox session its code runs in: its `session_id` (a container), else its thread.
    pub session: String,
}

/// What a claim sets: the worker (parameter `$1`), a fresh heartbeat, `in_progress`, and
/// `started_at` (parameter `$2`) the first time.
const START: &str = "worker = $1, heartbeat_at = now(), status = 'in_progress',
    data = data || jsonb_build_object('status', 'in_progress',
        'started_at', COALESCE(NULLIF(data->'started_at', 'null'::jsonb), to_jsonb($2::bigint)))";

/// Claims one particular queued run: reserved for this worker, or unclaimed and of a thread
/// whose sandbox no other live worker holds.
pub async fn claim(db: &PgPool, worker: &str, run_id: &str) -> sqlx::Result<Option<Claimed>> {
    let not_held_elsewhere = not_held_elsewhere();
    let row: Option<ClaimRow> = sqlx::query_as(&format!(
        "UPDATE runs SET {START}
         WHERE id = $3 AND status = 'queued'
           AND (worker = $1 OR (worker IS NULL AND {not_held_elsewhere}))
         RETURNING project, data, transcript, relay, session_id"
    ))
    .bind(worker)
    .bind(ids::now())
    .bind(run_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Claimed::from))
}

/// Claims the oldest unclaimed queued run whose thread's sandbox no other live worker
/// holds, if any.
pub async fn claim_next(db: &PgPool, worker: &str) -> sqlx::Result<Option<Claimed>> {
    let not_held_elsewhere = not_held_elsewhere();
    let row: Option<ClaimRow> = sqlx::query_as(&format!(
        "UPDATE runs SET {START}
         WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND worker IS NULL
                       AND {not_held_elsewhere}
                     ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING project, data, transcript, relay, session_id"
    ))
    .bind(worker)
    .bind(ids::now())
    .fetch_optional(db)
    .await?;
    Ok(row.map(Claimed::from))
}

type ClaimRow = (String, Json<Run>, Json<Vec<Value>>, bool, Option<String>);

impl From<ClaimRow> for Claimed {
    fn from((project, Json(run), Json(transcript), relay, session): ClaimRow) -> Self {
        Claimed {
            project: Project(project),
            session: session.unwrap_or_else(|| run.thread_id.clone()),
            run,
            transcript,
            relay,
        }
    }
}

/// Marks this worker's runs alive; returns those a client has asked to cancel.
pub async fn heartbeat(db: &PgPool, worker: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH beat AS (
             UPDATE runs SET heartbeat_at = now()
             WHERE worker = $1 AND status IN ('queued', 'in_progress', 'cancelling')
             RETURNING id, status)
         SELECT id FROM beat WHERE status = 'cancelling'",
    )
    .bind(worker)
    .fetch_all(db)
    .await
}

/// Cleans up after dead workers: their in-progress runs fail with `server_error` (a run is
/// not resumed half-way, since its code may have had effects), their cancelling runs become
/// cancelled, and runs they had only reserved go back to the queue.
pub async fn recover_orphans(db: &PgPool, message: &str) -> sqlx::Result<u64> {
    let now = ids::now();
    // One transaction: nobody reads a failed run whose message or steps are still open.
    let mut tx = db.begin().await?;
    let failed = sqlx::query(
        "UPDATE runs SET status = 'failed', worker = NULL,
                data = data || jsonb_build_object('status', 'failed', 'failed_at', $1::bigint,
                    'expires_at', NULL, 'required_action', NULL,
                    'last_error', jsonb_build_object('code', 'server_error', 'message', $2::text))
         WHERE status = 'in_progress' AND heartbeat_at < now() - make_interval(secs => $3)",
    )
    .bind(now)
    .bind(message)
    .bind(STALE_SECS as f64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let cancelled = sqlx::query(
        "UPDATE runs SET status = 'cancelled', worker = NULL,
                data = data || jsonb_build_object('status', 'cancelled', 'cancelled_at', $1::bigint, 'expires_at', NULL)
         WHERE status = 'cancelling' AND (worker IS NULL OR heartbeat_at < now() - make_interval(secs => $2))",
    )
    .bind(now)
    .bind(STALE_SECS as f64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE runs SET worker = NULL
         WHERE status = 'queued' AND worker IS NOT NULL AND heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(STALE_SECS as f64)
    .execute(&mut *tx)
    .await?;
    close_steps_of_finished_runs(&mut tx).await?;
    close_messages_of_finished_runs(&mut tx).await?;
    tx.commit().await?;
    Ok(failed + cancelled)
}

/// Runs left waiting for tool outputs past `expires_at` become `expired`.
pub async fn expire(db: &PgPool) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    let expired = sqlx::query(
        "UPDATE runs SET status = 'expired', worker = NULL,
                data = data || jsonb_build_object('status', 'expired', 'required_action', NULL)
         WHERE status IN ('requires_action', 'queued') AND expires_at < $1",
    )
    .bind(ids::now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if expired > 0 {
        close_steps_of_finished_runs(&mut tx).await?;
        close_messages_of_finished_runs(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(expired)
}

/// A message a dead worker was still writing is left `incomplete`, as its worker would have
/// left it (`run_failed`, `run_cancelled`). The change feed tells the read caches.
async fn close_messages_of_finished_runs(db: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages m SET data = m.data || jsonb_build_object(
                 'status', 'incomplete',
                 'incomplete_at', $1::bigint,
                 'incomplete_details', jsonb_build_object('reason',
                     CASE r.status WHEN 'cancelled' THEN 'run_cancelled'
                                   WHEN 'expired' THEN 'run_expired' ELSE 'run_failed' END))
         FROM runs r
         WHERE m.run_id = r.id AND m.data->>'status' = 'in_progress'
           AND r.status IN ('cancelled', 'expired', 'failed', 'completed', 'incomplete')",
    )
    .bind(ids::now())
    .execute(db)
    .await?;
    Ok(())
}

/// Steps still open on a run that ended without its worker (expired, orphaned) end with it.
async fn close_steps_of_finished_runs(db: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    let now = ids::now();
    sqlx::query(
        "UPDATE run_steps s SET data = s.data || jsonb_build_object(
                 'status', CASE r.status WHEN 'cancelled' THEN 'cancelled' WHEN 'expired' THEN 'expired' ELSE 'failed' END,
                 'cancelled_at', CASE r.status WHEN 'cancelled' THEN $1::bigint END,
                 'expired_at', CASE r.status WHEN 'expired' THEN $1::bigint END,
                 'failed_at', CASE WHEN r.status NOT IN ('cancelled', 'expired') THEN $1::bigint END)
         FROM runs r
         WHERE s.run_id = r.id AND s.data->>'status' = 'in_progress'
           AND r.status IN ('cancelled', 'expired', 'failed', 'completed', 'incomplete')",
    )
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}
