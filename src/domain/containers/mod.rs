//! Containers: a sandbox session of their own (keyed by the container id, as a thread's is by
//! the thread id), with the files in its /mnt/data (see [`files`]). A container expires when it
//! sits unused for `expires_after.minutes`; it then stays listed as `expired`, its sandbox
//! session, checkpoint and file bytes are discarded, and using it is refused.
//!
//! The `/v1/containers` handlers and the Responses API (`code_interpreter` with a container)
//! both call [`Containers`]; the executor calls [`use_session`], [`files::record_written`] and
//! [`files::record_removed`].

mod expiry;
pub mod files;
mod memory;
pub mod network;
pub mod pause;
pub mod sandboxes;
pub mod snapshots;

use serde::Deserialize;
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;

use crate::auth::Project;
use crate::blobs::{BlobStore, Key};
use crate::domain::skills::attach::{Attached, Resolved};
use crate::domain::skills::Skills;
use crate::error::{ApiError, ApiResult};
use crate::executor::Executor;
use crate::ids;
use crate::objects::container::{ExpiresAfter, NetworkPolicy, RUNNING};
use crate::objects::Container;
use crate::pagination::{ListPage, ListParams};
use crate::sandbox::egress::EgressPolicy;
use crate::sandbox::SandboxManager;
use crate::store::{self, Kind};

pub use expiry::expire_due;
pub use memory::MemoryLimit;

/// Minutes a container lives unused unless `expires_after` says otherwise (OpenAI's default).
pub const DEFAULT_MINUTES: i64 = 20;
/// The longest `expires_after.minutes` accepted: a day.
pub const MAX_MINUTES: i64 = 24 * 60;

/// The container operations, over the stores and the sandboxes. Cheap to clone.
#[derive(Clone)]
pub struct Containers {
    db: PgPool,
    blobs: BlobStore,
    sandbox: SandboxManager,
    executor: Executor,
    /// The largest `memory_limit` allowed (`ASSISTD_CONTAINER_MAX_MEMORY`).
    max_memory: MemoryLimit,
    skills: Skills,
}

/// `POST /v1/containers`, as the client sent it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    pub name: Option<String>,
    pub file_ids: Option<Vec<String>>,
    pub expires_after: Option<ExpiresAfterParam>,
    pub memory_limit: Option<String>,
    pub network_policy: Option<Value>,
    /// `skill_reference` and `inline` skills, mounted at /mnt/skills/<name>.
    pub skills: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiresAfterParam {
    pub anchor: String,
    pub minutes: i64,
}

impl Containers {
    pub fn new(
        db: PgPool,
        blobs: BlobStore,
        sandbox: SandboxManager,
        executor: Executor,
        max_memory: MemoryLimit,
    ) -> Self {
        Self {
            skills: Skills::new(db.clone(), blobs.clone()),
            db,
            blobs,
            sandbox,
            executor,
            max_memory,
        }
    }

    /// The skills store (`/v1/skills`), whose skills containers mount.
    pub fn skills(&self) -> &Skills {
        &self.skills
    }

    /// Creates a container and copies `file_ids` into its /mnt/data. Everything is checked
    /// before anything is stored; if a copy fails the container is removed again.
    pub async fn create(&self, project: &Project, req: CreateContainer) -> ApiResult<Container> {
        let name = req.name.ok_or_else(|| {
            ApiError::invalid_code(
                "name",
                "missing_required_parameter",
                "Missing required parameter: 'name'.",
            )
        })?;
        let minutes = match req.expires_after {
            None => DEFAULT_MINUTES,
            Some(e) => parse_expires_after(e)?,
        };
        let memory = MemoryLimit::parse_within(
            "memory_limit",
            req.memory_limit.as_deref(),
            self.max_memory,
        )?;
        let network = network::parse(
            "network_policy",
            req.network_policy.as_ref(),
            self.sandbox.network_ceiling(),
        )?;
        let skills = self
            .skills
            .resolve(project, "skills", &req.skills.unwrap_or_default())
            .await?;
        let file_ids = req.file_ids.unwrap_or_default();
        let container = self
            .insert_with_files(
                project,
                &name,
                &file_ids,
                "file_ids",
                (minutes, None),
                (memory, network),
            )
            .await?;
        self.attach_skills(project, &container.id, skills).await?;
        Ok(container)
    }

    /// The skills of a tool's `auto` container, checked (400/404 as for [`Containers::create`]).
    pub async fn auto_skills(&self, project: &Project, skills: &[Value]) -> ApiResult<Resolved> {
        self.skills
            .resolve(project, "tools[].container.skills", skills)
            .await
    }

    /// Whether container `id` was created with exactly these skills (an `auto` container is
    /// reused only then).
    pub async fn has_skills(&self, id: &str, skills: &Resolved) -> ApiResult<bool> {
        let had = crate::domain::skills::attach::of_container(&self.db, id).await?;
        Ok(had == skills.attached)
    }

    /// Mounts the resolved skills in the new container; on failure it is removed again.
    async fn attach_skills(&self, project: &Project, id: &str, skills: Resolved) -> ApiResult<()> {
        if let Err(e) = self.skills.attach(&self.sandbox, id, skills).await {
            let _ = self.remove(project, id).await;
            return Err(e);
        }
        Ok(())
    }

    /// A container for a response's `code_interpreter` tool with `container: {type: "auto"}`:
    /// the default expiry, `file_ids` copied in, `memory_limit` as the tool gave it (checked as
    /// in [`Containers::create`], named `tools[].container.memory_limit` in errors), and
    /// `network`, checked by [`Containers::network_policy`].
    pub async fn create_auto(
        &self,
        project: &Project,
        file_ids: &[String],
        memory_limit: Option<&str>,
        network: EgressPolicy,
        skills: Resolved,
    ) -> ApiResult<Container> {
        let memory = MemoryLimit::parse_within(
            "tools[].container.memory_limit",
            memory_limit,
            self.max_memory,
        )?;
        let container = self
            .insert_with_files(
                project,
                "auto",
                file_ids,
                "tools[].container.file_ids",
                (DEFAULT_MINUTES, None),
                (memory, network),
            )
            .await?;
        self.attach_skills(project, &container.id, skills).await?;
        Ok(container)
    }

    /// Parses a `network_policy` (named `param` in errors) and holds it to the operator's
    /// ceiling: a 400 when it is malformed or asks for more than this server allows.
    pub fn network_policy(&self, param: &str, value: Option<&Value>) -> ApiResult<EgressPolicy> {
        network::parse(param, value, self.sandbox.network_ceiling())
    }

    /// The widest policy the operator allows (what an E2B sandbox asking for internet gets).
    pub fn widest_network(&self) -> EgressPolicy {
        self.sandbox.network_ceiling().widest()
    }

    /// A container that expires at a fixed time, `seconds` from now, however it is used (an
    /// E2B sandbox: its `timeout`). Its `expires_after` says the same in whole minutes.
    pub async fn create_until(
        &self,
        project: &Project,
        name: &str,
        seconds: i64,
        memory: MemoryLimit,
        network: EgressPolicy,
    ) -> ApiResult<Container> {
        let minutes = ((seconds + 59) / 60).clamp(1, MAX_MINUTES);
        let at = ids::now() + seconds;
        self.insert_with_files(
            project,
            name,
            &[],
            "",
            (minutes, Some(at)),
            (memory, network),
        )
        .await
    }

    /// Moves a running container's fixed deadline to `seconds` from now (E2B's `timeout`).
    /// 404 for an unknown id, another project's, or one that expired.
    pub async fn set_deadline(&self, project: &Project, id: &str, seconds: i64) -> ApiResult<()> {
        let now = ids::now();
        let at = now + seconds;
        let minutes = ((seconds + 59) / 60).clamp(1, MAX_MINUTES);
        let updated = sqlx::query(
            "UPDATE containers SET expires_at = $3, expires_after_minutes = $4, last_active_at = $5,
                 data = data || jsonb_build_object('expires_at', $3::bigint,
                     'last_active_at', $5::bigint,
                     'expires_after', jsonb_build_object('anchor', 'last_active_at', 'minutes', $4::bigint))
             WHERE id = $1 AND project = $2 AND status = 'running'
               AND COALESCE(expires_at, last_active_at + expires_after_minutes * 60) > $5",
        )
        .bind(id)
        .bind(&project.0)
        .bind(at)
        .bind(minutes as i32)
        .bind(now)
        .execute(&self.db)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Kind::Container.not_found(id));
        }
        Ok(())
    }

    async fn insert_with_files(
        &self,
        project: &Project,
        name: &str,
        file_ids: &[String],
        param: &str,
        (minutes, expires_at): (i64, Option<i64>),
        (memory, network): (MemoryLimit, EgressPolicy),
    ) -> ApiResult<Container> {
        let refs = crate::domain::files::FileRef::each(param, file_ids);
        crate::domain::files::require_files(&self.db, project, &refs).await?;
        let now = ids::now();
        let container = Container {
            id: ids::new_id(ids::CONTAINER),
            object: "container".into(),
            name: name.to_string(),
            created_at: now,
            status: RUNNING.into(),
            last_active_at: now,
            expires_after: ExpiresAfter {
                anchor: "last_active_at".into(),
                minutes,
            },
            memory_limit: memory.as_str().into(),
            network_policy: network::shown(&network),
            expires_at,
        };
        sqlx::query(
            "INSERT INTO containers (id, project, name, created_at, last_active_at,
                 expires_after_minutes, memory_limit, status, data, expires_at)
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&container.id)
        .bind(&project.0)
        .bind(&container.name)
        .bind(now)
        .bind(minutes as i32)
        .bind(&container.memory_limit)
        .bind(&container.status)
        .bind(SqlJson(&container))
        .bind(expires_at)
        .execute(&self.db)
        .await?;
        self.sandbox.set_memory_mb(&container.id, memory.mib());
        self.sandbox
            .set_network_policy(&container.id, Some(network));
        for file_id in file_ids {
            if let Err(e) = self.copy_file_in(project, &container, file_id).await {
                let _ = self.remove(project, &container.id).await;
                return Err(e);
            }
        }
        Ok(container)
    }

    /// One page of the project's containers, optionally only those named `name`. Listing is
    /// not activity: it refreshes no `last_active_at`.
    pub async fn list(
        &self,
        project: &Project,
        params: &ListParams,
        name: Option<&str>,
    ) -> ApiResult<ListPage<Container>> {
        let filters: Vec<store::Filter<'_>> = name.map(|n| ("name", n)).into_iter().collect();
        let mut page: ListPage<Container> =
            store::list(&self.db, Kind::Container, project, &filters, params).await?;
        let now = ids::now();
        page.data = page.data.into_iter().map(|c| c.as_seen(now)).collect();
        Ok(page)
    }

    /// The container (404 for an unknown id or another project's), its `last_active_at`
    /// refreshed unless it expired.
    pub async fn retrieve(&self, project: &Project, id: &str) -> ApiResult<Container> {
        self.load(project, id).await
    }

    /// The container, refreshed, for an operation that needs its sandbox or files: 404 for an
    /// unknown id or another project's, 400 when it expired.
    pub async fn require_usable(&self, project: &Project, id: &str) -> ApiResult<Container> {
        let container = self.load(project, id).await?;
        if container.is_expired() {
            return Err(expired_error(id));
        }
        Ok(container)
    }

    /// Deletes the container, its files and its sandbox session (with the session's
    /// checkpoint, on whichever replica holds it).
    pub async fn delete(&self, project: &Project, id: &str) -> ApiResult<()> {
        self.remove(project, id).await
    }

    async fn remove(&self, project: &Project, id: &str) -> ApiResult<()> {
        store::require(&self.db, Kind::Container, project, id).await?;
        let blobs: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM container_files WHERE container_id = $1 AND project = $2
               AND blob_key IS NOT NULL",
        )
        .bind(id)
        .bind(&project.0)
        .fetch_all(&self.db)
        .await?;
        let skills = crate::domain::skills::attach::of_container(&self.db, id).await?;
        store::delete(&self.db, Kind::Container, project, id, &[]).await?;
        self.executor.forget_session(id).await;
        for skill in skills.iter().filter(|s| s.inline) {
            if let Err(e) = self
                .blobs
                .remove(&Key::container_skill(id, &skill.key))
                .await
            {
                tracing::warn!(container_id = id, error = %e, "removing an inline skill's bundle");
            }
        }
        for file_id in blobs {
            if let Err(e) = self.blobs.remove(&Key::container_file(&file_id)).await {
                tracing::warn!(file_id, error = %e, "removing a container file's bytes");
            }
        }
        Ok(())
    }

    /// Reads the container and marks it active now; one found due is expired on the spot.
    async fn load(&self, project: &Project, id: &str) -> ApiResult<Container> {
        let container: Container = store::get(&self.db, Kind::Container, project, id, &[]).await?;
        let now = ids::now();
        if container.status != RUNNING {
            return Ok(container);
        }
        if container.is_due(now) {
            for expired in expire_due(&self.db, &self.blobs, Some(id)).await? {
                self.executor.forget_session(&expired).await;
            }
            return Ok(container.as_seen(now));
        }
        let touched: Option<SqlJson<Container>> = sqlx::query_scalar(
            "UPDATE containers SET last_active_at = $2,
                 data = data || jsonb_build_object('last_active_at', $2::bigint)
             WHERE id = $1 AND status = 'running' RETURNING data",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        // Expired (or deleted) between the read and the update.
        Ok(touched
            .map(|SqlJson(c)| c)
            .unwrap_or(container)
            .as_seen(now))
    }
}

/// For the executor, before it runs code or copies files in a container's session: refreshes
/// the container's `last_active_at` and gives its sandbox the container's memory limit and
/// skills. False when the container is gone or expired (the run must not use the session).
pub async fn use_session(
    db: &PgPool,
    blobs: &BlobStore,
    sandbox: &SandboxManager,
    id: &str,
) -> anyhow::Result<bool> {
    let now = ids::now();
    type Found = (
        String,
        Option<SqlJson<NetworkPolicy>>,
        SqlJson<Vec<Attached>>,
    );
    let found: Option<Found> = sqlx::query_as(
        "UPDATE containers SET last_active_at = $2,
             data = data || jsonb_build_object('last_active_at', $2::bigint)
         WHERE id = $1 AND status = 'running'
           AND COALESCE(expires_at, last_active_at + expires_after_minutes * 60) > $2
         RETURNING memory_limit, data->'network_policy', skills",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(db)
    .await?;
    let Some((memory, network, SqlJson(skills))) = found else {
        return Ok(false);
    };
    if let Ok(memory) = memory.parse::<MemoryLimit>() {
        sandbox.set_memory_mb(id, memory.mib());
    }
    restore_network_policy(sandbox, id, network.map(|n| n.0));
    if !skills.is_empty() && !sandbox.has_skills(id) {
        crate::domain::skills::attach::mount(blobs, sandbox, id, &skills).await?;
    }
    Ok(true)
}

/// Gives a container's session its stored network policy when this process holds none for it
/// (after a restart, or on another replica); a missing one is `disabled`, never wider.
pub(crate) fn restore_network_policy(
    sandbox: &SandboxManager,
    id: &str,
    stored: Option<NetworkPolicy>,
) {
    if sandbox.network_policy(id).is_none() {
        let policy = stored
            .as_ref()
            .map(network::from_shown)
            .unwrap_or(EgressPolicy::Disabled);
        sandbox.set_network_policy(id, Some(policy));
    }
}

/// The 400 for using an expired container.
pub fn expired_error(id: &str) -> ApiError {
    ApiError::InvalidRequest {
        message: format!(
            "Container '{id}' has expired and can no longer be used; its files were discarded. \
             Create a new container."
        ),
        param: None,
        code: Some("container_expired"),
    }
}

fn parse_expires_after(e: ExpiresAfterParam) -> ApiResult<i64> {
    if e.anchor != "last_active_at" {
        return Err(ApiError::invalid_code(
            "expires_after.anchor",
            "invalid_value",
            format!(
                "Invalid value: '{}'. Supported values are: 'last_active_at'.",
                e.anchor
            ),
        ));
    }
    if !(1..=MAX_MINUTES).contains(&e.minutes) {
        return Err(ApiError::invalid_code(
            "expires_after.minutes",
            "invalid_value",
            format!(
                "Invalid 'expires_after.minutes': expected a value from 1 to {MAX_MINUTES}, but got {} instead.",
                e.minutes
            ),
        ));
    }
    Ok(e.minutes)
}
