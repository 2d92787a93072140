use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileObject {
    pub id: String,
    pub object: String,
    pub bytes: u64,
    pub created_at: i64,
    /// Always present, `null` for files that never expire, as OpenAI sends it.
    #[serde(default)]
    pub expires_at: Option<i64>,
    pub filename: String,
    pub purpose: String,
    pub status: String,
    pub status_details: Option<String>,
}

impl FileObject {
    /// An expired file is gone to every reader, though its row and bytes may linger.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Purposes a client may upload with, in the order OpenAI's error message lists them;
/// `assistants_output` is only ever written by runs.
pub const UPLOAD_PURPOSES: &[&str] = &[
    "fine-tune",
    "assistants",
    "batch",
    "user_data",
    "vision",
    "evals",
];
pub const ASSISTANTS_OUTPUT: &str = "assistants_output";

/// Bounds of `expires_after[seconds]`: one hour to thirty days.
pub const MIN_EXPIRY_SECS: i64 = 3_600;
pub const MAX_EXPIRY_SECS: i64 = 2_592_000;
/// `purpose=batch` files expire after thirty days unless the upload says otherwise.
pub const BATCH_EXPIRY_SECS: i64 = MAX_EXPIRY_SECS;
