//! E2B's pause and resume. A paused sandbox is a container with status `paused`: its session
//! was checkpointed (the whole box: its volume, the rest of the box's writable paths, and the
//! interpreter state that pickles) wherever it was live, and its Docker container freed.
//! While paused it does not expire and its checkpoint is kept. Resuming makes it `running`
//! again with a new deadline, and starts its session from that checkpoint on the replica
//! that resumed it (any replica: the checkpoint is in Postgres and the blob store).
//!
//! `timeout` with `autoPause` pauses instead of expiring ([`pause_due`], from the executor's
//! housekeeping); a data-plane request to a paused sandbox with `autoResume` resumes it
//! ([`Containers::auto_resume`]).

use sqlx::PgPool;

use super::sandboxes::{sandbox_not_found, Sandbox};
use super::{Containers, MemoryLimit};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::executor::Executor;
use crate::ids;
use crate::objects::container::RUNNING;

pub const PAUSED: &str = "paused";

/// What `pause` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Paused {
    /// Checkpointed and freed now.
    Now,
    /// It was paused already (E2B answers 409).
    Already,
}

/// What `connect` found.
#[derive(Debug)]
pub enum Connected {
    /// It was running (E2B answers 200).
    Running(Sandbox),
    /// It was paused and is running again (201).
    Resumed(Sandbox),
}

/// The condition "not past its deadline" on `containers c` at `$now`.
const LIVE: &str = "COALESCE(c.expires_at, c.last_active_at + c.expires_after_minutes * 60)";

impl Containers {
    /// Pauses the project's running sandbox `id`: marked paused first (so nothing new starts
    /// in it), then checkpointed and freed wherever it is live. A checkpoint that fails
    /// leaves it running and is an error. 404 for an unknown, killed or expired sandbox.
    pub async fn pause_sandbox(&self, project: &Project, id: &str) -> ApiResult<Paused> {
        self.pause_if_due(id).await?;
        let now = ids::now();
        let marked: Option<String> = sqlx::query_scalar(&format!(
            "UPDATE containers c SET status = 'paused',
                 data = c.data || jsonb_build_object('status', 'paused')
             FROM e2b_sandboxes s
             WHERE c.id = $1 AND s.id = c.id AND s.project = $2 AND c.status = 'running'
               AND {LIVE} > $3
             RETURNING c.id"
        ))
        .bind(id)
        .bind(&project.0)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        if marked.is_none() {
            return match self.state_of(project, id).await?.as_deref() {
                Some(PAUSED) => Ok(Paused::Already),
                _ => Err(sandbox_not_found(id)),
            };
        }
        free(&self.db, &self.executor, id).await?;
        Ok(Paused::Now)
    }

    /// E2B's connect: a running sandbox as it is (its deadline moved to `timeout` seconds
    /// from now when that is later), a paused one resumed (`timeout`, else the one it was
    /// created with). 404 for an unknown, killed or expired sandbox.
    pub async fn connect_sandbox(
        &self,
        project: &Project,
        id: &str,
        timeout: Option<i64>,
    ) -> ApiResult<Connected> {
        self.pause_if_due(id).await?;
        if let Some(seconds) = self.resume(Some(project), id, timeout).await? {
            tracing::info!(sandbox = id, seconds, "sandbox resumed");
            return Ok(Connected::Resumed(self.sandbox(project, id).await?));
        }
        if let Some(seconds) = timeout {
            // Connecting never shortens the sandbox's life.
            let sandbox = self.sandbox(project, id).await?;
            if seconds > sandbox.container.deadline() - ids::now() {
                self.set_deadline(project, id, seconds).await?;
            }
        }
        Ok(Connected::Running(self.sandbox(project, id).await?))
    }

    /// A data-plane request to sandbox `id` bearing `token` that found it not running: when
    /// it is paused with `autoResume`, it is resumed and true returned.
    pub async fn auto_resume(&self, id: &str, token: &str) -> ApiResult<bool> {
        self.pause_if_due(id).await?;
        let wanted: Option<bool> = sqlx::query_scalar(
            "SELECT s.auto_resume FROM e2b_sandboxes s JOIN containers c ON c.id = s.id
             WHERE s.id = $1 AND s.access_token = $2 AND c.status = 'paused'",
        )
        .bind(id)
        .bind(token)
        .fetch_optional(&self.db)
        .await?;
        if wanted != Some(true) {
            return Ok(false);
        }
        let resumed = self.resume(None, id, None).await?;
        if resumed.is_some() {
            tracing::info!(
                sandbox = id,
                "sandbox resumed by a request to it (autoResume)"
            );
        }
        Ok(resumed.is_some())
    }

    /// Makes the paused sandbox running again (`timeout` seconds, else its own), then starts
    /// its session here from the checkpoint; the seconds it got, or None when it was not
    /// paused. A session that cannot start is logged: its next request tries again.
    async fn resume(
        &self,
        project: Option<&Project>,
        id: &str,
        timeout: Option<i64>,
    ) -> ApiResult<Option<i64>> {
        let now = ids::now();
        let resumed: Option<(i64, String)> = sqlx::query_as(
            "WITH s AS (
                 SELECT id, COALESCE($4::bigint, timeout_secs) AS seconds FROM e2b_sandboxes
                 WHERE id = $1 AND ($2::text IS NULL OR project = $2))
             UPDATE containers c SET status = 'running', expires_at = $3 + s.seconds,
                 last_active_at = $3,
                 expires_after_minutes = LEAST(GREATEST((s.seconds + 59) / 60, 1), 1440),
                 data = c.data || jsonb_build_object('status', 'running',
                     'expires_at', $3 + s.seconds, 'last_active_at', $3::bigint)
             FROM s WHERE c.id = s.id AND c.status = 'paused'
             RETURNING s.seconds, c.memory_limit",
        )
        .bind(id)
        .bind(project.map(|p| p.0.as_str()))
        .bind(now)
        .bind(timeout)
        .fetch_optional(&self.db)
        .await?;
        let Some((seconds, memory)) = resumed else {
            return Ok(None);
        };
        if let Ok(memory) = memory.parse::<MemoryLimit>() {
            self.sandbox.set_memory_mb(id, memory.mib());
        }
        self.sandbox.use_box(id);
        if let Err(e) = self.sandbox.open(id).await {
            tracing::warn!(sandbox = id, error = %e, "starting a resumed sandbox");
        }
        Ok(Some(seconds))
    }

    /// Pauses sandbox `id` now if its timeout passed and it pauses then (`autoPause`).
    pub(super) async fn pause_if_due(&self, id: &str) -> ApiResult<()> {
        for due in mark_due(&self.db, Some(id)).await? {
            free(&self.db, &self.executor, &due).await?;
        }
        Ok(())
    }

    /// `running`, `paused` or `expired` for the project's sandbox `id`; None if unknown.
    async fn state_of(&self, project: &Project, id: &str) -> ApiResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT c.status FROM containers c JOIN e2b_sandboxes s ON s.id = c.id
             WHERE c.id = $1 AND s.project = $2",
        )
        .bind(id)
        .bind(&project.0)
        .fetch_optional(&self.db)
        .await?)
    }
}

/// Checkpoints the paused sandbox's session wherever it is live and frees its container;
/// when that fails, it is running again and the failure is returned.
async fn free(db: &PgPool, executor: &Executor, id: &str) -> ApiResult<()> {
    if let Err(e) = executor.checkpoint_session(id, true).await {
        sqlx::query(
            "UPDATE containers SET status = 'running',
                 data = data || jsonb_build_object('status', 'running')
             WHERE id = $1 AND status = 'paused'",
        )
        .bind(id)
        .execute(db)
        .await?;
        return Err(ApiError::Internal(anyhow::anyhow!(
            "pausing sandbox {id}: {e}"
        )));
    }
    sqlx::query("UPDATE e2b_sandboxes SET paused_at = $2 WHERE id = $1")
        .bind(id)
        .bind(ids::now())
        .execute(db)
        .await?;
    tracing::info!(sandbox = id, "sandbox paused");
    Ok(())
}

/// The executor's housekeeping: pauses the sandboxes with `autoPause` whose timeout passed
/// (instead of expiring them), each by one replica.
pub async fn pause_due(db: &PgPool, executor: &Executor) -> sqlx::Result<()> {
    for id in mark_due(db, None).await? {
        let (db, executor) = (db.clone(), executor.clone());
        // A checkpoint takes a while: not in the caller's loop.
        tokio::spawn(async move {
            if let Err(e) = free(&db, &executor, &id).await {
                tracing::warn!(sandbox = id, error = %e, "pausing a sandbox at its timeout");
            }
        });
    }
    Ok(())
}

/// Marks the running sandboxes with `autoPause` whose timeout passed as paused (only `only`,
/// when given) and returns them, each to one caller, which must [`free`] them.
async fn mark_due(db: &PgPool, only: Option<&str>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(&format!(
        "UPDATE containers c SET status = 'paused',
             data = c.data || jsonb_build_object('status', 'paused')
         FROM e2b_sandboxes s
         WHERE s.id = c.id AND s.auto_pause AND c.status = '{RUNNING}' AND {LIVE} <= $1
           AND ($2::text IS NULL OR c.id = $2)
         RETURNING c.id"
    ))
    .bind(ids::now())
    .bind(only)
    .fetch_all(db)
    .await
}
