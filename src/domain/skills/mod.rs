//! Skills: versioned, immutable bundles of files with a `SKILL.md` (the open Agent Skills
//! format), uploaded through `/v1/skills` and mounted read-only into containers under
//! `/mnt/skills/<name>` (see [`attach`]).
//!
//! A skill has versions numbered 1, 2, …; `latest_version` is the newest, `default_version`
//! the one a reference without a version gets (the first, until moved). Each version's
//! bundle is a zip in the blob store; its name and description come from its `SKILL.md`.
//! Deleting: the default version only once it is the last one (which deletes the skill);
//! deleting a skill deletes its versions.

pub mod attach;
pub mod bundle;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::auth::Project;
use crate::blobs::{BlobStore, Key};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::pagination::{ListPage, ListParams, Order};

pub use bundle::Bundle;

pub const SKILL_PREFIX: &str = "skill_";
pub const VERSION_PREFIX: &str = "skillver_";

/// The `skill` object.
#[derive(Debug, Clone, Serialize)]
pub struct Skill {
    pub id: String,
    pub object: &'static str,
    pub created_at: i64,
    pub name: String,
    pub description: String,
    pub default_version: String,
    pub latest_version: String,
}

/// The `skill.version` object.
#[derive(Debug, Clone, Serialize)]
pub struct SkillVersion {
    pub id: String,
    pub object: &'static str,
    pub skill_id: String,
    pub version: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
}

/// What `DELETE /skills/{id}/versions/{v}` answers.
#[derive(Debug, Serialize)]
pub struct DeletedVersion {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
    pub version: String,
}

type SkillRow = (String, i64, i32, i32, String, String);
type VersionRow = (String, String, i32, String, String, i64);

const SELECT_SKILL: &str = "SELECT s.id, s.created_at, s.default_version, s.latest_version,
        v.name, v.description
    FROM skills s JOIN skill_versions v ON v.skill_id = s.id AND v.version = s.default_version";
const SELECT_VERSION: &str =
    "SELECT id, skill_id, version, name, description, created_at FROM skill_versions";

fn skill_of((id, created_at, default, latest, name, description): SkillRow) -> Skill {
    Skill {
        id,
        object: "skill",
        created_at,
        name,
        description,
        default_version: default.to_string(),
        latest_version: latest.to_string(),
    }
}

fn version_of((id, skill_id, version, name, description, created_at): VersionRow) -> SkillVersion {
    SkillVersion {
        id,
        object: "skill.version",
        skill_id,
        version: version.to_string(),
        name,
        description,
        created_at,
    }
}

pub fn skill_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Skill with id '{id}' not found."))
}

fn version_not_found(id: &str, version: &str) -> ApiError {
    ApiError::NotFound(format!("Version '{version}' of skill '{id}' not found."))
}

/// Which version a path or a reference names: a positive number, or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Number(i32),
    Latest,
    Default,
}

impl Which {
    /// From a path segment or a reference's `version` (a string or a number).
    pub fn parse(param: &str, raw: &Value) -> ApiResult<Which> {
        let bad = || {
            ApiError::invalid_code(
                param,
                "invalid_value",
                format!(
                    "Invalid '{param}': expected a positive version number or 'latest', but got {raw} instead."
                ),
            )
        };
        match raw {
            Value::String(s) if s == "latest" => Ok(Which::Latest),
            Value::String(s) => s
                .parse::<i32>()
                .ok()
                .filter(|n| *n > 0)
                .map(Which::Number)
                .ok_or_else(bad),
            Value::Number(n) => n
                .as_i64()
                .filter(|n| (1..=i32::MAX as i64).contains(n))
                .map(|n| Which::Number(n as i32))
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    /// The pointer column to follow, unless the number is given.
    fn sql(self) -> (&'static str, Option<i32>) {
        match self {
            Which::Number(n) => ("s.default_version", Some(n)),
            Which::Latest => ("s.latest_version", None),
            Which::Default => ("s.default_version", None),
        }
    }
}

/// The skills store, over Postgres and the blob store. Cheap to clone.
#[derive(Clone)]
pub struct Skills {
    db: PgPool,
    blobs: BlobStore,
}

impl Skills {
    pub fn new(db: PgPool, blobs: BlobStore) -> Self {
        Self { db, blobs }
    }

    /// A new skill with `bundle` as its version 1 (default and latest).
    pub async fn create(&self, project: &Project, bundle: &Bundle) -> ApiResult<Skill> {
        let id = format!("{SKILL_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let version_id = self.store_bundle(bundle).await?;
        let inserted = async {
            let mut tx = self.db.begin().await?;
            sqlx::query(
                "INSERT INTO skills (id, project, created_at, default_version, latest_version, next_version)
                 VALUES ($1, $2, $3, 1, 1, 2)",
            )
            .bind(&id)
            .bind(&project.0)
            .bind(ids::now())
            .execute(&mut *tx)
            .await?;
            insert_version(&mut tx, project, &id, &version_id, 1, bundle).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = inserted {
            self.drop_blob(&version_id).await;
            return Err(e.into());
        }
        self.retrieve(project, &id).await
    }

    /// Adds `bundle` as the skill's next version, the default too if asked.
    pub async fn create_version(
        &self,
        project: &Project,
        id: &str,
        bundle: &Bundle,
        make_default: bool,
    ) -> ApiResult<SkillVersion> {
        self.retrieve(project, id).await?;
        let version_id = self.store_bundle(bundle).await?;
        let inserted = async {
            let mut tx = self.db.begin().await?;
            let number: Option<i32> = sqlx::query_scalar(
                "UPDATE skills SET next_version = next_version + 1, latest_version = next_version,
                     default_version = CASE WHEN $3 THEN next_version ELSE default_version END
                 WHERE id = $1 AND project = $2 RETURNING latest_version",
            )
            .bind(id)
            .bind(&project.0)
            .bind(make_default)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(number) = number else {
                return Ok(None);
            };
            insert_version(&mut tx, project, id, &version_id, number, bundle).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(number))
        }
        .await;
        match inserted {
            Ok(Some(number)) => self.version(project, id, Which::Number(number)).await,
            Ok(None) => {
                self.drop_blob(&version_id).await;
                Err(skill_not_found(id))
            }
            Err(e) => {
                self.drop_blob(&version_id).await;
                Err(e.into())
            }
        }
    }

    async fn store_bundle(&self, bundle: &Bundle) -> ApiResult<String> {
        let version_id = format!("{VERSION_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let zip = bundle.to_zip()?;
        self.blobs
            .put(&Key::skill_version(&version_id), zip)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(version_id)
    }

    async fn drop_blob(&self, version_id: &str) {
        if let Err(e) = self.blobs.remove(&Key::skill_version(version_id)).await {
            tracing::warn!(version_id, error = %e, "removing a skill version's bundle");
        }
    }

    pub async fn retrieve(&self, project: &Project, id: &str) -> ApiResult<Skill> {
        let row: Option<SkillRow> = sqlx::query_as(&format!(
            "{SELECT_SKILL} WHERE s.id = $1 AND s.project = $2"
        ))
        .bind(id)
        .bind(&project.0)
        .fetch_optional(&self.db)
        .await?;
        row.map(skill_of).ok_or_else(|| skill_not_found(id))
    }

    /// One page of the project's skills by creation; `after` is a skill id.
    pub async fn list(&self, project: &Project, params: &ListParams) -> ApiResult<ListPage<Skill>> {
        let (op, dir) = order(params.order);
        let rows: Vec<SkillRow> = sqlx::query_as(&format!(
            "{SELECT_SKILL} WHERE s.project = $1
               AND ($2::text IS NULL OR s.seq {op} (SELECT seq FROM skills WHERE id = $2 AND project = $1))
             ORDER BY s.seq {dir} LIMIT $3"
        ))
        .bind(&project.0)
        .bind(params.after.as_deref())
        .bind(params.limit as i64 + 1)
        .fetch_all(&self.db)
        .await?;
        Ok(page(
            rows.into_iter().map(skill_of).collect(),
            params,
            |s| s.id.clone(),
        ))
    }

    /// Moves the default version (given as a string or a number).
    pub async fn set_default(
        &self,
        project: &Project,
        id: &str,
        version: &Value,
    ) -> ApiResult<Skill> {
        let which = Which::parse("default_version", version)?;
        let target = self.version(project, id, which).await?;
        sqlx::query("UPDATE skills SET default_version = $3 WHERE id = $1 AND project = $2")
            .bind(id)
            .bind(&project.0)
            .bind(target.version.parse::<i32>().unwrap_or_default())
            .execute(&self.db)
            .await?;
        self.retrieve(project, id).await
    }

    /// Deletes the skill, its versions and their bundles.
    pub async fn delete(&self, project: &Project, id: &str) -> ApiResult<()> {
        let versions: Vec<String> = sqlx::query_scalar(
            "SELECT v.id FROM skill_versions v JOIN skills s ON s.id = v.skill_id
             WHERE s.id = $1 AND s.project = $2",
        )
        .bind(id)
        .bind(&project.0)
        .fetch_all(&self.db)
        .await?;
        let deleted = sqlx::query("DELETE FROM skills WHERE id = $1 AND project = $2")
            .bind(id)
            .bind(&project.0)
            .execute(&self.db)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(skill_not_found(id));
        }
        for version_id in versions {
            self.drop_unused_blob(&version_id).await;
        }
        Ok(())
    }

    /// A version by number (`latest` and the default too).
    pub async fn version(
        &self,
        project: &Project,
        id: &str,
        which: Which,
    ) -> ApiResult<SkillVersion> {
        let (column, number) = which.sql();
        let row: Option<VersionRow> = sqlx::query_as(&format!(
            "SELECT v.id, v.skill_id, v.version, v.name, v.description, v.created_at
             FROM skill_versions v JOIN skills s ON s.id = v.skill_id
             WHERE s.id = $1 AND s.project = $2 AND v.version = COALESCE($3, {column})"
        ))
        .bind(id)
        .bind(&project.0)
        .bind(number)
        .fetch_optional(&self.db)
        .await?;
        match row {
            Some(row) => Ok(version_of(row)),
            None => {
                self.retrieve(project, id).await?;
                Err(version_not_found(id, &which_label(which)))
            }
        }
    }

    /// One page of the skill's versions by number; `after` is a version id.
    pub async fn list_versions(
        &self,
        project: &Project,
        id: &str,
        params: &ListParams,
    ) -> ApiResult<ListPage<SkillVersion>> {
        self.retrieve(project, id).await?;
        let (op, dir) = order(params.order);
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "{SELECT_VERSION} WHERE skill_id = $1 AND project = $2
               AND ($3::text IS NULL OR version {op} (SELECT version FROM skill_versions WHERE id = $3 AND skill_id = $1))
             ORDER BY version {dir} LIMIT $4"
        ))
        .bind(id)
        .bind(&project.0)
        .bind(params.after.as_deref())
        .bind(params.limit as i64 + 1)
        .fetch_all(&self.db)
        .await?;
        Ok(page(
            rows.into_iter().map(version_of).collect(),
            params,
            |v| v.id.clone(),
        ))
    }

    /// Deletes a version: not the default while others are left; the last one takes the
    /// skill with it. `latest_version` falls back to the newest left.
    pub async fn delete_version(
        &self,
        project: &Project,
        id: &str,
        which: Which,
    ) -> ApiResult<DeletedVersion> {
        let target = self.version(project, id, which).await?;
        let skill = self.retrieve(project, id).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM skill_versions WHERE skill_id = $1")
                .bind(id)
                .fetch_one(&self.db)
                .await?;
        if count == 1 {
            self.delete(project, id).await?;
        } else {
            if target.version == skill.default_version {
                return Err(ApiError::invalid_code(
                    "version",
                    "invalid_request",
                    format!(
                        "Cannot delete version {} of skill '{id}': it is the default version. \
                         Set another default_version first.",
                        target.version
                    ),
                ));
            }
            let mut tx = self.db.begin().await?;
            sqlx::query("DELETE FROM skill_versions WHERE id = $1")
                .bind(&target.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE skills SET latest_version =
                     (SELECT max(version) FROM skill_versions WHERE skill_id = $1)
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.drop_unused_blob(&target.id).await;
        }
        Ok(DeletedVersion {
            id: target.id,
            object: "skill.version.deleted",
            deleted: true,
            version: target.version,
        })
    }

    /// A version's bundle as a zip (one top-level folder).
    pub async fn content(&self, project: &Project, id: &str, which: Which) -> ApiResult<Bytes> {
        let version = self.version(project, id, which).await?;
        Ok(self
            .blobs
            .read(&Key::skill_version(&version.id))
            .await
            .map_err(anyhow::Error::from)?)
    }

    /// Removes a deleted version's bundle unless a running container was created with it
    /// (its session may have to mount it again); such a bundle stays until then.
    async fn drop_unused_blob(&self, version_id: &str) {
        let used: Result<bool, _> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM containers WHERE status = 'running'
                 AND skills @> jsonb_build_array(jsonb_build_object('key', $1::text)))",
        )
        .bind(version_id)
        .fetch_one(&self.db)
        .await;
        if !matches!(used, Ok(true)) {
            self.drop_blob(version_id).await;
        }
    }
}

fn which_label(which: Which) -> String {
    match which {
        Which::Number(n) => n.to_string(),
        Which::Latest => "latest".into(),
        Which::Default => "default".into(),
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    project: &Project,
    skill_id: &str,
    version_id: &str,
    number: i32,
    bundle: &Bundle,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO skill_versions (id, skill_id, project, version, name, description,
             created_at, bytes, files)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(version_id)
    .bind(skill_id)
    .bind(&project.0)
    .bind(number)
    .bind(&bundle.name)
    .bind(&bundle.description)
    .bind(ids::now())
    .bind(bundle.total_bytes() as i64)
    .bind(bundle.files.len() as i32)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn order(order: Order) -> (&'static str, &'static str) {
    match order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    }
}

fn page<T>(mut items: Vec<T>, params: &ListParams, id: impl Fn(&T) -> String) -> ListPage<T> {
    let has_more = items.len() > params.limit;
    items.truncate(params.limit);
    ListPage::new(items.into_iter().map(|t| (id(&t), t)).collect(), has_more)
}
