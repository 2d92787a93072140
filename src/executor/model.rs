//! The upstream model: one streamed chat completion per turn, through async-openai against
//! any OpenAI-compatible endpoint. Transient failures are retried with backoff before the
//! stream starts; what the run sees is text deltas, then the whole turn.

use std::collections::BTreeMap;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::stream::StreamResponse;
use async_openai::Client;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::objects::run::Usage;

#[derive(Clone)]
pub struct ModelClient {
    client: Client<OpenAIConfig>,
    max_retries: u32,
    retry_base: Duration,
}

#[derive(Debug)]
pub enum ModelError {
    Cancelled,
    /// Still rate limited after retrying: the run fails with `rate_limit_exceeded`.
    RateLimited(String),
    /// Anything else the upstream did wrong: the run fails with `server_error`.
    Failed(String),
}

/// One call the model asked for.
#[derive(Clone, Debug, Default)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What the model said in one turn.
#[derive(Debug, Default)]
pub struct Turn {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

impl ModelClient {
    pub fn new(base_url: &str, api_key: &str, max_retries: u32, retry_base: Duration) -> Self {
        let config = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(api_key);
        Self {
            client: Client::with_config(config),
            max_retries,
            retry_base,
        }
    }

    /// Opens a streamed completion for `request` (a chat completions body with `stream: true`).
    pub async fn stream(
        &self,
        request: &Value,
        cancel: &CancellationToken,
    ) -> Result<TurnStream, ModelError> {
        let mut attempt = 0;
        let chat = self.client.chat();
        loop {
            let started = std::time::Instant::now();
            let opened = tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                r = chat.create_stream_byot::<&Value, Chunk>(request) => r,
            };
            crate::metrics::upstream_call(
                started.elapsed(),
                if opened.is_ok() { "ok" } else { "error" },
            );
            let error = match opened {
                Ok(inner) => return Ok(TurnStream::new(inner)),
                Err(e) => classify(e),
            };
            let retryable = !matches!(error, Failure::Permanent(_));
            if !retryable || attempt >= self.max_retries {
                return Err(error.into());
            }
            let backoff = self.retry_base * 2u32.saturating_pow(attempt);
            tracing::warn!(attempt, ?backoff, error = ?error, "upstream call failed; retrying");
            attempt += 1;
            tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}

#[derive(Debug)]
enum Failure {
    RateLimited(String),
    Transient(String),
    Permanent(String),
}

impl From<Failure> for ModelError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::RateLimited(m) => ModelError::RateLimited(m),
            Failure::Transient(m) | Failure::Permanent(m) => ModelError::Failed(m),
        }
    }
}

fn classify(e: OpenAIError) -> Failure {
    match e {
        OpenAIError::ApiError(resp) => {
            let status = resp.status_code.as_u16();
            let message = format!("upstream returned {status}: {}", resp.api_error.message);
            match status {
                429 => Failure::RateLimited(message),
                408 | 409 | 500..=599 => Failure::Transient(message),
                _ => Failure::Permanent(message),
            }
        }
        OpenAIError::Reqwest(e) => Failure::Transient(format!("could not reach the upstream: {e}")),
        other => Failure::Transient(format!("upstream error: {other}")),
    }
}

/// A streamed turn: yields text as it arrives and gathers tool calls and usage.
pub struct TurnStream {
    inner: StreamResponse<Chunk>,
    turn: Turn,
    calls: BTreeMap<usize, ToolCall>,
}

impl TurnStream {
    fn new(inner: StreamResponse<Chunk>) -> Self {
        Self {
            inner,
            turn: Turn::default(),
            calls: BTreeMap::new(),
        }
    }

    /// The next piece of text, or `None` once the turn is over.
    pub async fn next_text(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, ModelError> {
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                item = self.inner.next() => item,
            };
            let chunk = match item {
                None => return Ok(None),
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    return Err(ModelError::Failed(format!("upstream stream failed: {e}")))
                }
            };
            if let Some(u) = chunk.usage {
                self.turn.usage = Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
                };
            }
            let mut text = String::new();
            for choice in chunk.choices {
                if let Some(reason) = choice.finish_reason {
                    self.turn.finish_reason = Some(reason);
                }
                if let Some(t) = choice.delta.content {
                    text.push_str(&t);
                }
                for (i, part) in choice
                    .delta
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    let call = self.calls.entry(part.index.unwrap_or(i)).or_default();
                    if let Some(id) = part.id {
                        call.id = id;
                    }
                    if let Some(f) = part.function {
                        if let Some(name) = f.name {
                            call.name.push_str(&name);
                        }
                        if let Some(args) = f.arguments {
                            call.arguments.push_str(&args);
                        }
                    }
                }
            }
            if !text.is_empty() {
                self.turn.text.push_str(&text);
                return Ok(Some(text));
            }
        }
    }

    pub fn finish(mut self) -> Turn {
        self.turn.tool_calls = self
            .calls
            .into_values()
            .map(|mut c| {
                if c.id.is_empty() {
                    c.id = crate::ids::new_id(crate::ids::CALL);
                }
                c
            })
            .collect();
        self.turn
    }
}

// Lenient chunk types: OpenAI-compatible servers differ in which fields they send.

#[derive(Debug, Default, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Debug, Default, Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}
