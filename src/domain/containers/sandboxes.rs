//! E2B's sandboxes (the `/e2b` surface) are containers: the same id, project, sandbox session,
//! checkpoints and memory limit, listed in `/v1/containers` too. What only E2B has (template,
//! metadata, the data plane's access token, the network asked for) is in `e2b_sandboxes`; the
//! E2B `timeout` is the container's fixed deadline (`expires_at`).

use serde_json::{Map, Value};
use sqlx::types::Json as SqlJson;

use super::{Containers, MemoryLimit};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::container::NetworkPolicy;
use crate::objects::Container;
use crate::sandbox::egress::EgressPolicy;

/// A sandbox as stored: its container and E2B's own fields.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub container: Container,
    pub template_id: String,
    pub metadata: Map<String, Value>,
    pub access_token: String,
    pub allow_internet_access: bool,
    /// What it got: the operator's network setting decides, whatever was asked.
    pub internet_access: bool,
}

/// What `POST /sandboxes` asked for, already checked.
#[derive(Debug)]
pub struct NewSandbox {
    pub template_id: String,
    pub timeout_secs: i64,
    pub metadata: Map<String, Value>,
    pub memory: MemoryLimit,
    pub allow_internet_access: bool,
    /// What it gets: what was asked for, within what the operator allows.
    pub network: EgressPolicy,
    /// `autoPause`: the timeout pauses it instead of killing it.
    pub auto_pause: bool,
    /// `autoResume.enabled`: a data-plane request to it while paused resumes it.
    pub auto_resume: bool,
}

/// One page of [`Containers::list_sandboxes`] and the token of the next, if any.
pub struct SandboxPage {
    pub sandboxes: Vec<Sandbox>,
    pub next_token: Option<String>,
}

type Row = (
    SqlJson<Container>,
    String,
    SqlJson<Map<String, Value>>,
    String,
    bool,
    bool,
    i64,
);

const SELECT: &str = "SELECT c.data, s.template_id, s.metadata, s.access_token,
        s.allow_internet_access, s.internet_access, c.seq
    FROM e2b_sandboxes s JOIN containers c ON c.id = s.id";

fn from_row(row: Row) -> (Sandbox, i64) {
    let (SqlJson(container), template_id, SqlJson(metadata), access_token, allow, got, seq) = row;
    (
        Sandbox {
            container,
            template_id,
            metadata,
            access_token,
            allow_internet_access: allow,
            internet_access: got,
        },
        seq,
    )
}

impl Containers {
    /// Creates the sandbox's container (expiring `timeout_secs` from now) and its E2B record.
    /// The session itself starts on first use, from the warm pool.
    pub async fn create_sandbox(&self, project: &Project, new: NewSandbox) -> ApiResult<Sandbox> {
        let container = self
            .create_until(
                project,
                "e2b-sandbox",
                new.timeout_secs,
                new.memory,
                new.network.clone(),
            )
            .await?;
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let inserted = sqlx::query(
            "INSERT INTO e2b_sandboxes (id, project, template_id, metadata, access_token,
                 allow_internet_access, internet_access, timeout_secs, auto_pause, auto_resume)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&container.id)
        .bind(&project.0)
        .bind(&new.template_id)
        .bind(SqlJson(&new.metadata))
        .bind(&token)
        .bind(new.allow_internet_access)
        .bind(new.network != EgressPolicy::Disabled)
        .bind(new.timeout_secs)
        .bind(new.auto_pause)
        .bind(new.auto_resume)
        .execute(&self.db)
        .await;
        if let Err(e) = inserted {
            let _ = self.remove(project, &container.id).await;
            return Err(e.into());
        }
        self.sandbox.use_box(&container.id);
        Ok(Sandbox {
            container,
            template_id: new.template_id,
            metadata: new.metadata,
            access_token: token,
            allow_internet_access: new.allow_internet_access,
            internet_access: new.network != EgressPolicy::Disabled,
        })
    }

    /// The project's running or paused sandbox `id` (`container.status` tells which): a 404
    /// for an unknown id, another project's, a container that is no sandbox, or one past its
    /// timeout (which is expired on the spot, or paused with `autoPause`).
    pub async fn sandbox(&self, project: &Project, id: &str) -> ApiResult<Sandbox> {
        // Twice at most: a timeout that passes between the two reads below pauses a sandbox
        // with autoPause on the second round (and leaves any other expired).
        for _ in 0..2 {
            self.pause_if_due(id).await?;
            let row: Option<Row> = sqlx::query_as(&format!(
                "{SELECT} WHERE s.id = $1 AND s.project = $2 AND c.status IN ('running', 'paused')"
            ))
            .bind(id)
            .bind(&project.0)
            .fetch_optional(&self.db)
            .await?;
            let Some(row) = row else {
                return Err(sandbox_not_found(id));
            };
            let (sandbox, _) = from_row(row);
            // Refreshes last_active_at, or expires it when due.
            let container = self.load(project, id).await?;
            if !container.is_expired() {
                return Ok(Sandbox {
                    container,
                    ..sandbox
                });
            }
        }
        Err(sandbox_not_found(id))
    }

    /// The project of the running sandbox `id` whose data-plane token is `token`, the sandbox
    /// marked used (its session given the container's memory limit): the data plane's
    /// authorisation, in one statement (its requests carry no API key). None for an unknown
    /// id, a wrong token, or a sandbox past its timeout.
    pub async fn use_sandbox(&self, id: &str, token: &str) -> ApiResult<Option<Project>> {
        let now = ids::now();
        let found: Option<(String, String, Option<SqlJson<NetworkPolicy>>)> = sqlx::query_as(
            "UPDATE containers c SET last_active_at = $3,
                 data = c.data || jsonb_build_object('last_active_at', $3::bigint)
             FROM e2b_sandboxes s
             WHERE c.id = $1 AND s.id = c.id AND s.access_token = $2 AND c.status = 'running'
               AND COALESCE(c.expires_at, c.last_active_at + c.expires_after_minutes * 60) > $3
             RETURNING s.project, c.memory_limit, c.data->'network_policy'",
        )
        .bind(id)
        .bind(token)
        .bind(now)
        .fetch_optional(&self.db)
        .await?;
        let Some((project, memory, network)) = found else {
            return Ok(None);
        };
        if let Ok(memory) = memory.parse::<MemoryLimit>() {
            self.sandbox.set_memory_mb(id, memory.mib());
        }
        super::restore_network_policy(&self.sandbox, id, network.map(|n| n.0));
        // An E2B sandbox is a writable box, whichever replica serves it, and its checkpoints
        // keep the whole box.
        self.sandbox.use_box(id);
        Ok(Some(Project(project)))
    }

    /// The project's sandboxes in `states` (`running`, `paused`), oldest first, whose
    /// metadata has every `(key, value)` of `metadata`; `next` is the token an earlier page
    /// returned.
    pub async fn list_sandboxes(
        &self,
        project: &Project,
        (metadata, states): (&Map<String, Value>, &[&str]),
        limit: i64,
        next: Option<&str>,
    ) -> ApiResult<SandboxPage> {
        let after: i64 = match next {
            None | Some("") => 0,
            Some(token) => token
                .parse()
                .map_err(|_| ApiError::invalid_param("nextToken", "Invalid nextToken."))?,
        };
        let now = ids::now();
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "{SELECT} WHERE s.project = $1 AND c.status = ANY($6) AND s.metadata @> $2
               AND (c.status = 'paused'
                    OR COALESCE(c.expires_at, c.last_active_at + c.expires_after_minutes * 60) > $3)
               AND c.seq > $4
             ORDER BY c.seq LIMIT $5"
        ))
        .bind(&project.0)
        .bind(SqlJson(metadata))
        .bind(now)
        .bind(after)
        .bind(limit + 1)
        .bind(states)
        .fetch_all(&self.db)
        .await?;
        let mut sandboxes = Vec::new();
        let mut last = None;
        let more = rows.len() as i64 > limit;
        for row in rows.into_iter().take(limit as usize) {
            let (sandbox, seq) = from_row(row);
            last = Some(seq);
            sandboxes.push(sandbox);
        }
        Ok(SandboxPage {
            sandboxes,
            next_token: last.filter(|_| more).map(|seq| seq.to_string()),
        })
    }

    /// Kills the sandbox, running or paused: its container, session and checkpoint go. A 404
    /// as for [`Containers::sandbox`].
    pub async fn kill_sandbox(&self, project: &Project, id: &str) -> ApiResult<()> {
        self.sandbox(project, id).await?;
        self.remove(project, id).await
    }
}

/// E2B's not-found, worded as its API words it.
pub fn sandbox_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "sandbox \"{id}\" doesn't exist or you don't have access to it"
    ))
}
