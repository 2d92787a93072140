//! Responses as stored: a row per response naming the run that executes it, and the
//! `response` object built from that run's record (status, output items, usage). The
//! `/v1/responses` handlers are in `api::responses`.

pub mod compaction;
pub mod context;
pub mod input;
pub mod input_files;
pub mod items;
pub mod reference;
pub mod shell_items;

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, PgPool};

use crate::auth::Project;
use crate::blobs::{BlobStore, Key};
use crate::error::{ApiError, ApiResult};
use crate::executor::{query_of, SEARCH_TOOL};
use crate::objects::run::{StepDetails, StepToolCall, Usage};
use crate::objects::{Message, Run, RunStep};
use items::Context;

pub const RESPONSE: &str = "resp_";

/// A response's row.
#[derive(Clone, Debug)]
pub struct Stored {
    pub id: String,
    pub created_at: i64,
    pub thread_id: String,
    pub run_id: String,
    pub first_step_seq: i64,
    pub usage_before: Usage,
    /// The echoed request fields, plus `container_id` and `include`.
    pub request: Value,
    pub input: Vec<Value>,
    pub frozen: Option<Value>,
}

impl Stored {
    pub fn include(&self, what: &str) -> bool {
        self.request["include"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == what))
    }

    pub fn container_id(&self) -> &str {
        self.request["container_id"].as_str().unwrap_or_default()
    }
}

pub async fn insert<'e>(db: impl PgExecutor<'e>, project: &Project, r: &Stored) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO responses (id, project, created_at, thread_id, run_id, first_step_seq,
                                usage_before, request, input)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.id)
    .bind(&project.0)
    .bind(r.created_at)
    .bind(&r.thread_id)
    .bind(&r.run_id)
    .bind(r.first_step_seq)
    .bind(SqlJson(r.usage_before))
    .bind(SqlJson(&r.request))
    .bind(SqlJson(&r.input))
    .execute(db)
    .await?;
    Ok(())
}

type Row = (
    String,
    i64,
    String,
    String,
    i64,
    SqlJson<Usage>,
    SqlJson<Value>,
    SqlJson<Vec<Value>>,
    Option<SqlJson<Value>>,
);

/// A stored response of this project (404 in OpenAI's words otherwise; one made with
/// `store: false` is not there for later requests).
pub async fn load<'e>(db: impl PgExecutor<'e>, project: &Project, id: &str) -> ApiResult<Stored> {
    find(db, project, id, false).await
}

/// A response a WebSocket made with `store: false`: its socket's later requests can name it.
pub async fn load_held<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    id: &str,
) -> ApiResult<Stored> {
    find(db, project, id, true).await
}

async fn find<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    id: &str,
    unstored: bool,
) -> ApiResult<Stored> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, created_at, thread_id, run_id, first_step_seq, usage_before, request, input,
                frozen
         FROM responses WHERE id = $1 AND project = $2
           AND ($3 OR (request->>'store') IS DISTINCT FROM 'false')",
    )
    .bind(id)
    .bind(&project.0)
    .bind(unstored)
    .fetch_optional(db)
    .await?;
    let Some((id, created_at, thread_id, run_id, first_step_seq, usage, request, input, frozen)) =
        row
    else {
        return Err(not_found(id));
    };
    Ok(Stored {
        id,
        created_at,
        thread_id,
        run_id,
        first_step_seq,
        usage_before: usage.0,
        request: request.0,
        input: input.0,
        frozen: frozen.map(|f| f.0),
    })
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Response with id '{id}' not found."))
}

/// The container the newest response with code on a thread used: a conversation keeps it.
pub async fn container_of_thread(db: &PgPool, thread_id: &str) -> ApiResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT request->>'container_id' FROM responses WHERE thread_id = $1
           AND COALESCE(request->>'container_id', '') <> ''
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(thread_id)
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Where a response branching off `prev` cuts `prev`'s thread (the `item_seq` of the last
/// message it saw or made), or `None` when `prev` is the newest response there and a new
/// one simply goes on.
pub async fn fork_point(db: &PgPool, prev: &Stored) -> ApiResult<Option<i64>> {
    let later: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM responses WHERE thread_id = $1
                          AND seq > (SELECT seq FROM responses WHERE id = $2))",
    )
    .bind(&prev.thread_id)
    .bind(&prev.id)
    .fetch_one(db)
    .await?;
    if !later {
        return Ok(None);
    }
    let inputs: Vec<&str> = prev.input.iter().filter_map(|i| i["id"].as_str()).collect();
    let cut: Option<i64> = sqlx::query_scalar(
        "SELECT COALESCE(
             (SELECT max(item_seq) FROM messages
              WHERE thread_id = $1 AND (run_id = $2 OR id = ANY($3))),
             (SELECT max(item_seq) FROM messages WHERE thread_id = $1 AND created_at <= $4))",
    )
    .bind(&prev.thread_id)
    .bind(&prev.run_id)
    .bind(&inputs)
    .bind(prev.created_at)
    .fetch_one(db)
    .await?;
    Ok(Some(cut.unwrap_or(0)))
}

/// The container a chain's code last ran in: the previous response's, else the one's before
/// it, and so on (a response without code keeps none).
pub async fn chain_container(
    db: &PgPool,
    project: &Project,
    prev: &Stored,
) -> ApiResult<Option<String>> {
    let mut at = Some(prev.clone());
    for _ in 0..MAX_CHAIN_HOPS {
        let Some(r) = at else { break };
        if !r.container_id().is_empty() {
            return Ok(Some(r.container_id().to_string()));
        }
        at = match r.request["previous_response_id"].as_str() {
            Some(id) => load(db, project, id).await.ok(),
            None => None,
        };
    }
    Ok(None)
}

/// How far back [`chain_container`] looks.
const MAX_CHAIN_HOPS: usize = 64;

/// The newest stored response on a thread (a conversation's), if any.
pub async fn newest_on_thread(
    db: &PgPool,
    project: &Project,
    thread_id: &str,
) -> ApiResult<Option<Stored>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM responses WHERE thread_id = $1 AND project = $2
           AND (request->>'store') IS DISTINCT FROM 'false'
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(thread_id)
    .bind(&project.0)
    .fetch_optional(db)
    .await?;
    match id {
        Some(id) => Ok(Some(load(db, project, &id).await?)),
        None => Ok(None),
    }
}

/// Keeps a response's final object: another response is about to continue its run.
pub async fn freeze<'e>(db: impl PgExecutor<'e>, id: &str, object: &Value) -> ApiResult<()> {
    sqlx::query("UPDATE responses SET frozen = $2 WHERE id = $1")
        .bind(id)
        .bind(SqlJson(object))
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete(db: &PgPool, project: &Project, id: &str) -> ApiResult<()> {
    match crate::store::delete_row(db, "responses", project, id).await? {
        true => Ok(()),
        false => Err(not_found(id)),
    }
}

/// Keeps a background stream's events for a later replay.
pub async fn record_events(db: &PgPool, id: &str, events: &[Value]) -> ApiResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["sequence_number"].as_i64().unwrap_or_default())
        .collect();
    let data: Vec<SqlJson<&Value>> = events.iter().map(SqlJson).collect();
    sqlx::query(
        "INSERT INTO response_events (response_id, seq, data)
         SELECT $1, * FROM unnest($2::bigint[], $3::jsonb[]) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&seqs)
    .bind(&data)
    .execute(db)
    .await?;
    Ok(())
}

/// A background stream's events after `after` (all with `None`), in order.
pub async fn events_after(db: &PgPool, id: &str, after: Option<i64>) -> ApiResult<Vec<Value>> {
    let rows: Vec<SqlJson<Value>> = sqlx::query_scalar(
        "SELECT data FROM response_events WHERE response_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind(id)
    .bind(after.unwrap_or(-1))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The next step seq of a run: where a response continuing it begins.
pub async fn next_step_seq(db: &PgPool, run_id: &str) -> ApiResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(seq), 0) + 1 FROM run_steps WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(db)
            .await?,
    )
}

/// The response's status for its run's.
pub fn status_of(run: &Run, output: &[Value]) -> &'static str {
    match run.status.as_str() {
        "queued" => "queued",
        "in_progress" | "cancelling" => "in_progress",
        // A function call ends a response; the client goes on with a new one.
        "requires_action" | "completed" => "completed",
        "incomplete" => "incomplete",
        "cancelled" => "cancelled",
        // A run left waiting for function outputs expires; its response had completed.
        "expired"
            if output
                .last()
                .is_some_and(|i| i["type"] == "function_call" || i["type"] == "shell_call") =>
        {
            "completed"
        }
        _ => "failed",
    }
}

/// The `response` object as of now, built from the run's record (or the kept final one).
pub async fn object(db: &PgPool, blobs: &BlobStore, r: &Stored) -> ApiResult<Value> {
    if let Some(frozen) = &r.frozen {
        return Ok(frozen.clone());
    }
    let run: Run = sqlx::query_scalar::<_, SqlJson<Run>>("SELECT data FROM runs WHERE id = $1")
        .bind(&r.run_id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| not_found(&r.id))?
        .0;
    let steps = steps(db, r).await?;
    let message_ids: Vec<&str> = steps
        .iter()
        .filter_map(|s| match &s.step_details {
            StepDetails::MessageCreation { message_creation } => {
                Some(message_creation.message_id.as_str())
            }
            _ => None,
        })
        .collect();
    let messages: Vec<SqlJson<Message>> =
        sqlx::query_scalar("SELECT data FROM messages WHERE id = ANY($1)")
            .bind(&message_ids)
            .fetch_all(db)
            .await?;
    let messages: HashMap<String, Message> = messages
        .into_iter()
        .map(|m| (m.0.id.clone(), m.0))
        .collect();
    let cx = context(db, blobs, r, &steps).await;
    let mut output = vec![];
    for step in &steps {
        match &step.step_details {
            StepDetails::MessageCreation { message_creation } => {
                if let Some(m) = messages.get(&message_creation.message_id) {
                    output.push(items::message(m, &cx));
                }
            }
            StepDetails::ToolCalls { .. } => output.extend(items::tool_calls(step, &cx)),
        }
    }
    Ok(assemble(r, &run, output))
}

/// The response's steps: its run's, from where it began.
async fn steps(db: &PgPool, r: &Stored) -> ApiResult<Vec<RunStep>> {
    let steps: Vec<SqlJson<RunStep>> = sqlx::query_scalar(
        "SELECT data FROM run_steps WHERE run_id = $1 AND seq >= $2 ORDER BY seq",
    )
    .bind(&r.run_id)
    .bind(r.first_step_seq)
    .fetch_all(db)
    .await?;
    Ok(steps.into_iter().map(|s| s.0).collect())
}

/// The function calls the response's run made from where it began: (call id, name,
/// arguments).
pub async fn function_calls(db: &PgPool, r: &Stored) -> ApiResult<Vec<(String, String, String)>> {
    let mut calls = vec![];
    for step in steps(db, r).await? {
        if let StepDetails::ToolCalls { tool_calls } = step.step_details {
            for call in tool_calls {
                if let StepToolCall::Function { id, function } = call {
                    calls.push((id, function.name, function.arguments));
                }
            }
        }
    }
    Ok(calls)
}

/// The object from the run as it stands and the response's output items (from the record,
/// or from the stream that just made them).
pub fn assemble(r: &Stored, run: &Run, output: Vec<Value>) -> Value {
    let status = status_of(run, &output);
    let mut object = snapshot(r, status);
    if run.is_terminal() || run.status == "requires_action" {
        let mut usage = run.usage.unwrap_or_default();
        usage.prompt_tokens = usage
            .prompt_tokens
            .saturating_sub(r.usage_before.prompt_tokens);
        usage.completion_tokens = usage
            .completion_tokens
            .saturating_sub(r.usage_before.completion_tokens);
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
        object["usage"] = usage_object(usage);
    }
    if status == "completed" {
        object["completed_at"] = json!(run.completed_at.unwrap_or(run.created_at));
    }
    if let (Some(e), "failed") = (&run.last_error, status) {
        object["error"] = json!({"code": e.code, "message": e.message});
    }
    if status == "incomplete" {
        object["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }
    object["output"] = Value::from(output);
    // A response that began by compacting its context shows the compaction item first.
    if let (Some(item), Some(items)) =
        (r.request.get("compaction"), object["output"].as_array_mut())
    {
        items.insert(0, item.clone());
    }
    object
}

/// What the items of this response need: its container, and image URLs when included.
pub async fn context(db: &PgPool, blobs: &BlobStore, r: &Stored, steps: &[RunStep]) -> Context {
    let mut cx = Context {
        container_id: r.container_id().to_string(),
        outputs: None,
        search_results: r.include("file_search_call.results"),
        container_files: container_files(db, r.container_id()).await,
        queries: HashMap::new(),
    };
    if steps.iter().any(items::searched) {
        cx.queries = search_queries(db, &[&r.run_id]).await;
    }
    if r.include("code_interpreter_call.outputs") {
        let mut urls = HashMap::new();
        for file_id in steps.iter().flat_map(items::image_files) {
            urls.insert(file_id.clone(), image_url(blobs, &file_id).await);
        }
        cx.outputs = Some(urls);
    }
    cx
}

/// What each file_search call of the runs searched for, by call id: the model's arguments in
/// the runs' transcripts (the Assistants step has no place for them).
pub async fn search_queries(db: &PgPool, run_ids: &[&str]) -> HashMap<String, String> {
    let transcripts: Vec<SqlJson<Vec<Value>>> =
        sqlx::query_scalar("SELECT transcript FROM runs WHERE id = ANY($1)")
            .bind(run_ids)
            .fetch_all(db)
            .await
            .unwrap_or_default();
    let mut queries = HashMap::new();
    for turn in transcripts.into_iter().flat_map(|t| t.0) {
        for call in turn["tool_calls"].as_array().into_iter().flatten() {
            if call["function"]["name"] == SEARCH_TOOL {
                let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
                if let Some(id) = call["id"].as_str() {
                    queries.insert(id.to_string(), query_of(arguments));
                }
            }
        }
    }
    queries
}

/// A container's files by path (none when it has no files or the lookup fails).
pub async fn container_files(db: &PgPool, container_id: &str) -> HashMap<String, String> {
    if container_id.is_empty() {
        return HashMap::new();
    }
    sqlx::query_as::<_, (String, String)>(
        "SELECT path, id FROM container_files WHERE container_id = $1",
    )
    .bind(container_id)
    .fetch_all(db)
    .await
    .map(|rows| rows.into_iter().collect())
    .unwrap_or_default()
}

/// An image output's URL: a `data:` URL, which any client can show without another request
/// (the image is also a file: `/v1/files/{id}/content`).
pub async fn image_url(blobs: &BlobStore, file_id: &str) -> String {
    match blobs.read(&Key::file(file_id)).await {
        Ok(bytes) => format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
        Err(_) => String::new(),
    }
}

/// The object with no output yet, in `status`: what `response.created` carries.
pub fn snapshot(r: &Stored, status: &str) -> Value {
    let q = &r.request;
    let field = |k: &str, default: Value| q.get(k).cloned().unwrap_or(default);
    json!({
        "id": r.id,
        "object": "response",
        "created_at": r.created_at,
        "status": status,
        "background": field("background", json!(false)),
        "completed_at": null,
        "error": null,
        "incomplete_details": null,
        "instructions": field("instructions", Value::Null),
        "max_output_tokens": field("max_output_tokens", Value::Null),
        "max_tool_calls": field("max_tool_calls", Value::Null),
        "model": field("model", json!("")),
        "output": [],
        "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
        "previous_response_id": field("previous_response_id", Value::Null),
        "conversation": field("conversation", Value::Null),
        "reasoning": field("reasoning", json!({"effort": null, "summary": null})),
        "service_tier": field("service_tier", json!("default")),
        "store": field("store", json!(true)),
        "temperature": field("temperature", json!(1.0)),
        "top_p": field("top_p", json!(1.0)),
        "presence_penalty": field("presence_penalty", json!(0.0)),
        "frequency_penalty": field("frequency_penalty", json!(0.0)),
        "top_logprobs": field("top_logprobs", json!(0)),
        "safety_identifier": field("safety_identifier", Value::Null),
        "prompt_cache_key": field("prompt_cache_key", Value::Null),
        "text": field("text", json!({"format": {"type": "text"}})),
        "tool_choice": field("tool_choice", json!("auto")),
        "tools": field("tools", json!([])),
        "truncation": field("truncation", json!("disabled")),
        "usage": null,
        "user": field("user", Value::Null),
        "metadata": field("metadata", json!({})),
    })
}

pub fn usage_object(u: Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.total_tokens,
    })
}
