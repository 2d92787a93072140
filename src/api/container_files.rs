//! `/v1/containers/{id}/files`: add (a multipart `file`, or JSON `{"file_id"}` copying a
//! `/v1/files` file), list, retrieve, delete, and `/content` (the raw bytes). The work is in
//! [`crate::domain::containers::files`].

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::json::parse_body;
use super::AppState;
use crate::auth::Project;
use crate::domain::files::content_type;
use crate::error::{ApiError, ApiResult};
use crate::objects::{ContainerFile, Deleted};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/containers/{container_id}/files",
            get(list).post(create).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/containers/{container_id}/files/{file_id}",
            get(retrieve).delete(remove),
        )
        .route(
            "/containers/{container_id}/files/{file_id}/content",
            get(content),
        )
}

/// The JSON form of an add: a `/v1/files` file to copy in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFile {
    file_id: Option<String>,
}

/// Newer SDKs send multipart when given `file` and JSON when given only `file_id`; older ones
/// (openai-python 1.x) send `file_id` as a multipart field too.
async fn create(
    State(state): State<AppState>,
    project: Project,
    Path(container_id): Path<String>,
    req: Request,
) -> ApiResult<Json<ContainerFile>> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let added = if multipart {
        let multipart = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        receive_form(multipart, state.config.max_upload_bytes).await?
    } else {
        let limit = state.config.max_body_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge("Request body too large.".into()))?;
        let AddFile { file_id } = parse_body(&body)?;
        Added::FileId(file_id.ok_or_else(missing_file)?)
    };
    let containers = &state.containers;
    let file = match added {
        Added::Upload(filename, bytes) => {
            containers
                .add_upload(&project, &container_id, &filename, bytes)
                .await?
        }
        Added::FileId(file_id) => {
            containers
                .add_file_id(&project, &container_id, &file_id)
                .await?
        }
    };
    Ok(Json(file))
}

/// What an add request carries.
enum Added {
    Upload(String, Bytes),
    FileId(String),
}

fn missing_file() -> ApiError {
    ApiError::invalid_code(
        "file_id",
        "missing_required_parameter",
        "Missing required parameter: 'file_id' (or send the file as multipart 'file').",
    )
}

/// The form's `file` part (its name and at most `limit` bytes), else its `file_id` field.
async fn receive_form(mut multipart: Multipart, limit: u64) -> ApiResult<Added> {
    let mut file = None;
    let mut file_id = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {}
            Some("file_id") => {
                file_id = Some(field.text().await.map_err(multipart_error)?);
                continue;
            }
            _ => continue,
        }
        let filename = field.file_name().unwrap_or("upload").replace('\0', "");
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::PayloadTooLarge(format!(
                    "File is too large: the maximum size is {limit} bytes."
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(Added::Upload(filename, Bytes::from(bytes)));
    }
    match (file, file_id) {
        (Some(file), _) => Ok(file),
        (None, Some(id)) => Ok(Added::FileId(id)),
        (None, None) => Err(missing_file()),
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("Request body too large.".into())
    } else {
        ApiError::invalid(format!("Invalid multipart body: {}", e.body_text()))
    }
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Path(container_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<ContainerFile>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let page = state
        .containers
        .list_files(&project, &container_id, &params)
        .await?;
    Ok(Json(page))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path((container_id, file_id)): Path<(String, String)>,
) -> ApiResult<Json<ContainerFile>> {
    let file = state
        .containers
        .retrieve_file(&project, &container_id, &file_id)
        .await?;
    Ok(Json(file))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path((container_id, file_id)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    state
        .containers
        .delete_file(&project, &container_id, &file_id)
        .await?;
    Ok(Json(Deleted::new(file_id, "container.file.deleted")))
}

/// The raw bytes (the SDK asks with `Accept: application/binary`; any Accept gets them).
async fn content(
    State(state): State<AppState>,
    project: Project,
    Path((container_id, file_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (file, bytes) = state
        .containers
        .content(&project, &container_id, &file_id)
        .await?;
    let name = file.path.rsplit('/').next().unwrap_or("file");
    let disposition = format!(
        "attachment; filename=\"{}\"",
        name.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type(name)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
