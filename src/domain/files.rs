//! File objects: the lookups every resource uses and the files the server itself writes
//! (images and files a run's code made). The `/v1/files` handlers are in `api::files`.

use sqlx::types::Json as SqlJson;
use sqlx::PgExecutor;

use crate::auth::Project;
use crate::blobs::Key;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::FileObject;
use crate::store::{self, Kind};

pub use super::content_type::content_type;

/// The SQL condition a file row meets until it expires; expired files read as deleted.
pub const LIVE: &str = "((data->>'expires_at') IS NULL \
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

pub fn new_file_object(id: String, filename: &str, purpose: &str, bytes: u64) -> FileObject {
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

pub async fn insert<'e>(
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
