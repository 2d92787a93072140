//! `/v1/vector_stores`: create, list, retrieve, modify and delete ([`super::vector_store_search`]
//! has search); plus the helpers
//! other resources use to make stores (a thread's `tool_resources`, message attachments).
//! A store's files and file batches are in [`super::vector_store_files`].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::json::{nullable, ApiJson};
use super::AppState;
use crate::auth::Project;
use crate::domain::files::{require_files, FileRef};
use crate::domain::vector_stores::{attach, insert, load, new_files, refresh};
use crate::error::ApiResult;
use crate::ids;
use crate::objects::vector_store::{Attributes, ChunkingParam, ExpiresAfter};
use crate::objects::{Deleted, VectorStore};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::retrieval::Chunking;
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
    attach(&state.db, &state.retrieval, &project, &vs.id, None, files).await?;
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
