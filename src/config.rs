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

    /// Upstreams chosen by model, tried in order before the default upstream: a JSON list, or
    /// `@/path/to/file.json`, of `{"models": ["gpt-4o", "claude-*"], "base_url": "...",
    /// "api_key": "...", "kind": "openai" | "azure", "api_version": "...", "deployment": "...",
    /// "max_retries": N}`. A model matches an exact name or a prefix ending in `*`.
    #[arg(long, env = "ASSISTD_UPSTREAMS", default_value = "")]
    pub upstreams: String,

    /// Base URL of the default OpenAI-compatible chat completions upstream (including `/v1`),
    /// serving every model no `ASSISTD_UPSTREAMS` entry claims. Empty: no default.
    #[arg(
        long,
        env = "ASSISTD_UPSTREAM_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub upstream_base_url: String,

    /// Send the images of user messages to the model as image input (a vision model); `false`
    /// sends a text reference instead, for models without vision.
    #[arg(long, env = "ASSISTD_UPSTREAM_IMAGE_INPUT", default_value_t = true, action = clap::ArgAction::Set)]
    pub upstream_image_input: bool,

    /// The upstream model's context window in tokens. Runs with `truncation_strategy: auto` send
    /// only the newest thread messages that fit it (and `max_prompt_tokens`); 0: unknown, the
    /// whole thread is sent unless `max_prompt_tokens` is set.
    #[arg(long, env = "ASSISTD_UPSTREAM_CONTEXT_TOKENS", default_value_t = 0)]
    pub upstream_context_tokens: u64,

    /// The embedding model file_search indexes and searches with, routed to an upstream like
    /// chat models (its `POST /embeddings`). Empty: no embeddings, keyword ranking only. A
    /// store keeps the model and size it was first indexed with.
    #[arg(
        long,
        env = "ASSISTD_EMBEDDING_MODEL",
        default_value = "text-embedding-3-large"
    )]
    pub embedding_model: String,

    /// `dimensions` asked of the embedding model (OpenAI's file_search uses 256); 0 sends none
    /// and takes the model's own size (for models that do not shorten their vectors).
    #[arg(long, env = "ASSISTD_EMBEDDING_DIMENSIONS", default_value_t = 256)]
    pub embedding_dimensions: u32,

    /// The chat model that rewrites a `vector_stores.search` query when `rewrite_query` is
    /// true (one call, routed like any model). Empty: queries are searched as written.
    #[arg(long, env = "ASSISTD_REWRITE_MODEL", default_value = "gpt-4o-mini")]
    pub rewrite_model: String,

    /// The reranking model file_search sends its best fused candidates to (an upstream's
    /// `POST /rerank`, as Cohere, Jina, TEI, vLLM and Infinity serve it), routed like chat
    /// models unless `ASSISTD_RERANK_BASE_URL` is set. Empty: no reranking. A request's
    /// `ranking_options.ranker: none` skips it.
    #[arg(long, env = "ASSISTD_RERANK_MODEL", default_value = "")]
    pub rerank_model: String,

    /// Base URL of the reranker (`{base}/rerank` is called), e.g. a local TEI server's
    /// `http://localhost:8080`. Empty: the upstream serving `ASSISTD_RERANK_MODEL`.
    #[arg(long, env = "ASSISTD_RERANK_BASE_URL", default_value = "")]
    pub rerank_base_url: String,

    /// Bearer key sent to `ASSISTD_RERANK_BASE_URL` (the routed upstream uses its own key).
    #[arg(long, env = "ASSISTD_RERANK_API_KEY", default_value = "")]
    pub rerank_api_key: String,

    /// The most fused candidates sent to the reranker per search (the best ones); results
    /// beyond them keep their fused order after the reranked ones.
    #[arg(long, env = "ASSISTD_RERANK_CANDIDATES", default_value_t = 50)]
    pub rerank_candidates: u32,

    /// The most results `vector_stores.search` returns (`max_num_results`); 50 is OpenAI's
    /// limit, a deployment may allow more (the retrieval bench asks 100 for Recall@100).
    #[arg(long, env = "ASSISTD_SEARCH_MAX_RESULTS", default_value_t = 50)]
    pub search_max_results: u32,

    /// Bearer key sent to the upstream.
    #[arg(long, env = "ASSISTD_UPSTREAM_API_KEY", default_value = "")]
    pub upstream_api_key: String,

    /// Directory holding uploaded and generated file bytes, unless `ASSISTD_BLOB_URL` names
    /// another store.
    #[arg(long, env = "ASSISTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Where blobs (file bytes) live: `s3://bucket/prefix` for S3-compatible storage, with
    /// endpoint, region and keys from the `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), or `file:///path`.
    /// Unset: `ASSISTD_DATA_DIR`. Replicas that share no disk need a shared store.
    #[arg(long, env = "ASSISTD_BLOB_URL")]
    pub blob_url: Option<String>,

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

    /// Seconds a run may wait (queued or for tool outputs) before it expires.
    #[arg(long, env = "ASSISTD_RUN_EXPIRY_SECS", default_value_t = 600)]
    pub run_expiry_secs: u64,

    /// Runs executed at once by this process.
    #[arg(long, env = "ASSISTD_MAX_CONCURRENT_RUNS", default_value_t = 32)]
    pub max_concurrent_runs: usize,

    /// Rounds of tool calls a run may make before it fails.
    #[arg(long, env = "ASSISTD_MAX_TOOL_ROUNDS", default_value_t = 16)]
    pub max_tool_rounds: usize,

    /// Retries of a failed upstream call (429, 5xx, connection errors) before the run fails.
    #[arg(long, env = "ASSISTD_UPSTREAM_MAX_RETRIES", default_value_t = 2)]
    pub upstream_max_retries: u32,

    /// First retry delay in milliseconds; each further retry doubles it.
    #[arg(long, env = "ASSISTD_UPSTREAM_RETRY_BASE_MS", default_value_t = 1000)]
    pub upstream_retry_base_ms: u64,

    /// Seconds in-flight requests and runs get to finish at shutdown.
    #[arg(long, env = "ASSISTD_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// The URL at which the other replicas of this deployment reach this one (e.g.
    /// `http://10.0.0.5:8080`): E2B data-plane calls for a sandbox whose session this replica
    /// holds are proxied here. Empty: `http://` and the listen address (loopback when it
    /// listens on all addresses), right for replicas on one host.
    #[arg(long, env = "ASSISTD_ADVERTISE_URL", default_value = "")]
    pub advertise_url: String,

    /// Serve `/metrics` on this separate address instead of the API address.
    #[arg(long, env = "ASSISTD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Memory for the read cache of assistants, threads and message pages, in MiB; 0 turns it
    /// off. Servers sharing a database keep their caches in step through Postgres notifications.
    #[arg(long, env = "ASSISTD_READ_CACHE_MB", default_value_t = 64)]
    pub read_cache_mb: usize,

    /// The largest `memory_limit` a container may ask for (`1g`, `4g`, `16g` or `64g`); larger
    /// ones are refused with a 400. Each tier is the sandbox's memory limit.
    #[arg(long, env = "ASSISTD_CONTAINER_MAX_MEMORY", default_value = "4g")]
    pub container_max_memory: crate::domain::containers::MemoryLimit,

    #[command(flatten)]
    pub sandbox: crate::sandbox::SandboxConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("addr", &self.addr)
            .field("api_keys", &"<redacted>")
            .field("upstream_base_url", &self.upstream_base_url)
            .field("upstream_api_key", &"<redacted>")
            .field("upstreams", &"<redacted>")
            .field("data_dir", &self.data_dir)
            .field("blob_url", &self.blob_url.as_deref().map(redact_url))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("read_cache_mb", &self.read_cache_mb)
            .field("container_max_memory", &self.container_max_memory)
            .field("sandbox", &self.sandbox)
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
