//! `/v1/files`: list, retrieve, delete, download, and the file lookups other resources use.
//! Uploads are in [`upload`], MIME types in [`content_type`].

mod content_type;
mod upload;

pub use content_type::content_type;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, QueryBuilder, Row};

use super::AppState;
use crate::auth::Project;
use crate::blobs::Key;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::{Deleted, FileObject};
use crate::pagination::{ListPage, ListParams, Order, FILE_LISTS};
use crate::store::{self, Kind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/files",
            get(list)
                .post(upload::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/files/{file_id}", get(retrieve).delete(remove))
        .route("/files/{file_id}/content", get(content))
}

/// The SQL condition a file row meets until it expires; expired files read as deleted.
const LIVE: &str = "((data->>'expires_at') IS NULL \
    OR (data->>'expires_at')::bigint > extract(epoch from now()))";

/// Every id must name a live file of this project; `param` says which field listed them.
pub async fn require_files<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    refs: &[FileRef],
) -> ApiResult<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = refs.iter().map(|r| r.id.as_str()).collect();
    let found: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM files WHERE project = $1 AND id = ANY($2) AND {LIVE}"
    ))
    .bind(&project.0)
    .bind(&ids)
    .fetch_all(db)
    .await?;
    match refs.iter().find(|r| !found.contains(&r.id)) {
        Some(FileRef { param, id }) => Err(ApiError::invalid_code(
            param.clone(),
            "invalid_value",
            format!("Invalid '{param}': no file found with id '{id}'."),
        )),
        None => Ok(()),
    }
}

/// A file id in a request, with the parameter that names it (`attachments[2].file_id`).
pub struct FileRef {
    pub param: String,
    pub id: String,
}

impl FileRef {
    /// One ref per id of a list parameter: `param[0]`, `param[1]`, ...
    pub fn each(param: &str, ids: &[String]) -> Vec<Self> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Self {
                param: format!("{param}[{i}]"),
                id: id.clone(),
            })
            .collect()
    }
}

/// Stores bytes the server produced (images, files a run wrote) as a file object.
pub async fn store_generated(
    db: &sqlx::PgPool,
    blobs: &crate::blobs::BlobStore,
    project: &Project,
    filename: &str,
    purpose: &str,
    bytes: &[u8],
) -> ApiResult<FileObject> {
    let file = new_file_object(
        ids::new_id(ids::FILE),
        filename,
        purpose,
        bytes.len() as u64,
    );
    blobs
        .put(&Key::file(&file.id), bytes.to_vec())
        .await
        .map_err(anyhow::Error::from)?;
    insert(db, project, &file).await?;
    Ok(file)
}

fn new_file_object(id: String, filename: &str, purpose: &str, bytes: u64) -> FileObject {
    FileObject {
        id,
        object: "file".into(),
        bytes,
        created_at: ids::now(),
        expires_at: None,
        filename: filename.to_string(),
        purpose: purpose.to_string(),
        status: "processed".into(),
        status_details: None,
    }
}

async fn insert<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    file: &FileObject,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO files (id, project, created_at, purpose, data) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&file.id)
    .bind(&project.0)
    .bind(file.created_at)
    .bind(&file.purpose)
    .bind(SqlJson(file))
    .execute(db)
    .await?;
    Ok(())
}

/// Like `store::list`, but without expired files; the files list has no `before`.
async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<FileObject>>> {
    let params = ListParams::parse(&query, FILE_LISTS)?;
    let purpose = query.get("purpose").filter(|p| !p.is_empty());
    let unstorable = |v: Option<&String>| v.is_some_and(|v| v.contains('\0'));
    if unstorable(purpose) || unstorable(params.after.as_ref()) {
        return Ok(Json(ListPage::new(vec![], false)));
    }
    let mut qb = QueryBuilder::new("SELECT id, data FROM files WHERE project = ");
    qb.push_bind(project.0.as_str());
    qb.push(format!(" AND {LIVE}"));
    if let Some(purpose) = purpose {
        qb.push(" AND purpose = ").push_bind(purpose.as_str());
    }
    let ascending = params.order == Order::Asc;
    if let Some(after) = &params.after {
        let op = if ascending { ">" } else { "<" };
        qb.push(format!(" AND seq {op} (SELECT seq FROM files WHERE id = "))
            .push_bind(after.as_str())
            .push(")");
    }
    qb.push(if ascending {
        " ORDER BY seq ASC"
    } else {
        " ORDER BY seq DESC"
    });
    qb.push(" LIMIT ").push_bind(params.limit as i64 + 1);

    let rows = qb.build().fetch_all(&state.db).await?;
    let has_more = rows.len() > params.limit;
    let mut items = Vec::with_capacity(rows.len().min(params.limit));
    for row in rows.into_iter().take(params.limit) {
        let SqlJson(file): SqlJson<FileObject> = row.try_get("data")?;
        items.push((row.try_get("id")?, file));
    }
    Ok(Json(ListPage::new(items, has_more)))
}

/// A file of this project that has not expired; readers outside this module should use it too.
pub async fn get_live<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    id: &str,
) -> ApiResult<FileObject> {
    let file: FileObject = store::get(db, Kind::File, project, id, &[]).await?;
    if file.is_expired(ids::now()) {
        return Err(Kind::File.not_found(id));
    }
    Ok(file)
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<FileObject>> {
    Ok(Json(get_live(&state.db, &project, &id).await?))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    get_live(&state.db, &project, &id).await?;
    store::delete(&state.db, Kind::File, &project, &id, &[]).await?;
    state
        .blobs
        .remove(&Key::file(&id))
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(Deleted::new(id, "file")))
}

async fn content(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let file = get_live(&state.db, &project, &id).await?;
    let (_, bytes) = state.blobs.stream(&Key::file(&id)).await.map_err(|e| {
        ApiError::Internal(anyhow::Error::from(e).context(format!("blob of {id} is missing")))
    })?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file.filename.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&file.filename)),
            (header::CONTENT_LENGTH, file.bytes.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(bytes),
    )
        .into_response())
}
