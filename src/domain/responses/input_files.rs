//! `input_file` parts of a response's input: a file by `file_id`, or its bytes inline as
//! `file_data` (base64, or a `data:` URL, with its `filename`). The model reads the file's
//! text inside the message — PDF, Word, PowerPoint and text files, read as file_search reads
//! them — and with code_interpreter the file is also in /mnt/data (inline bytes become a
//! `user_data` file then, stored only once the whole request is accepted).

use base64::Engine;
use serde_json::{json, Value};

use crate::auth::Project;
use crate::blobs::{BlobStore, Key};
use crate::domain::files;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::retrieval;
use crate::sandbox::SandboxManager;

/// Inline files to store for the code once the request is accepted: id, filename, bytes.
pub type ToStore = Vec<(String, String, Vec<u8>)>;

pub struct Readers<'a> {
    pub db: &'a sqlx::PgPool,
    pub blobs: &'a BlobStore,
    pub sandbox: &'a SandboxManager,
}

/// Reads the `input_file` parts of a message: the text the model reads of each, by part. An
/// inline part is rewritten to name its file (a new id when the code needs it) instead of
/// carrying its bytes on.
pub async fn read(
    readers: &Readers<'_>,
    project: &Project,
    parts: &mut [Value],
    param: &str,
    has_code: bool,
    to_store: &mut ToStore,
) -> ApiResult<Vec<Option<String>>> {
    let mut texts = vec![None; parts.len()];
    for (j, part) in parts.iter_mut().enumerate() {
        if part["type"] != "input_file" {
            continue;
        }
        let at = format!("{param}.content[{j}]");
        let (filename, bytes) = match part["file_id"].as_str() {
            Some(id) => {
                let file = files::get_live(readers.db, project, id)
                    .await
                    .map_err(|_| {
                        ApiError::invalid_code(
                            format!("{at}.file_id"),
                            "invalid_value",
                            format!("Invalid '{at}.file_id': no file found with id '{id}'."),
                        )
                    })?;
                let bytes = readers
                    .blobs
                    .read(&Key::file(id))
                    .await
                    .map_err(|e| ApiError::Internal(anyhow::Error::from(e)))?;
                (file.filename, bytes.to_vec())
            }
            None => {
                let (filename, bytes) = inline(part, &at)?;
                let id = ids::new_id(ids::FILE);
                *part = json!({"type": "input_file", "filename": filename,
                               "file_id": has_code.then_some(&id)});
                if has_code {
                    to_store.push((id, filename.clone(), bytes.clone()));
                }
                (filename, bytes)
            }
        };
        match retrieval::text_of(readers.sandbox, &filename, bytes).await {
            Ok(text) => texts[j] = Some(format!("[{filename}]\n{text}")),
            // The code can still open it.
            Err(_) if has_code => {}
            Err(failure) => {
                return Err(ApiError::invalid_code(
                    at,
                    "unsupported_file",
                    format!("{} The model reads PDF, Word, PowerPoint and text files; give other files to code_interpreter.", failure.message),
                ))
            }
        }
    }
    Ok(texts)
}

/// The filename and bytes of an inline part (checked when the input is parsed).
fn inline(part: &Value, at: &str) -> ApiResult<(String, Vec<u8>)> {
    let filename = part["filename"].as_str().unwrap_or_default().to_string();
    let data = part["file_data"].as_str().unwrap_or_default();
    Ok((filename, decode(data, at)?))
}

/// Base64 bytes, bare or as a `data:<type>;base64,` URL.
pub fn decode(data: &str, at: &str) -> ApiResult<Vec<u8>> {
    let body = match data.strip_prefix("data:") {
        Some(url) => url.split_once(";base64,").map_or("", |(_, b)| b),
        None => data,
    };
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| {
            ApiError::invalid_code(
                format!("{at}.file_data"),
                "invalid_value",
                format!("Invalid '{at}.file_data': expected base64 bytes or a data: URL with base64 bytes."),
            )
        })
}

/// Stores the inline files the code needs, as `user_data` files, their rows in `tx` (the
/// request's transaction: a refused request leaves no file listed).
pub async fn store(
    blobs: &BlobStore,
    tx: &mut sqlx::PgConnection,
    project: &Project,
    to_store: ToStore,
) -> ApiResult<()> {
    for (id, filename, bytes) in to_store {
        let file = files::new_file_object(id, &filename, "user_data", bytes.len() as u64);
        blobs
            .put(&Key::file(&file.id), bytes)
            .await
            .map_err(anyhow::Error::from)?;
        files::insert(&mut *tx, project, &file).await?;
    }
    Ok(())
}
