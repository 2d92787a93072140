//! `/v1/files`: multipart upload streamed to disk, list, retrieve, delete, download.

use std::collections::HashMap;
use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::types::Json as SqlJson;
use sqlx::PgExecutor;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::AppState;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::file::UPLOAD_PURPOSES;
use crate::objects::{Deleted, FileObject};
use crate::pagination::{ListPage, ListParams, FILE_LISTS};
use crate::store::{self, Kind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/files",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/files/{file_id}", get(retrieve).delete(remove))
        .route("/files/{file_id}/content", get(content))
}

/// Every id must name a file of this project; `param` says which field listed them.
pub async fn require_files<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    param: &str,
    ids: &[String],
) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: Vec<String> =
        sqlx::query_scalar("SELECT id FROM files WHERE project = $1 AND id = ANY($2)")
            .bind(&project.0)
            .bind(ids)
            .fetch_all(db)
            .await?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::invalid_code(
            param,
            "invalid_value",
            format!("Invalid '{param}': no file found with id '{missing}'."),
        )),
        None => Ok(()),
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
    let file = new_file_object(filename, purpose, bytes.len() as u64);
    blobs
        .put(&file.id, bytes)
        .await
        .map_err(anyhow::Error::from)?;
    insert(db, project, &file).await?;
    Ok(file)
}

fn new_file_object(filename: &str, purpose: &str, bytes: u64) -> FileObject {
    FileObject {
        id: ids::new_id(ids::FILE),
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

async fn upload(
    State(state): State<AppState>,
    project: Project,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<FileObject>> {
    let mut multipart = multipart.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (temp, _) = state.blobs.temp_file().await.map_err(anyhow::Error::from)?;
    let result = receive_upload(&state, &project, &mut multipart, &temp).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result.map(Json)
}

async fn receive_upload(
    state: &AppState,
    project: &Project,
    multipart: &mut Multipart,
    temp: &FsPath,
) -> ApiResult<FileObject> {
    let limit = state.config.max_upload_bytes;
    let mut purpose = None;
    let mut upload: Option<(String, u64)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("purpose") => purpose = Some(field.text().await.map_err(multipart_error)?),
            Some("file") => {
                let filename = field.file_name().unwrap_or("upload").replace('\0', "");
                let mut out = tokio::fs::File::create(temp)
                    .await
                    .map_err(anyhow::Error::from)?;
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "File is too large: the maximum size is {limit} bytes."
                        )));
                    }
                    out.write_all(&chunk).await.map_err(anyhow::Error::from)?;
                }
                out.flush().await.map_err(anyhow::Error::from)?;
                upload = Some((filename, size));
            }
            _ => {}
        }
    }
    let purpose = purpose.ok_or_else(|| {
        ApiError::invalid_code(
            "purpose",
            "missing_required_parameter",
            "Missing required parameter: 'purpose'.",
        )
    })?;
    if !UPLOAD_PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::invalid_code(
            "purpose",
            "invalid_value",
            format!(
                "Invalid value for 'purpose': '{purpose}'. Supported values are: {}.",
                UPLOAD_PURPOSES
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let (filename, size) = upload.ok_or_else(|| {
        ApiError::invalid_code(
            "file",
            "missing_required_parameter",
            "Missing required parameter: 'file'.",
        )
    })?;
    let file = new_file_object(&filename, &purpose, size);
    state
        .blobs
        .commit(temp, &file.id)
        .await
        .map_err(anyhow::Error::from)?;
    if let Err(e) = insert(&state.db, project, &file).await {
        let _ = state.blobs.remove(&file.id).await;
        return Err(e);
    }
    Ok(file)
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
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<FileObject>>> {
    let params = ListParams::parse(&query, FILE_LISTS)?;
    let mut filters = vec![];
    if let Some(purpose) = query.get("purpose").filter(|p| !p.is_empty()) {
        filters.push(("purpose", purpose.as_str()));
    }
    Ok(Json(
        store::list(&state.db, Kind::File, &project, &filters, &params).await?,
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<FileObject>> {
    Ok(Json(
        store::get(&state.db, Kind::File, &project, &id, &[]).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    store::delete(&state.db, Kind::File, &project, &id, &[]).await?;
    state.blobs.remove(&id).await.map_err(anyhow::Error::from)?;
    Ok(Json(Deleted::new(id, "file")))
}

async fn content(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let file: FileObject = store::get(&state.db, Kind::File, &project, &id, &[]).await?;
    let handle = state.blobs.open_file(&id).await.map_err(|e| {
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
        Body::from_stream(ReaderStream::new(handle)),
    )
        .into_response())
}

/// The MIME type served for a filename. mime_guess knows most; these are the types OpenAI's
/// supported-files list gives that it guesses differently or not at all.
pub fn content_type(filename: &str) -> String {
    let ext = FsPath::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let fixed = match ext.as_str() {
        "c" => Some("text/x-c"),
        "cpp" | "cc" | "cxx" | "h" | "hpp" => Some("text/x-c++"),
        "cs" => Some("text/x-csharp"),
        "go" => Some("text/x-golang"),
        "java" => Some("text/x-java"),
        "md" => Some("text/markdown"),
        "php" => Some("text/x-php"),
        "py" => Some("text/x-python"),
        "rb" => Some("text/x-ruby"),
        "sh" => Some("application/x-sh"),
        "tex" => Some("text/x-tex"),
        "ts" => Some("application/typescript"),
        "js" => Some("text/javascript"),
        "json" => Some("application/json"),
        "pkl" => Some("application/octet-stream"),
        "csv" => Some("text/csv"),
        _ => None,
    };
    fixed.map(str::to_string).unwrap_or_else(|| {
        mime_guess::from_ext(&ext)
            .first_or_octet_stream()
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn openai_supported_types_are_served_with_their_mime_type() {
        let cases = [
            ("a.csv", "text/csv"),
            ("a.png", "image/png"),
            ("a.pdf", "application/pdf"),
            ("a.json", "application/json"),
            ("a.txt", "text/plain"),
            ("a.py", "text/x-python"),
            ("a.ts", "application/typescript"),
            ("a.md", "text/markdown"),
            (
                "a.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            (
                "a.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                "a.pptx",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ),
            ("A.JPG", "image/jpeg"),
            ("noext", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type(name), want, "{name}");
        }
    }
}
