//! Object ids: OpenAI's prefixes followed by 24 random alphanumerics.

use rand::distr::{Alphanumeric, SampleString};

pub const ASSISTANT: &str = "asst_";
pub const THREAD: &str = "thread_";
pub const MESSAGE: &str = "msg_";
pub const RUN: &str = "run_";
pub const STEP: &str = "step_";
pub const CALL: &str = "call_";
pub const FILE: &str = "file-";
pub const VECTOR_STORE: &str = "vs_";
pub const FILE_BATCH: &str = "vsfb_";
pub const CONTAINER: &str = "cntr_";
pub const CONTAINER_FILE: &str = "cfile_";

pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

/// Unix seconds, the unit of every `*_at` field.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
