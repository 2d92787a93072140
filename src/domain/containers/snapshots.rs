//! Snapshots of E2B sandboxes: a fresh checkpoint of the sandbox's session (the whole box),
//! copied in the blob store to `snapshots/<id>` and recorded in `e2b_snapshots` for the
//! project. Creating a sandbox with `templateID: <snapshot id>` starts it from a copy; the
//! snapshot outlives the sandbox until it is deleted (`DELETE /templates/<id>`).

use serde_json::Value;
use sqlx::types::Json as SqlJson;

use super::Containers;
use crate::auth::Project;
use crate::blobs::Key;
use crate::error::{ApiError, ApiResult};
use crate::ids;

/// The prefix of snapshot ids, which are also template ids.
pub const SNAPSHOT: &str = "snap_";

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub sandbox_id: String,
    pub name: Option<String>,
    pub created_at: i64,
}

impl Snapshot {
    /// E2B's `names`: the snapshot's full names (its own name when it was given one).
    pub fn names(&self) -> Vec<String> {
        match &self.name {
            Some(name) => vec![name.clone()],
            None => vec![self.id.clone()],
        }
    }
}

/// One page of [`Containers::list_snapshots`] and the token of the next, if any.
pub struct SnapshotPage {
    pub snapshots: Vec<Snapshot>,
    pub next_token: Option<String>,
}

type Row = (String, String, Option<String>, i64, i64);

fn from_row((id, sandbox_id, name, created_at, _): Row) -> Snapshot {
    Snapshot {
        id,
        sandbox_id,
        name,
        created_at,
    }
}

impl Containers {
    /// Snapshots the project's sandbox `id` (running or paused; 404 otherwise): a running one
    /// is checkpointed now, wherever it is live, and keeps running.
    pub async fn create_snapshot(
        &self,
        project: &Project,
        id: &str,
        name: Option<String>,
    ) -> ApiResult<Snapshot> {
        let sandbox = self.sandbox(project, id).await?;
        let running = sandbox.container.status == crate::objects::container::RUNNING;
        let snapshot_id = ids::new_id(SNAPSHOT);
        let key = Key::snapshot(&snapshot_id);
        let mut manifest = None;
        for attempt in 0..2 {
            if running {
                if attempt == 1 {
                    // Never used: its session starts here, to be checkpointed.
                    self.sandbox.use_box(id);
                    self.sandbox.open(id).await.map_err(internal)?;
                }
                self.executor
                    .checkpoint_session(id, false)
                    .await
                    .map_err(internal)?;
            }
            manifest = self
                .sandbox
                .copy_checkpoint(id, &key)
                .await
                .map_err(internal)?;
            if manifest.is_some() || !running {
                break;
            }
        }
        let Some(manifest) = manifest else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "sandbox {id} has no checkpoint to snapshot"
            )));
        };
        let snapshot = Snapshot {
            id: snapshot_id,
            sandbox_id: id.to_string(),
            name,
            created_at: ids::now(),
        };
        let inserted = sqlx::query(
            "INSERT INTO e2b_snapshots (id, project, sandbox_id, name, manifest, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&snapshot.id)
        .bind(&project.0)
        .bind(id)
        .bind(&snapshot.name)
        .bind(SqlJson(&manifest))
        .bind(snapshot.created_at)
        .execute(&self.db)
        .await;
        if let Err(e) = inserted {
            let _ = self.sandbox.remove_copy(&key).await;
            return Err(e.into());
        }
        tracing::info!(sandbox = id, snapshot = snapshot.id, "sandbox snapshotted");
        Ok(snapshot)
    }

    /// The project's snapshots (of `sandbox_id` only, when given), oldest first.
    pub async fn list_snapshots(
        &self,
        project: &Project,
        sandbox_id: Option<&str>,
        limit: i64,
        next: Option<&str>,
    ) -> ApiResult<SnapshotPage> {
        let after: i64 = match next {
            None | Some("") => 0,
            Some(token) => token
                .parse()
                .map_err(|_| ApiError::invalid_param("nextToken", "Invalid nextToken."))?,
        };
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, sandbox_id, name, created_at, seq FROM e2b_snapshots
             WHERE project = $1 AND ($2::text IS NULL OR sandbox_id = $2) AND seq > $3
             ORDER BY seq LIMIT $4",
        )
        .bind(&project.0)
        .bind(sandbox_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.db)
        .await?;
        let more = rows.len() as i64 > limit;
        let last = rows.iter().take(limit as usize).next_back().map(|r| r.4);
        Ok(SnapshotPage {
            snapshots: rows
                .into_iter()
                .take(limit as usize)
                .map(from_row)
                .collect(),
            next_token: last.filter(|_| more).map(|seq| seq.to_string()),
        })
    }

    /// Deletes the project's snapshot `id` and its blobs; 404 for an unknown one.
    pub async fn delete_snapshot(&self, project: &Project, id: &str) -> ApiResult<()> {
        let deleted: Option<String> = sqlx::query_scalar(
            "DELETE FROM e2b_snapshots WHERE id = $1 AND project = $2 RETURNING id",
        )
        .bind(id)
        .bind(&project.0)
        .fetch_optional(&self.db)
        .await?;
        if deleted.is_none() {
            return Err(template_not_found(id));
        }
        if let Err(e) = self.sandbox.remove_copy(&Key::snapshot(id)).await {
            tracing::warn!(snapshot = id, error = %e, "removing a snapshot's blobs");
        }
        Ok(())
    }

    /// The manifest of the project's snapshot `template_id` when the template is one (None
    /// for other template ids); 404 for a snapshot id the project does not have.
    pub async fn snapshot_template(
        &self,
        project: &Project,
        template_id: &str,
    ) -> ApiResult<Option<Value>> {
        if !template_id.starts_with(SNAPSHOT) {
            return Ok(None);
        }
        let manifest: Option<SqlJson<Value>> =
            sqlx::query_scalar("SELECT manifest FROM e2b_snapshots WHERE id = $1 AND project = $2")
                .bind(template_id)
                .bind(&project.0)
                .fetch_optional(&self.db)
                .await?;
        match manifest {
            Some(SqlJson(manifest)) => Ok(Some(manifest)),
            None => Err(template_not_found(template_id)),
        }
    }

    /// Makes the new sandbox `id` start from the snapshot (see [`Containers::snapshot_template`]).
    pub async fn start_from_snapshot(
        &self,
        project: &Project,
        id: &str,
        snapshot_id: &str,
        manifest: &Value,
    ) -> ApiResult<()> {
        let started = self
            .sandbox
            .begin_from(id, &Key::snapshot(snapshot_id), manifest)
            .await;
        if let Err(e) = started {
            let _ = self.kill_sandbox(project, id).await;
            return Err(internal(e));
        }
        self.sandbox.use_box(id);
        Ok(())
    }
}

/// E2B's not-found for a template (a snapshot is one).
pub fn template_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "template \"{id}\" doesn't exist or you don't have access to it"
    ))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}
