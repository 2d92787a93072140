//! Server configuration: one typed struct, every field settable by flag or `ASSISTD_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Args, Clone)]
pub struct Config {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Address the API listens on. Without API keys only a loopback address is allowed.
    #[arg(long, env = "ASSISTD_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Comma-separated bearer keys. An entry is `KEY` (its own project) or `PROJECT:KEY`
    /// (keys naming the same project share its objects). Empty: a key is generated and printed.
    #[arg(long, env = "ASSISTD_API_KEYS", default_value = "")]
    pub api_keys: String,

    /// Base URL of the OpenAI-compatible chat completions upstream (including `/v1`).
    #[arg(
        long,
        env = "ASSISTD_UPSTREAM_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub upstream_base_url: String,

    /// Bearer key sent to the upstream.
    #[arg(long, env = "ASSISTD_UPSTREAM_API_KEY", default_value = "")]
    pub upstream_api_key: String,

    /// Directory holding uploaded and generated file bytes.
    #[arg(long, env = "ASSISTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Largest JSON request body, in bytes (file uploads have their own limit).
    #[arg(long, env = "ASSISTD_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest file upload, in bytes.
    #[arg(long, env = "ASSISTD_MAX_UPLOAD_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Maximum database connections.
    #[arg(long, env = "ASSISTD_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,

    /// Log format: `text` or `json`.
    #[arg(long, env = "ASSISTD_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("addr", &self.addr)
            .field("api_keys", &"<redacted>")
            .field("upstream_base_url", &self.upstream_base_url)
            .field("upstream_api_key", &"<redacted>")
            .field("data_dir", &self.data_dir)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish_non_exhaustive()
    }
}

/// Hides a password in `scheme://user:password@host/...`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
