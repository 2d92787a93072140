//! `POST /v1/files`: the multipart form's file streamed into the blob store, the form checked
//! as OpenAI checks it (purpose, `.jsonl` for batch and fine-tune, `expires_after`), then the
//! blob completed and the file recorded.

use axum::extract::{Multipart, State};
use axum::Json;

use crate::api::AppState;
use crate::auth::Project;
use crate::blobs::{BlobWriter, Key};
use crate::domain::files::{insert, new_file_object};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::file::{BATCH_EXPIRY_SECS, MAX_EXPIRY_SECS, MIN_EXPIRY_SECS, UPLOAD_PURPOSES};
use crate::objects::FileObject;

pub(super) async fn upload(
    State(state): State<AppState>,
    project: Project,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<FileObject>> {
    let mut multipart = multipart.map_err(|e| ApiError::invalid(e.body_text()))?;
    // The bytes go straight to their final key; a blob appears there only once finished, which
    // only a valid form gets. A request that ends otherwise (an error, a disconnect) drops its
    // writer, and with it the parts uploaded so far.
    let id = ids::new_id(ids::FILE);
    let key = Key::file(&id);
    let mut bytes = None;
    let valid = match receive_upload(&state, &mut multipart, &key, &mut bytes).await {
        Ok(form) => form.validate(),
        Err(e) => Err(e),
    };
    let (valid, bytes) = match (valid, bytes) {
        (Ok(valid), Some(bytes)) => (valid, bytes),
        (Err(e), bytes) => {
            if let Some(bytes) = bytes {
                let _ = bytes.abort().await;
            }
            return Err(e);
        }
        (Ok(_), None) => return Err(anyhow::anyhow!("a file part without its bytes").into()),
    };
    bytes.finish().await.map_err(anyhow::Error::from)?;
    let file = valid.into_file_object(id);
    if let Err(e) = insert(&state.db, &project, &file).await {
        let _ = state.blobs.remove(&key).await;
        return Err(e);
    }
    Ok(Json(file))
}

/// The multipart fields as sent, before any of them is checked.
#[derive(Debug, Default)]
struct UploadForm {
    purpose: Option<String>,
    anchor: Option<String>,
    seconds: Option<String>,
    /// Filename and size of the `file` part, whose bytes are in the blob writer.
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
    fn into_file_object(self, id: String) -> FileObject {
        let mut file = new_file_object(id, &self.filename, self.purpose, self.bytes);
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

/// Reads every part, streaming the `file` part into a writer for `key`, left in `bytes` also
/// when this fails; checks nothing but size.
async fn receive_upload(
    state: &AppState,
    multipart: &mut Multipart,
    key: &Key,
    bytes: &mut Option<BlobWriter>,
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
                // A repeated `file` part replaces the one before, as the last value wins.
                if let Some(earlier) = bytes.take() {
                    earlier.abort().await.map_err(anyhow::Error::from)?;
                }
                let out = bytes.insert(state.blobs.writer(key));
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if out.written() + chunk.len() as u64 > limit {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "File is too large: the maximum size is {limit} bytes."
                        )));
                    }
                    out.write(chunk).await.map_err(anyhow::Error::from)?;
                }
                form.file = Some((filename, out.written()));
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

#[cfg(test)]
mod tests {
    use super::{UploadForm, ValidUpload};
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
}
