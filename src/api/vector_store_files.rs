//! `/v1/vector_stores/{vector_store_id}/files` and `/file_batches`: adding files to a store
//! (indexed before the answer, so they come back `completed` or `failed`), listing,
//! retrieving, updating attributes, reading the indexed content, and removing them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;

use super::json::{nullable, ApiJson};
use super::AppState;
use crate::auth::Project;
use crate::domain::files::{require_files, FileRef};
use crate::domain::vector_stores::{attach, load, refresh, save, NewFile};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::vector_store::{
    validate_attributes, Attributes, ChunkingParam, FileCounts, FILE_STATUSES,
};
use crate::objects::{Deleted, FileBatch, VectorStoreFile};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::retrieval::{self, Chunking};
use crate::store::{self, Filter, Kind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/vector_stores/{vector_store_id}/files",
            get(list).post(create),
        )
        .route(
            "/vector_stores/{vector_store_id}/files/{file_id}",
            get(retrieve).post(update).delete(remove),
        )
        .route(
            "/vector_stores/{vector_store_id}/files/{file_id}/content",
            get(content),
        )
        .route(
            "/vector_stores/{vector_store_id}/file_batches",
            post(create_batch),
        )
        .route(
            "/vector_stores/{vector_store_id}/file_batches/{batch_id}",
            get(retrieve_batch),
        )
        .route(
            "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
            post(cancel_batch),
        )
        .route(
            "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
            get(list_batch_files),
        )
}

/// Files one batch may hold (OpenAI's limit).
const MAX_BATCH_FILES: usize = 2000;

/// A file of a store of this project; 404 naming both when the store does not hold it.
async fn get_file(
    db: &PgPool,
    project: &Project,
    vector_store_id: &str,
    file_id: &str,
) -> ApiResult<VectorStoreFile> {
    load(db, project, vector_store_id).await?;
    let filters = [("vector_store_id", vector_store_id)];
    store::get(db, Kind::VectorStoreFile, project, file_id, &filters)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::NotFound(format!(
                "No file found with id '{file_id}' in vector store '{vector_store_id}'."
            )),
            other => other,
        })
}

/// A request's `chunking_strategy` and `attributes`, checked.
fn file_options(
    param: &str,
    chunking: Option<&ChunkingParam>,
    attributes: Option<&Attributes>,
) -> ApiResult<(Chunking, Attributes)> {
    let at = |field: &str| super::json::param_path(param, field);
    let chunking = match chunking {
        Some(c) => c.resolve(&at("chunking_strategy"))?,
        None => Chunking::default(),
    };
    let attributes = attributes.cloned().unwrap_or_default();
    validate_attributes(&at("attributes"), &attributes)?;
    Ok((chunking, attributes))
}

/// The `filter` of a file list: one of the file statuses.
fn status_filter(query: &HashMap<String, String>) -> ApiResult<Option<&str>> {
    match query.get("filter").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) if FILE_STATUSES.contains(&s) => Ok(Some(s)),
        Some(other) => Err(ApiError::invalid_code(
            "filter",
            "invalid_value",
            format!("Invalid value: '{other}'. Supported values are: 'in_progress', 'completed', 'failed', and 'cancelled'."),
        )),
    }
}

// ----------------------------------------------------------------------------- files

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFile {
    file_id: String,
    #[serde(default)]
    chunking_strategy: Option<ChunkingParam>,
    #[serde(default)]
    attributes: Option<Attributes>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateFile {
    /// Required, though it may be `null` (no attributes).
    #[serde(deserialize_with = "nullable")]
    attributes: Option<Option<Attributes>>,
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    Path(vs_id): Path<String>,
    ApiJson(req): ApiJson<CreateFile>,
) -> ApiResult<Json<VectorStoreFile>> {
    load(&state.db, &project, &vs_id).await?;
    let (chunking, attributes) =
        file_options("", req.chunking_strategy.as_ref(), req.attributes.as_ref())?;
    require_files(
        &state.db,
        &project,
        &[FileRef {
            param: "file_id".into(),
            id: req.file_id.clone(),
        }],
    )
    .await?;
    let new = NewFile {
        file_id: req.file_id,
        chunking,
        attributes,
    };
    let added = attach(
        &state.db,
        &state.retrieval,
        &project,
        &vs_id,
        None,
        vec![new],
    )
    .await?;
    refresh(&state.db, &vs_id, true).await?;
    added
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("attach returned no file")))
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Path(vs_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<VectorStoreFile>>> {
    load(&state.db, &project, &vs_id).await?;
    file_page(
        &state,
        &project,
        vec![("vector_store_id", vs_id.as_str())],
        &query,
    )
    .await
}

/// A page of a store's files, `filters` narrowed by the `filter` (status) parameter.
async fn file_page(
    state: &AppState,
    project: &Project,
    mut filters: Vec<Filter<'_>>,
    query: &HashMap<String, String>,
) -> ApiResult<Json<ListPage<VectorStoreFile>>> {
    let params = ListParams::parse(query, OBJECT_LISTS)?;
    if let Some(status) = status_filter(query)? {
        filters.push(("data->>'status'", status));
    }
    let page = store::list(&state.db, Kind::VectorStoreFile, project, &filters, &params).await?;
    Ok(Json(page))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, file_id)): Path<(String, String)>,
) -> ApiResult<Json<VectorStoreFile>> {
    Ok(Json(get_file(&state.db, &project, &vs_id, &file_id).await?))
}

async fn update(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, file_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateFile>,
) -> ApiResult<Json<VectorStoreFile>> {
    let mut vsf = get_file(&state.db, &project, &vs_id, &file_id).await?;
    let attributes = req.attributes.flatten().unwrap_or_default();
    validate_attributes("attributes", &attributes)?;
    vsf.attributes = attributes;
    save(&state.db, &vsf).await?;
    Ok(Json(vsf))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, file_id)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    get_file(&state.db, &project, &vs_id, &file_id).await?;
    // Only the store's copy (and its chunks) goes; the file itself stays.
    let filters = [("vector_store_id", vs_id.as_str())];
    store::delete(
        &state.db,
        Kind::VectorStoreFile,
        &project,
        &file_id,
        &filters,
    )
    .await?;
    refresh(&state.db, &vs_id, false).await?;
    Ok(Json(Deleted::new(file_id, "vector_store.file.deleted")))
}

#[derive(Debug, Serialize)]
struct ContentPage {
    object: &'static str,
    data: Vec<Value>,
    has_more: bool,
    next_page: Option<String>,
}

async fn content(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, file_id)): Path<(String, String)>,
) -> ApiResult<Json<ContentPage>> {
    get_file(&state.db, &project, &vs_id, &file_id).await?;
    let chunks = retrieval::file_content(&state.db, &vs_id, &file_id).await?;
    Ok(Json(ContentPage {
        object: "vector_store.file_content.page",
        data: chunks
            .into_iter()
            .map(|text| serde_json::json!({"type": "text", "text": text}))
            .collect(),
        has_more: false,
        next_page: None,
    }))
}

// ----------------------------------------------------------------------------- batches

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBatch {
    #[serde(default)]
    file_ids: Option<Vec<String>>,
    #[serde(default)]
    files: Option<Vec<CreateFile>>,
    #[serde(default)]
    chunking_strategy: Option<ChunkingParam>,
    #[serde(default)]
    attributes: Option<Attributes>,
}

impl CreateBatch {
    /// The files to add, each with its options: `file_ids` share the request's, `files` carry
    /// their own.
    fn into_files(self) -> ApiResult<(Vec<NewFile>, Vec<FileRef>)> {
        let empty = |param: &str| {
            ApiError::invalid_code(
                param,
                "empty_array",
                format!("Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."),
            )
        };
        let (shared_chunking, shared_attributes) = file_options(
            "",
            self.chunking_strategy.as_ref(),
            self.attributes.as_ref(),
        )?;
        match (self.file_ids, self.files) {
            (Some(_), Some(_)) => Err(ApiError::invalid_param(
                "files",
                "Invalid 'files': 'file_ids' and 'files' are mutually exclusive; give one of them.",
            )),
            (None, None) => Err(ApiError::invalid_code(
                "file_ids",
                "missing_required_parameter",
                "Missing required parameter: 'file_ids'.",
            )),
            (Some(ids), None) => {
                if ids.is_empty() {
                    return Err(empty("file_ids"));
                }
                crate::validate::max_items("file_ids", &ids, MAX_BATCH_FILES)?;
                let refs = FileRef::each("file_ids", &ids);
                let files = ids
                    .into_iter()
                    .map(|file_id| NewFile {
                        file_id,
                        chunking: shared_chunking,
                        attributes: shared_attributes.clone(),
                    })
                    .collect();
                Ok((files, refs))
            }
            (None, Some(items)) => {
                if items.is_empty() {
                    return Err(empty("files"));
                }
                crate::validate::max_items("files", &items, MAX_BATCH_FILES)?;
                let mut files = Vec::with_capacity(items.len());
                let mut refs = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let param = format!("files[{i}]");
                    let (chunking, attributes) = file_options(
                        &param,
                        item.chunking_strategy.as_ref(),
                        item.attributes.as_ref(),
                    )?;
                    refs.push(FileRef {
                        param: format!("{param}.file_id"),
                        id: item.file_id.clone(),
                    });
                    files.push(NewFile {
                        file_id: item.file_id,
                        chunking,
                        attributes,
                    });
                }
                Ok((files, refs))
            }
        }
    }
}

async fn get_batch(
    db: &PgPool,
    project: &Project,
    vs_id: &str,
    batch_id: &str,
) -> ApiResult<FileBatch> {
    load(db, project, vs_id).await?;
    store::get(
        db,
        Kind::FileBatch,
        project,
        batch_id,
        &[("vector_store_id", vs_id)],
    )
    .await
}

async fn create_batch(
    State(state): State<AppState>,
    project: Project,
    Path(vs_id): Path<String>,
    ApiJson(req): ApiJson<CreateBatch>,
) -> ApiResult<Json<FileBatch>> {
    load(&state.db, &project, &vs_id).await?;
    let (files, refs) = req.into_files()?;
    require_files(&state.db, &project, &refs).await?;

    let mut batch = FileBatch {
        id: ids::new_id(ids::FILE_BATCH),
        object: "vector_store.files_batch".into(),
        created_at: ids::now(),
        vector_store_id: vs_id.clone(),
        status: "in_progress".into(),
        file_counts: FileCounts::default(),
    };
    batch.file_counts.add("in_progress", files.len() as u64);
    sqlx::query(
        "INSERT INTO vector_store_file_batches (id, vector_store_id, project, created_at, data)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&batch.id)
    .bind(&vs_id)
    .bind(&project.0)
    .bind(batch.created_at)
    .bind(SqlJson(&batch))
    .execute(&state.db)
    .await?;

    let added = attach(
        &state.db,
        &state.retrieval,
        &project,
        &vs_id,
        Some(&batch.id),
        files,
    )
    .await?;
    refresh(&state.db, &vs_id, true).await?;

    let mut tx = state.db.begin().await?;
    // Re-read: a cancel may have come in while the files were indexed.
    let mut batch: FileBatch =
        store::get_for_update(&mut *tx, Kind::FileBatch, &project, &batch.id, &[]).await?;
    batch.file_counts = FileCounts::default();
    for vsf in &added {
        batch.file_counts.add(&vsf.status, 1);
    }
    if batch.status == "in_progress" {
        batch.status = "completed".into();
    }
    store::put(&mut *tx, Kind::FileBatch, &batch.id, &batch).await?;
    tx.commit().await?;
    Ok(Json(batch))
}

async fn retrieve_batch(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, batch_id)): Path<(String, String)>,
) -> ApiResult<Json<FileBatch>> {
    Ok(Json(
        get_batch(&state.db, &project, &vs_id, &batch_id).await?,
    ))
}

/// Files are indexed as they are added, so only a batch still being added can be cancelled.
async fn cancel_batch(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, batch_id)): Path<(String, String)>,
) -> ApiResult<Json<FileBatch>> {
    load(&state.db, &project, &vs_id).await?;
    let mut tx = state.db.begin().await?;
    let filters = [("vector_store_id", vs_id.as_str())];
    let mut batch: FileBatch =
        store::get_for_update(&mut *tx, Kind::FileBatch, &project, &batch_id, &filters).await?;
    if batch.status != "in_progress" {
        return Err(ApiError::invalid(format!(
            "Cannot cancel vector store file batch with status '{}'.",
            batch.status
        )));
    }
    batch.status = "cancelled".into();
    store::put(&mut *tx, Kind::FileBatch, &batch_id, &batch).await?;
    tx.commit().await?;
    Ok(Json(batch))
}

async fn list_batch_files(
    State(state): State<AppState>,
    project: Project,
    Path((vs_id, batch_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<VectorStoreFile>>> {
    get_batch(&state.db, &project, &vs_id, &batch_id).await?;
    let filters: Vec<Filter<'_>> = vec![
        ("vector_store_id", vs_id.as_str()),
        ("data->>'batch_id'", batch_id.as_str()),
    ];
    file_page(&state, &project, filters, &query).await
}
