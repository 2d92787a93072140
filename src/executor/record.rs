//! Persistence of a run in progress: the run row, its steps, its messages, its transcript.

use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;

use crate::auth::Project;
use crate::cache::ReadCache;
use crate::objects::run::LastError;
use crate::objects::{Message, Run, RunStep};

/// Writes a run's final (or requires_action) state and releases it from this worker, if the
/// run's status is still one of `from`. Metadata is kept from the row, since clients may modify
/// it while the run executes.
pub async fn finalize_run(db: &PgPool, run: &Run, from: &[&str]) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE runs SET status = $2, worker = NULL,
                data = jsonb_set($3::jsonb, '{metadata}', data->'metadata')
         WHERE id = $1 AND status = ANY($4)",
    )
    .bind(&run.id)
    .bind(&run.status)
    .bind(Json(run))
    .bind(from)
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The run as stored, whoever's it is (for the executor's own bookkeeping).
pub async fn load_run(db: &PgPool, run_id: &str) -> sqlx::Result<Option<Run>> {
    let row: Option<sqlx::types::Json<Run>> =
        sqlx::query_scalar("SELECT data FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|r| r.0))
}

pub async fn run_status(db: &PgPool, run_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(db)
        .await
}

pub async fn insert_step(db: &PgPool, project: &Project, step: &RunStep) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO run_steps (id, project, thread_id, run_id, created_at, data) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&step.id)
    .bind(&project.0)
    .bind(&step.thread_id)
    .bind(&step.run_id)
    .bind(step.created_at)
    .bind(Json(step))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn put_step(db: &PgPool, step: &RunStep) -> sqlx::Result<()> {
    sqlx::query("UPDATE run_steps SET data = $2 WHERE id = $1")
        .bind(&step.id)
        .bind(Json(step))
        .execute(db)
        .await?;
    Ok(())
}

/// Ends the run's open steps with `status` (`cancelled` or `failed`) at `now`.
pub async fn close_open_steps(
    db: &PgPool,
    run_id: &str,
    status: &str,
    now: i64,
    last_error: Option<&LastError>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE run_steps SET data = data || jsonb_build_object(
             'status', $2::text,
             'cancelled_at', CASE WHEN $2 = 'cancelled' THEN $3::bigint END,
             'failed_at', CASE WHEN $2 = 'failed' THEN $3::bigint END,
             'last_error', $4::jsonb)
         WHERE run_id = $1 AND data->>'status' = 'in_progress'",
    )
    .bind(run_id)
    .bind(status)
    .bind(now)
    .bind(Json(last_error))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn latest_step(db: &PgPool, run_id: &str) -> sqlx::Result<Option<RunStep>> {
    let row: Option<Json<RunStep>> = sqlx::query_scalar(
        "SELECT data FROM run_steps WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|Json(s)| s))
}

pub async fn put_message(db: &PgPool, cache: &ReadCache, message: &Message) -> sqlx::Result<()> {
    sqlx::query("UPDATE messages SET data = jsonb_set($2::jsonb, '{metadata}', data->'metadata') WHERE id = $1")
        .bind(&message.id)
        .bind(Json(message))
        .execute(db)
        .await?;
    cache.invalidate(&message.thread_id);
    Ok(())
}

/// The thread's messages the model should see: all but the ones this run wrote itself
/// (those are in its transcript).
pub async fn history(db: &PgPool, thread_id: &str, run_id: &str) -> sqlx::Result<Vec<Message>> {
    let rows: Vec<Json<Message>> = sqlx::query_scalar(
        "SELECT data FROM messages WHERE thread_id = $1 AND run_id IS DISTINCT FROM $2 ORDER BY seq",
    )
    .bind(thread_id)
    .bind(run_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|Json(m)| m).collect())
}

/// The thread's context items (`thread_items`: replayed or hand-added history that is not a
/// message), oldest first, each with the message it follows.
pub async fn context_items(
    db: &PgPool,
    thread_id: &str,
) -> sqlx::Result<Vec<(Option<String>, Value)>> {
    let rows: Vec<(Option<String>, Json<Value>)> = sqlx::query_as(
        "SELECT after_message, data FROM thread_items WHERE thread_id = $1 ORDER BY item_seq",
    )
    .bind(thread_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(a, Json(v))| (a, v)).collect())
}

pub async fn append_transcript<'e>(
    db: impl sqlx::PgExecutor<'e>,
    run_id: &str,
    items: &[Value],
) -> sqlx::Result<()> {
    sqlx::query("UPDATE runs SET transcript = transcript || $2::jsonb WHERE id = $1")
        .bind(run_id)
        .bind(Json(items))
        .execute(db)
        .await?;
    Ok(())
}
