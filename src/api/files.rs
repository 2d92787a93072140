//! `/v1/files`: multipart upload streamed to disk, list, retrieve, delete, download.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, QueryBuilder, Row};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::AppState;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::file::{BATCH_EXPIRY_SECS, MAX_EXPIRY_SECS, MIN_EXPIRY_SECS, UPLOAD_PURPOSES};
use crate::objects::{Deleted, FileObject};
use crate::pagination::{ListPage, ListParams, Order, FILE_LISTS};
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
    let (path, _) = state.blobs.temp_file().await.map_err(anyhow::Error::from)?;
    let temp = TempUpload(path);
    let form = receive_upload(&state, &mut multipart, &temp.0).await?;
    let file = form.validate()?.into_file_object();
    state
        .blobs
        .commit(&temp.0, &file.id)
        .await
        .map_err(anyhow::Error::from)?;
    if let Err(e) = insert(&state.db, &project, &file).await {
        let _ = state.blobs.remove(&file.id).await;
        return Err(e);
    }
    Ok(Json(file))
}

/// An upload's temp file, removed however the request ends (error, disconnect) unless it was
/// committed, which renames it away.
struct TempUpload(PathBuf);

impl Drop for TempUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The multipart fields as sent, before any of them is checked.
#[derive(Debug, Default)]
struct UploadForm {
    purpose: Option<String>,
    anchor: Option<String>,
    seconds: Option<String>,
    /// Filename and size of the `file` part, whose bytes are in the temp file.
    file: Option<(String, u64)>,
}

/// An upload the server accepts.
#[derive(Debug, PartialEq)]
struct ValidUpload {
    filename: String,
    bytes: u64,
    purpose: &'static str,
    expires_after: Option<i64>,
}

impl UploadForm {
    /// Checks in OpenAI's order: required fields, `purpose`, `expires_after`, then the format
    /// the purpose demands.
    fn validate(self) -> ApiResult<ValidUpload> {
        let (filename, bytes) = self
            .file
            .ok_or_else(|| ApiError::invalid_param("file", "'file' is a required property"))?;
        let purpose = self.purpose.ok_or_else(|| {
            ApiError::invalid_param("purpose", "'purpose' is a required property")
        })?;
        let purpose = UPLOAD_PURPOSES
            .iter()
            .copied()
            .find(|p| *p == purpose)
            .ok_or_else(|| {
                let listed: Vec<String> =
                    UPLOAD_PURPOSES.iter().map(|p| format!("'{p}'")).collect();
                ApiError::invalid_param(
                    "purpose",
                    format!(
                        "'{purpose}' is not one of [{}] - 'purpose'",
                        listed.join(", ")
                    ),
                )
            })?;
        let expires_after = match parse_expires_after(self.anchor, self.seconds)? {
            None if purpose == "batch" => Some(BATCH_EXPIRY_SECS),
            other => other,
        };
        let api = match purpose {
            "batch" => Some("Batch API"),
            "fine-tune" => Some("Fine-Tuning API"),
            _ => None,
        };
        if let Some(api) = api {
            if !filename.to_ascii_lowercase().ends_with(".jsonl") {
                return Err(ApiError::invalid(format!(
                    "Invalid file format for {api}. Must be .jsonl"
                )));
            }
        }
        Ok(ValidUpload {
            filename,
            bytes,
            purpose,
            expires_after,
        })
    }
}

impl ValidUpload {
    fn into_file_object(self) -> FileObject {
        let mut file = new_file_object(&self.filename, self.purpose, self.bytes);
        file.expires_at = self.expires_after.map(|secs| file.created_at + secs);
        file
    }
}

/// `expires_after[anchor]` and `expires_after[seconds]`, as the SDKs send the object in a
/// multipart body; the lifetime in seconds when given.
fn parse_expires_after(anchor: Option<String>, seconds: Option<String>) -> ApiResult<Option<i64>> {
    if anchor.is_none() && seconds.is_none() {
        return Ok(None);
    }
    let missing = |field: &str| {
        ApiError::invalid_code(
            format!("expires_after.{field}"),
            "missing_required_parameter",
            format!("Missing required parameter: 'expires_after.{field}'."),
        )
    };
    let anchor = anchor.ok_or_else(|| missing("anchor"))?;
    if anchor != "created_at" {
        return Err(ApiError::invalid_code(
            "expires_after.anchor",
            "invalid_value",
            format!("Invalid value: '{anchor}'. Supported values are: 'created_at'."),
        ));
    }
    let raw = seconds.ok_or_else(|| missing("seconds"))?;
    let out_of_range = |code: &'static str, bound: String| {
        ApiError::invalid_code(
            "expires_after.seconds",
            code,
            format!("Invalid 'expires_after.seconds': integer {bound}, but got {raw} instead."),
        )
    };
    let digits = raw.strip_prefix('-').unwrap_or(&raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_code(
            "expires_after.seconds",
            "invalid_type",
            format!(
                "Invalid type for 'expires_after.seconds': expected an integer, \
                 but got '{raw}' instead."
            ),
        ));
    }
    // Digits too many for an i64 are out of range on their side of zero.
    let seconds = raw.parse::<i64>().unwrap_or(if raw.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    });
    if seconds < MIN_EXPIRY_SECS {
        return Err(out_of_range(
            "integer_below_min_value",
            format!("below minimum value. Expected a value >= {MIN_EXPIRY_SECS}"),
        ));
    }
    if seconds > MAX_EXPIRY_SECS {
        return Err(out_of_range(
            "integer_above_max_value",
            format!("above maximum value. Expected a value <= {MAX_EXPIRY_SECS}"),
        ));
    }
    Ok(Some(seconds))
}

/// Reads every part, streaming the `file` part into `temp`; checks nothing but size.
async fn receive_upload(
    state: &AppState,
    multipart: &mut Multipart,
    temp: &FsPath,
) -> ApiResult<UploadForm> {
    let limit = state.config.max_upload_bytes;
    let mut form = UploadForm::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let slot = match field.name() {
            Some("purpose") => &mut form.purpose,
            Some("expires_after[anchor]") => &mut form.anchor,
            Some("expires_after[seconds]") => &mut form.seconds,
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
                form.file = Some((filename, size));
                continue;
            }
            _ => continue,
        };
        *slot = Some(field.text().await.map_err(multipart_error)?);
    }
    Ok(form)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("Request body too large.".into())
    } else {
        ApiError::invalid(format!("Invalid multipart body: {}", e.body_text()))
    }
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
    state.blobs.remove(&id).await.map_err(anyhow::Error::from)?;
    Ok(Json(Deleted::new(id, "file")))
}

async fn content(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let file = get_live(&state.db, &project, &id).await?;
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
    use super::{content_type, UploadForm, ValidUpload};
    use crate::error::ApiError;

    fn form(filename: &str, purpose: &str, expiry: Option<(&str, &str)>) -> UploadForm {
        UploadForm {
            purpose: Some(purpose.into()),
            anchor: expiry.map(|(a, _)| a.into()),
            seconds: expiry.map(|(_, s)| s.into()),
            file: Some((filename.into(), 1)),
        }
    }

    fn rejection(form: UploadForm) -> (String, Option<String>, Option<&'static str>) {
        match form.validate() {
            Err(ApiError::InvalidRequest {
                message,
                param,
                code,
            }) => (message, param, code),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_purpose_is_named_with_every_upload_purpose() {
        let (message, param, code) = rejection(form("a.txt", "bogus", None));
        assert_eq!(
            message,
            "'bogus' is not one of ['fine-tune', 'assistants', 'batch', 'user_data', 'vision', \
             'evals'] - 'purpose'"
        );
        assert_eq!((param.as_deref(), code), (Some("purpose"), None));
    }

    #[test]
    fn batch_and_fine_tune_need_jsonl_and_batch_expires_in_thirty_days() {
        let (message, param, _) = rejection(form("a.csv", "batch", None));
        assert_eq!(message, "Invalid file format for Batch API. Must be .jsonl");
        assert_eq!(param, None);
        let (message, _, _) = rejection(form("a.json", "fine-tune", None));
        assert_eq!(
            message,
            "Invalid file format for Fine-Tuning API. Must be .jsonl"
        );
        let ok = form("a.JSONL", "batch", None).validate().unwrap();
        assert_eq!(ok.expires_after, Some(2_592_000));
        let ok = form("a.jsonl", "batch", Some(("created_at", "3600")))
            .validate()
            .unwrap();
        assert_eq!(ok.expires_after, Some(3600));
    }

    #[test]
    fn expires_after_is_checked_like_openai() {
        let cases = [
            (("x", "3600"), "expires_after.anchor", "invalid_value"),
            (
                ("created_at", "10"),
                "expires_after.seconds",
                "integer_below_min_value",
            ),
            (
                ("created_at", "-5"),
                "expires_after.seconds",
                "integer_below_min_value",
            ),
            (
                ("created_at", "2592001"),
                "expires_after.seconds",
                "integer_above_max_value",
            ),
            (
                ("created_at", "99999999999999999999999"),
                "expires_after.seconds",
                "integer_above_max_value",
            ),
            (
                ("created_at", "1.5"),
                "expires_after.seconds",
                "invalid_type",
            ),
            (("created_at", ""), "expires_after.seconds", "invalid_type"),
        ];
        for (expiry, want_param, want_code) in cases {
            let (_, param, code) = rejection(form("a.txt", "assistants", Some(expiry)));
            assert_eq!(
                (param.as_deref(), code),
                (Some(want_param), Some(want_code)),
                "{expiry:?}"
            );
        }
        let (message, _, _) = rejection(form("a.txt", "assistants", Some(("created_at", "10"))));
        assert_eq!(
            message,
            "Invalid 'expires_after.seconds': integer below minimum value. \
             Expected a value >= 3600, but got 10 instead."
        );
        let ok = form("a.txt", "user_data", Some(("created_at", "2592000")))
            .validate()
            .unwrap();
        assert_eq!(
            ok,
            ValidUpload {
                filename: "a.txt".into(),
                bytes: 1,
                purpose: "user_data",
                expires_after: Some(2_592_000),
            }
        );
    }

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
