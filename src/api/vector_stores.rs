//! `/v1/vector_stores`: create, list, retrieve, modify and delete ([`super::vector_store_search`]
//! has search); plus the helpers
//! other resources use to make stores (a thread's `tool_resources`, message attachments).
//! A store's files and file batches are in [`super::vector_store_files`].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, PgPool};

use super::files::{require_files, FileRef};
use super::json::{nullable, ApiJson};
use super::vector_store_files::{attach, NewFile};
use super::AppState;
use crate::auth::Project;
use crate::blobs::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::vector_store::{Attributes, ChunkingParam, ExpiresAfter, FileCounts};
use crate::objects::{Deleted, VectorStore};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::retrieval::Chunking;
use crate::sandbox::SandboxManager;
use crate::store::{self, Kind};
use crate::validate::{self, Metadata};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vector_stores", get(list).post(create))
        .route(
            "/vector_stores/{vector_store_id}",
            get(retrieve).post(modify).delete(remove),
        )
}

/// Files a create request may list (OpenAI's limit).
const MAX_CREATE_FILES: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVectorStore {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    file_ids: Option<Vec<String>>,
    #[serde(default)]
    expires_after: Option<ExpiresAfter>,
    #[serde(default)]
    chunking_strategy: Option<ChunkingParam>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyVectorStore {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_after: Option<Option<ExpiresAfter>>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// A store of this project, with its status as of now.
pub async fn load<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    id: &str,
) -> ApiResult<VectorStore> {
    let mut vs: VectorStore = store::get(db, Kind::VectorStore, project, id, &[]).await?;
    vs.observe(ids::now());
    Ok(vs)
}

/// Every id must name a store of this project; `refs` are (param, id) pairs, so the error
/// names the field that listed the unknown one.
pub async fn require_stores<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    refs: &[(String, String)],
) -> ApiResult<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = refs.iter().map(|(_, id)| id.as_str()).collect();
    let found: Vec<String> =
        sqlx::query_scalar("SELECT id FROM vector_stores WHERE project = $1 AND id = ANY($2)")
            .bind(&project.0)
            .bind(&ids)
            .fetch_all(db)
            .await?;
    match refs.iter().find(|(_, id)| !found.contains(id)) {
        Some((param, id)) => Err(ApiError::invalid_code(
            param.clone(),
            "invalid_value",
            format!("Invalid '{param}': no vector store found with id '{id}'."),
        )),
        None => Ok(()),
    }
}

/// Creates a store holding `file_ids`, indexed before this returns (for a thread's
/// `tool_resources.file_search.vector_stores` and message attachments). Callers check the
/// ids first with `require_files`, so that errors name their own parameters.
pub async fn create_for_files(
    db: &PgPool,
    blobs: &BlobStore,
    sandbox: &SandboxManager,
    project: &Project,
    name: Option<String>,
    file_ids: &[String],
    chunking: Option<Chunking>,
) -> ApiResult<VectorStore> {
    require_files(db, project, &FileRef::each("file_ids", file_ids)).await?;
    let vs = VectorStore::new(
        ids::new_id(ids::VECTOR_STORE),
        name,
        None,
        None,
        Metadata::new(),
        ids::now(),
    );
    insert(db, project, &vs).await?;
    let files = new_files(file_ids, chunking.unwrap_or_default(), &Attributes::new());
    attach(db, blobs, sandbox, project, &vs.id, None, files).await?;
    refresh(db, &vs.id, true).await
}

/// Adds files to a store of this project and indexes them, with the `auto` chunking.
pub async fn add_files(
    db: &PgPool,
    blobs: &BlobStore,
    sandbox: &SandboxManager,
    project: &Project,
    vector_store_id: &str,
    file_ids: &[String],
) -> ApiResult<()> {
    load(db, project, vector_store_id).await?;
    require_files(db, project, &FileRef::each("file_ids", file_ids)).await?;
    let files = new_files(file_ids, Chunking::default(), &Attributes::new());
    attach(db, blobs, sandbox, project, vector_store_id, None, files).await?;
    refresh(db, vector_store_id, true).await?;
    Ok(())
}

fn new_files(file_ids: &[String], chunking: Chunking, attributes: &Attributes) -> Vec<NewFile> {
    file_ids
        .iter()
        .map(|id| NewFile {
            file_id: id.clone(),
            chunking,
            attributes: attributes.clone(),
        })
        .collect()
}

async fn insert<'e>(db: impl PgExecutor<'e>, project: &Project, vs: &VectorStore) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO vector_stores (id, project, created_at, data) VALUES ($1, $2, $3, $4)",
    )
    .bind(&vs.id)
    .bind(&project.0)
    .bind(vs.created_at)
    .bind(SqlJson(vs))
    .execute(db)
    .await?;
    Ok(())
}

/// Recounts a store's files and bytes from its file rows, and with `touch` records it as
/// used now. Call after any change to its files.
pub(super) async fn refresh(db: &PgPool, id: &str, touch: bool) -> ApiResult<VectorStore> {
    let mut tx = db.begin().await?;
    let SqlJson(mut vs): SqlJson<VectorStore> =
        sqlx::query_scalar("SELECT data FROM vector_stores WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Kind::VectorStore.not_found(id))?;
    let rows: Vec<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT data->>'status', count(*), coalesce(sum((data->>'usage_bytes')::bigint), 0)::bigint
         FROM vector_store_files WHERE vector_store_id = $1 GROUP BY 1",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let mut counts = FileCounts::default();
    let mut usage = 0;
    for (status, n, bytes) in rows {
        counts.add(status.as_deref().unwrap_or(""), n as u64);
        usage += bytes as u64;
    }
    vs.file_counts = counts;
    vs.usage_bytes = usage;
    let now = ids::now();
    if touch {
        vs.touch(now);
    } else {
        vs.observe(now);
    }
    store::put(&mut *tx, Kind::VectorStore, id, &vs).await?;
    tx.commit().await?;
    Ok(vs)
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    ApiJson(req): ApiJson<CreateVectorStore>,
) -> ApiResult<Json<VectorStore>> {
    let file_ids = req.file_ids.unwrap_or_default();
    validate::max_items("file_ids", &file_ids, MAX_CREATE_FILES)?;
    if let Some(policy) = &req.expires_after {
        policy.validate("expires_after")?;
    }
    let chunking = match &req.chunking_strategy {
        Some(c) => c.resolve("chunking_strategy")?,
        None => Chunking::default(),
    };
    let metadata = req.metadata.unwrap_or_default();
    validate::metadata("metadata", &metadata)?;
    if let Some(description) = &req.description {
        validate::max_chars("description", description, 512)?;
    }
    require_files(&state.db, &project, &FileRef::each("file_ids", &file_ids)).await?;

    let vs = VectorStore::new(
        ids::new_id(ids::VECTOR_STORE),
        req.name,
        req.description,
        req.expires_after,
        metadata,
        ids::now(),
    );
    insert(&state.db, &project, &vs).await?;
    if file_ids.is_empty() {
        return Ok(Json(vs));
    }
    let files = new_files(&file_ids, chunking, &Attributes::new());
    attach(
        &state.db,
        &state.blobs,
        &state.sandbox,
        &project,
        &vs.id,
        None,
        files,
    )
    .await?;
    Ok(Json(refresh(&state.db, &vs.id, true).await?))
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<VectorStore>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let mut page: ListPage<VectorStore> =
        store::list(&state.db, Kind::VectorStore, &project, &[], &params).await?;
    let now = ids::now();
    page.data.iter_mut().for_each(|vs| vs.observe(now));
    Ok(Json(page))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<VectorStore>> {
    Ok(Json(load(&state.db, &project, &id).await?))
}

async fn modify(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ModifyVectorStore>,
) -> ApiResult<Json<VectorStore>> {
    let mut tx = state.db.begin().await?;
    let mut vs: VectorStore =
        store::get_for_update(&mut *tx, Kind::VectorStore, &project, &id, &[]).await?;
    if let Some(name) = req.name {
        vs.name = name.unwrap_or_default();
    }
    if let Some(policy) = req.expires_after {
        if let Some(policy) = &policy {
            policy.validate("expires_after")?;
        }
        vs.expires_after = policy;
    }
    if let Some(metadata) = req.metadata {
        validate::metadata("metadata", &metadata)?;
        vs.metadata = metadata;
    }
    vs.touch(ids::now());
    store::put(&mut *tx, Kind::VectorStore, &id, &vs).await?;
    tx.commit().await?;
    Ok(Json(vs))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    // Its files, batches and chunks go with it (foreign keys cascade); the files themselves stay.
    store::delete(&state.db, Kind::VectorStore, &project, &id, &[]).await?;
    Ok(Json(Deleted::new(id, "vector_store.deleted")))
}
