//! Storing a run on the queue, for every surface that starts one: the Assistants routes
//! (session: the run's thread) and the Responses routes (session: a container).

use sqlx::types::Json;
use sqlx::PgConnection;

use crate::auth::Project;
use crate::executor::Assignment;
use crate::objects::Run;

/// Inserts a queued run, inside the transaction in which [`crate::executor::Executor::assign`]
/// routed it. `session` is the sandbox session its code runs in when that is not its thread's
/// (a container id, which the run's `Handover::in_session` must name too); `None`: its thread's.
pub async fn insert_queued(
    conn: &mut PgConnection,
    project: &Project,
    run: &Run,
    assignment: &Assignment,
    session: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO runs (id, project, thread_id, status, created_at, expires_at, worker, relay,
                           heartbeat_at, session_id, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9, $10)",
    )
    .bind(&run.id)
    .bind(&project.0)
    .bind(&run.thread_id)
    .bind(&run.status)
    .bind(run.created_at)
    .bind(run.expires_at)
    .bind(&assignment.worker)
    .bind(assignment.relay)
    .bind(session)
    .bind(Json(run))
    .execute(conn)
    .await?;
    Ok(())
}
