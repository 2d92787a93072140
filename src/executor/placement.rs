//! Placement: which replica holds each thread's live sandbox session (table `placements`)
//! and which replicas are alive (table `workers`), so a thread's runs are executed where its
//! variables and files are. A placement whose worker went silent counts for nothing.

use sqlx::PgPool;

use super::queue::STALE_SECS;

/// Says this worker is alive and which threads it holds sessions for: placements of
/// sessions it no longer has are dropped.
/// `address` is where the other replicas reach this one.
pub async fn beat(
    db: &PgPool,
    worker: &str,
    address: &str,
    sessions: &[String],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, heartbeat_at, address) VALUES ($1, now(), $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), address = excluded.address",
    )
    .bind(worker)
    .bind(address)
    .execute(db)
    .await?;
    sqlx::query("DELETE FROM placements WHERE worker = $1 AND NOT (thread_id = ANY($2))")
        .bind(worker)
        .bind(sessions)
        .execute(db)
        .await?;
    // Workers silent for an hour are gone for good, with their placements.
    sqlx::query(
        "WITH gone AS (DELETE FROM workers WHERE heartbeat_at < now() - interval '1 hour' RETURNING id)
         DELETE FROM placements WHERE worker IN (SELECT id FROM gone)",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records that this worker holds the session (a thread's or a container's; taking it over
/// from a silent one). The column `thread_id` is the session key.
pub async fn place(db: &PgPool, thread_id: &str, worker: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO placements (thread_id, worker) SELECT $1, $2
         WHERE EXISTS (SELECT 1 FROM threads WHERE id = $1)
            OR EXISTS (SELECT 1 FROM containers WHERE id = $1)
         ON CONFLICT (thread_id) DO UPDATE SET worker = excluded.worker, placed_at = now()
         WHERE placements.worker <> excluded.worker",
    )
    .bind(thread_id)
    .bind(worker)
    .execute(db)
    .await?;
    Ok(())
}

/// Records that `me` holds the session unless another live worker does; returns that worker
/// when it does (then nothing changed). For operations that would open the session here.
pub async fn take_unless_held(
    db: &PgPool,
    session: &str,
    me: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "WITH live AS (
             SELECT p.worker FROM placements p JOIN workers w ON w.id = p.worker
             WHERE p.thread_id = $1 AND p.worker <> $2
               AND w.heartbeat_at > now() - make_interval(secs => $3)),
         placed AS (
             INSERT INTO placements (thread_id, worker) SELECT $1, $2
             WHERE NOT EXISTS (SELECT 1 FROM live)
               AND (EXISTS (SELECT 1 FROM threads WHERE id = $1)
                    OR EXISTS (SELECT 1 FROM containers WHERE id = $1))
             ON CONFLICT (thread_id) DO UPDATE SET worker = excluded.worker, placed_at = now()
             WHERE placements.worker <> excluded.worker)
         SELECT worker FROM live",
    )
    .bind(session)
    .bind(me)
    .bind(STALE_SECS as f64)
    .fetch_optional(db)
    .await
}

/// The live worker other than `me` holding the thread's session, if any.
pub async fn holder<'e>(
    db: impl sqlx::PgExecutor<'e>,
    thread_id: &str,
    me: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT p.worker FROM placements p JOIN workers w ON w.id = p.worker
         WHERE p.thread_id = $1 AND p.worker <> $2
           AND w.heartbeat_at > now() - make_interval(secs => $3)",
    )
    .bind(thread_id)
    .bind(me)
    .bind(STALE_SECS as f64)
    .fetch_optional(db)
    .await
}

/// The address `worker` advertised with its heartbeat (None from a version that records none).
pub async fn address(db: &PgPool, worker: &str) -> sqlx::Result<Option<String>> {
    let found: Option<Option<String>> =
        sqlx::query_scalar("SELECT address FROM workers WHERE id = $1")
            .bind(worker)
            .fetch_optional(db)
            .await?;
    Ok(found.flatten())
}

/// Whether `worker` is a live worker other than `me`.
pub async fn is_live_sibling(db: &PgPool, worker: &str, me: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workers WHERE id = $1 AND id <> $2
                          AND heartbeat_at > now() - make_interval(secs => $3))",
    )
    .bind(worker)
    .bind(me)
    .bind(STALE_SECS as f64)
    .fetch_one(db)
    .await
}

/// The session is gone (its thread or container was deleted): nobody holds it.
pub async fn forget(db: &PgPool, session: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM placements WHERE thread_id = $1")
        .bind(session)
        .execute(db)
        .await?;
    Ok(())
}

/// A worker stopping: it holds nothing any more.
pub async fn leave(db: &PgPool, worker: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM placements WHERE worker = $1")
        .bind(worker)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(worker)
        .execute(db)
        .await?;
    Ok(())
}

/// The SQL condition a claim adds: the run's session (its `session_id`, else its thread) is
/// not held by another live worker (`$1` is the claiming worker).
pub fn not_held_elsewhere() -> String {
    NOT_HELD_ELSEWHERE.replace("$STALE", &STALE_SECS.to_string())
}

const NOT_HELD_ELSEWHERE: &str = "NOT EXISTS (
    SELECT 1 FROM placements p JOIN workers w ON w.id = p.worker
    WHERE p.thread_id = COALESCE(runs.session_id, runs.thread_id) AND p.worker <> $1
      AND w.heartbeat_at > now() - make_interval(secs => $STALE))";
