//! The upstream model: one streamed chat completion per turn, through async-openai against
//! the OpenAI-compatible or Azure upstream the request's model routes to (see
//! [`super::upstreams`]). Transient failures are retried with backoff, per that upstream's
//! retries, before the stream starts; what the run sees is text and tool-call pieces as they
//! arrive, then the whole turn.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::types::stream::StreamResponse;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::upstreams::Upstreams;
use crate::objects::run::Usage;

#[derive(Clone)]
pub struct ModelClient {
    upstreams: Upstreams,
    retry_base: Duration,
}

#[derive(Debug)]
pub enum ModelError {
    Cancelled,
    /// Still rate limited after retrying: the run fails with `rate_limit_exceeded`.
    RateLimited(String),
    /// The prompt does not fit the model's context (the upstream said
    /// `context_length_exceeded`).
    ContextExceeded(String),
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
    pub fn new(upstreams: Upstreams, retry_base: Duration) -> Self {
        Self {
            upstreams,
            retry_base,
        }
    }

    /// Opens a streamed completion for `request` (a chat completions body with `stream: true`)
    /// at the upstream its `model` routes to.
    pub async fn stream(
        &self,
        request: &Value,
        cancel: &CancellationToken,
    ) -> Result<TurnStream, ModelError> {
        let model = request.get("model").and_then(Value::as_str).unwrap_or("");
        let Some(upstream) = self.upstreams.pick(model) else {
            return Err(ModelError::Failed(format!(
                "No upstream serves model '{model}': it matches no ASSISTD_UPSTREAMS entry and no default upstream (ASSISTD_UPSTREAM_BASE_URL) is configured."
            )));
        };
        let client = upstream.client(self.upstreams.http(), model);
        let chat = client.chat();
        let mut attempt = 0;
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
                Err(e) => classify(e).scrubbed(|m| upstream.scrub(m)),
            };
            let retryable = !matches!(error, Failure::Permanent(_) | Failure::ContextExceeded(_));
            if !retryable || attempt >= upstream.max_retries {
                return Err(error.into());
            }
            let backoff = self.retry_base * 2u32.saturating_pow(attempt);
            tracing::warn!(attempt, ?backoff, upstream = %upstream.name, error = ?error, "upstream call failed; retrying");
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
    ContextExceeded(String),
    Transient(String),
    Permanent(String),
}

impl Failure {
    fn scrubbed(self, scrub: impl Fn(String) -> String) -> Self {
        match self {
            Failure::RateLimited(m) => Failure::RateLimited(scrub(m)),
            Failure::ContextExceeded(m) => Failure::ContextExceeded(scrub(m)),
            Failure::Transient(m) => Failure::Transient(scrub(m)),
            Failure::Permanent(m) => Failure::Permanent(scrub(m)),
        }
    }
}

impl From<Failure> for ModelError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::RateLimited(m) => ModelError::RateLimited(m),
            Failure::ContextExceeded(m) => ModelError::ContextExceeded(m),
            Failure::Transient(m) | Failure::Permanent(m) => ModelError::Failed(m),
        }
    }
}

fn classify(e: OpenAIError) -> Failure {
    match e {
        OpenAIError::ApiError(resp) => {
            let status = resp.status_code.as_u16();
            let message = format!("upstream returned {status}: {}", resp.api_error.message);
            if resp.api_error.code.as_deref() == Some("context_length_exceeded") {
                return Failure::ContextExceeded(message);
            }
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

/// What a streamed turn yields as it arrives.
#[derive(Debug, PartialEq)]
pub enum Piece {
    Text(String),
    /// The model began its call number `index` (in the order of the turn's calls): its id
    /// and name are known from here on.
    CallBegun {
        index: usize,
        id: String,
        name: String,
    },
    /// More of call `index`'s arguments, as the model wrote them.
    Arguments {
        index: usize,
        fragment: String,
    },
}

/// A streamed turn: yields text and tool calls as they arrive, and gathers the whole turn.
pub struct TurnStream {
    inner: StreamResponse<Chunk>,
    turn: Turn,
    calls: Calls,
    ready: VecDeque<Piece>,
    ended: bool,
}

impl TurnStream {
    fn new(inner: StreamResponse<Chunk>) -> Self {
        Self {
            inner,
            turn: Turn::default(),
            calls: Calls::default(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// The next piece of the turn, or `None` once it is over.
    pub async fn next(&mut self, cancel: &CancellationToken) -> Result<Option<Piece>, ModelError> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Ok(Some(piece));
            }
            if self.ended {
                return Ok(None);
            }
            let item = tokio::select! {
                _ = cancel.cancelled() => return Err(ModelError::Cancelled),
                item = self.inner.next() => item,
            };
            match item {
                None => {
                    self.ended = true;
                    self.calls.begin_all(&mut self.ready);
                }
                Some(Ok(chunk)) => self.take(chunk),
                Some(Err(e)) => {
                    return Err(ModelError::Failed(format!("upstream stream failed: {e}")))
                }
            }
        }
    }

    fn take(&mut self, chunk: Chunk) {
        if let Some(u) = chunk.usage {
            self.turn.usage = Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
            };
        }
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason {
                self.turn.finish_reason = Some(reason);
            }
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                self.turn.text.push_str(&text);
                self.ready.push_back(Piece::Text(text));
            }
            let parts = choice.delta.tool_calls.unwrap_or_default();
            for (i, part) in parts.into_iter().enumerate() {
                self.calls.take(part, i, &mut self.ready);
            }
        }
    }

    /// The whole turn; call it after `next` returned `None`.
    pub fn finish(mut self) -> Turn {
        self.turn.tool_calls = self.calls.list.into_iter().map(|c| c.call).collect();
        self.turn
    }
}

/// The tool calls of a turn in the order they began, found by the upstream's `index`.
#[derive(Default)]
struct Calls {
    list: Vec<Gathered>,
    by_upstream_index: HashMap<usize, usize>,
}

struct Gathered {
    call: ToolCall,
    /// Whether `Piece::CallBegun` was sent; arguments wait for it (they need the name).
    begun: bool,
}

impl Calls {
    fn take(&mut self, part: ToolCallChunk, position: usize, ready: &mut VecDeque<Piece>) {
        let upstream = part.index.unwrap_or(position);
        let index = *self.by_upstream_index.entry(upstream).or_insert_with(|| {
            self.list.push(Gathered {
                call: ToolCall::default(),
                begun: false,
            });
            self.list.len() - 1
        });
        let gathered = &mut self.list[index];
        if let Some(id) = part.id.filter(|id| !id.is_empty()) {
            // Once announced, the id the client saw stays the call's id.
            if !gathered.begun {
                gathered.call.id = id;
            }
        }
        let mut fragment = String::new();
        if let Some(f) = part.function {
            if let Some(name) = f.name {
                gathered.call.name.push_str(&name);
            }
            if let Some(args) = f.arguments {
                gathered.call.arguments.push_str(&args);
                fragment = args;
            }
        }
        if !gathered.begun && !gathered.call.name.is_empty() {
            Self::begin(index, gathered, ready);
        } else if gathered.begun && !fragment.is_empty() {
            ready.push_back(Piece::Arguments { index, fragment });
        }
    }

    /// Calls whose name never came still begin (as functions with no name) before the turn ends.
    fn begin_all(&mut self, ready: &mut VecDeque<Piece>) {
        for (index, gathered) in self.list.iter_mut().enumerate() {
            if !gathered.begun {
                Self::begin(index, gathered, ready);
            }
        }
    }

    fn begin(index: usize, gathered: &mut Gathered, ready: &mut VecDeque<Piece>) {
        gathered.begun = true;
        if gathered.call.id.is_empty() {
            gathered.call.id = crate::ids::new_id(crate::ids::CALL);
        }
        ready.push_back(Piece::CallBegun {
            index,
            id: gathered.call.id.clone(),
            name: gathered.call.name.clone(),
        });
        if !gathered.call.arguments.is_empty() {
            ready.push_back(Piece::Arguments {
                index,
                fragment: gathered.call.arguments.clone(),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(
        index: usize,
        id: Option<&str>,
        name: Option<&str>,
        args: Option<&str>,
    ) -> ToolCallChunk {
        ToolCallChunk {
            index: Some(index),
            id: id.map(str::to_string),
            function: Some(FunctionChunk {
                name: name.map(str::to_string),
                arguments: args.map(str::to_string),
            }),
        }
    }

    fn begun(index: usize, id: &str, name: &str) -> Piece {
        Piece::CallBegun {
            index,
            id: id.into(),
            name: name.into(),
        }
    }

    fn args(index: usize, fragment: &str) -> Piece {
        Piece::Arguments {
            index,
            fragment: fragment.into(),
        }
    }

    #[test]
    fn calls_begin_once_named_and_their_arguments_follow_in_order() {
        let mut calls = Calls::default();
        let mut ready = VecDeque::new();
        // Arguments before the name wait for it; upstream indexes need not start at 0.
        calls.take(part(3, Some("call_a"), None, Some("{\"co")), 0, &mut ready);
        assert!(ready.is_empty());
        calls.take(
            part(3, None, Some("code_interpreter"), Some("de\"")),
            0,
            &mut ready,
        );
        calls.take(part(5, None, Some("f"), None), 0, &mut ready);
        // An id that comes after the call was announced does not replace the announced one.
        calls.take(part(5, Some("call_late"), None, Some("{}")), 0, &mut ready);
        calls.take(part(7, None, None, Some("x")), 0, &mut ready);
        calls.begin_all(&mut ready);
        let ids: Vec<String> = calls.list.iter().map(|c| c.call.id.clone()).collect();
        assert_eq!(ids[0], "call_a");
        assert!(ids[1].starts_with("call_") && ids[1] != "call_late");
        assert_eq!(
            ready.into_iter().collect::<Vec<_>>(),
            vec![
                begun(0, "call_a", "code_interpreter"),
                args(0, "{\"code\""),
                begun(1, &ids[1], "f"),
                args(1, "{}"),
                begun(2, &ids[2], ""),
                args(2, "x"),
            ]
        );
        assert_eq!(calls.list[0].call.arguments, "{\"code\"");
    }
}
