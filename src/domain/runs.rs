//! Queuing a run: the one way both surfaces (an Assistants run, a response) put work on the
//! executor's queue. The thread is locked so that no second run starts beside an active one.

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::executor::{Assignment, Executor, Handover};
use crate::objects::{Message, Run};
use crate::store::{self, Kind};

/// What a new run starts with besides its object.
#[derive(Default)]
pub struct Start {
    /// Messages added to the thread in the same transaction.
    pub messages: Vec<Message>,
    /// Chat turns the run begins with after the thread's messages (function calls and their
    /// results passed back by a Responses client).
    pub transcript: Vec<Value>,
    /// The events a streamed run opens with.
    pub announce: &'static [&'static str],
    /// The sandbox session its code runs in when that is not its thread's (a container id,
    /// which the handover must name too: `Handover::in_session`).
    pub session: Option<String>,
}

/// Stores a new run on its thread (which must have no active run) and routes it; the caller
/// dispatches `handover` afterwards.
pub async fn queue(
    db: &PgPool,
    executor: &Executor,
    project: &Project,
    run: &mut Run,
    start: Start,
    expiry_secs: u64,
    handover: &mut Handover,
) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    queue_in(
        &mut tx,
        executor,
        project,
        run,
        start,
        expiry_secs,
        handover,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// [`queue`] inside the caller's transaction (which may make the thread first, and record
/// what the run executes for); routed when it commits.
pub async fn queue_in(
    tx: &mut PgConnection,
    executor: &Executor,
    project: &Project,
    run: &mut Run,
    start: Start,
    expiry_secs: u64,
    handover: &mut Handover,
) -> ApiResult<()> {
    let thread_id = run.thread_id.clone();
    store::get_for_update::<Value>(&mut *tx, Kind::Thread, project, &thread_id, &[]).await?;
    if let Some(active) = super::messages::active_run(&mut *tx, &thread_id).await? {
        return Err(ApiError::invalid(format!(
            "Thread {thread_id} already has an active run {active}."
        )));
    }
    for m in &start.messages {
        super::messages::insert(&mut *tx, project, m).await?;
    }
    run.expires_at = Some(run.created_at + expiry_secs as i64);
    let assignment = executor
        .assign(&mut *tx, handover, run, start.announce)
        .await?;
    insert_queued(
        &mut *tx,
        project,
        run,
        &assignment,
        start.session.as_deref(),
        &start.transcript,
    )
    .await?;
    Ok(())
}

/// Inserts a queued run, inside the transaction in which [`Executor::assign`] routed it.
/// `session`: the sandbox session its code runs in when that is not its thread's;
/// `transcript`: the turns it opens with.
pub async fn insert_queued(
    conn: &mut PgConnection,
    project: &Project,
    run: &Run,
    assignment: &Assignment,
    session: Option<&str>,
    transcript: &[Value],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO runs (id, project, thread_id, status, created_at, expires_at, worker, relay,
                           heartbeat_at, session_id, data, transcript)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9, $10, $11)",
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
    .bind(Json(transcript))
    .execute(conn)
    .await?;
    Ok(())
}
