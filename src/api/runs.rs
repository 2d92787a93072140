//! Runs: create (plain or streamed), create thread and run, list, retrieve, modify, cancel,
//! submit tool outputs. Execution itself is the executor's.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use sqlx::types::Json as SqlJson;

use super::json::ApiJson;
use super::messages::NewMessage;
use super::threads::NewThread;
use super::tool_resources;
use super::AppState;
use crate::auth::Project;
use crate::domain::runs;
use crate::error::{ApiError, ApiResult};
use crate::executor::events::sse_response;
use crate::executor::Handover;
use crate::objects::run::{FunctionToolCall, TruncationStrategy};
use crate::objects::tools::{validate_response_format, validate_tools, Tool, ToolResources};
use crate::objects::{Assistant, Run};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::store::{self, Kind};
use crate::validate::{self, Metadata};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads/runs", post(create_thread_and_run))
        .route("/threads/{thread_id}/runs", get(list).post(create))
        .route(
            "/threads/{thread_id}/runs/{run_id}",
            get(retrieve).post(modify),
        )
        .route("/threads/{thread_id}/runs/{run_id}/cancel", post(cancel))
        .route(
            "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
            post(submit_tool_outputs),
        )
}

/// The body of both create-run and create-thread-and-run; each refuses the fields that
/// belong only to the other.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    assistant_id: String,
    #[serde(default)]
    thread: Option<NewThread>,
    #[serde(default)]
    tool_resources: Option<ToolResources>,
    #[serde(default)]
    additional_messages: Option<Vec<NewMessage>>,
    #[serde(default)]
    additional_instructions: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_prompt_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    truncation_strategy: Option<TruncationStrategy>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    /// Accepted for compatibility; chat completions upstreams take it per model instead.
    #[serde(default)]
    reasoning_effort: Option<String>,
}

fn unknown(param: &str) -> ApiError {
    ApiError::invalid_code(
        param,
        "unknown_parameter",
        format!("Unknown parameter: '{param}'."),
    )
}

impl RunRequest {
    /// Checks the run's own settings and merges them over the assistant's.
    fn build(&self, assistant: &Assistant, thread_id: &str) -> ApiResult<Run> {
        if let Some(t) = self.temperature {
            validate::range("temperature", t, 0.0, 2.0)?;
        }
        if let Some(p) = self.top_p {
            validate::range("top_p", p, 0.0, 1.0)?;
        }
        for (param, value) in [
            ("max_prompt_tokens", self.max_prompt_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
        ] {
            if let Some(v) = value.filter(|v| *v < 256) {
                return Err(ApiError::invalid_code(
                    param,
                    "integer_below_min_value",
                    format!("Invalid '{param}': integer below minimum value. Expected a value >= 256, but got {v} instead."),
                ));
            }
        }
        if let Some(tools) = &self.tools {
            validate_tools("tools", tools)?;
        }
        let metadata = self.metadata.clone().unwrap_or_default();
        validate::metadata("metadata", &metadata)?;
        if let Some(format) = &self.response_format {
            validate_response_format("response_format", format)?;
        }
        validate::reasoning_effort("reasoning_effort", self.reasoning_effort.as_deref())?;
        if let Some(instructions) = &self.instructions {
            validate::max_chars("instructions", instructions, 256_000)?;
        }
        let truncation = self.truncation_strategy.clone().unwrap_or_default();
        let kind_ok = match truncation.kind.as_str() {
            "auto" => true,
            "last_messages" => truncation.last_messages.is_some(),
            _ => false,
        };
        if !kind_ok || truncation.last_messages == Some(0) {
            return Err(ApiError::invalid_code(
                "truncation_strategy",
                "invalid_value",
                "Invalid 'truncation_strategy': expected type 'auto', or 'last_messages' with last_messages >= 1.",
            ));
        }
        let tool_choice = self
            .tool_choice
            .clone()
            .unwrap_or_else(|| Value::from("auto"));
        validate_tool_choice(&tool_choice)?;

        let mut instructions = self
            .instructions
            .clone()
            .or_else(|| assistant.instructions.clone())
            .unwrap_or_default();
        if let Some(extra) = self
            .additional_instructions
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            if !instructions.is_empty() {
                instructions.push('\n');
            }
            instructions.push_str(extra);
        }
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| assistant.model.clone());
        Ok(Run {
            instructions,
            tools: self
                .tools
                .clone()
                .unwrap_or_else(|| assistant.tools.clone()),
            metadata,
            temperature: self.temperature.or(assistant.temperature),
            top_p: self.top_p.or(assistant.top_p),
            max_prompt_tokens: self.max_prompt_tokens,
            max_completion_tokens: self.max_completion_tokens,
            truncation_strategy: truncation,
            tool_choice,
            parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
            response_format: self
                .response_format
                .clone()
                .unwrap_or_else(|| assistant.response_format.clone()),
            reasoning_effort: self
                .reasoning_effort
                .clone()
                .or_else(|| assistant.reasoning_effort.clone()),
            ..Run::queued(thread_id, &assistant.id, &model)
        })
    }
}

fn validate_tool_choice(choice: &Value) -> ApiResult<()> {
    let ok = match choice {
        Value::String(s) => matches!(s.as_str(), "none" | "auto" | "required"),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("code_interpreter" | "file_search") => true,
            Some("function") => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .is_some(),
            _ => false,
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_code(
            "tool_choice",
            "invalid_value",
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a named tool.",
        ))
    }
}

/// The request's assistant (404 when unknown) and the run built from both.
async fn build_run(
    state: &AppState,
    project: &Project,
    req: &RunRequest,
    thread_id: &str,
) -> ApiResult<Run> {
    let assistant: Assistant =
        store::get(&state.db, Kind::Assistant, project, &req.assistant_id, &[]).await?;
    req.build(&assistant, thread_id)
}

/// Stores a new run on its thread (which must have no active run) and hands it to the executor.
async fn start_run(
    state: &AppState,
    project: &Project,
    req: &RunRequest,
    mut run: Run,
) -> ApiResult<Response> {
    let thread_id = run.thread_id.clone();
    let mut additional = Vec::new();
    for (i, m) in req
        .additional_messages
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        additional.push(
            m.build(
                &state.db,
                project,
                &format!("additional_messages[{i}]"),
                &thread_id,
            )
            .await?,
        );
    }
    let mut handover = state
        .executor
        .handover(&run.id, req.stream.unwrap_or(false));
    let invalidate = !additional.is_empty();
    let start = runs::Start {
        messages: additional,
        transcript: vec![],
        announce: &["thread.run.created", "thread.run.queued"],
        session: None,
    };
    let expiry = state.config.run_expiry_secs;
    runs::queue(
        &state.db,
        &state.executor,
        project,
        &mut run,
        start,
        expiry,
        &mut handover,
    )
    .await?;
    if invalidate {
        state.cache.invalidate(&thread_id);
    }
    Ok(answer(state, project.clone(), run, handover))
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    Path(thread_id): Path<String>,
    ApiJson(req): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    if req.thread.is_some() {
        return Err(unknown("thread"));
    }
    if req.tool_resources.is_some() {
        return Err(unknown("tool_resources"));
    }
    let run = build_run(&state, &project, &req, &thread_id).await?;
    start_run(&state, &project, &req, run).await
}

async fn create_thread_and_run(
    State(state): State<AppState>,
    project: Project,
    ApiJson(mut req): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    if req.additional_messages.is_some() {
        return Err(unknown("additional_messages"));
    }
    if req.additional_instructions.is_some() {
        return Err(unknown("additional_instructions"));
    }
    // Validate everything the thread does not check before creating it, so a bad request
    // leaves nothing behind.
    let mut run = build_run(&state, &project, &req, "").await?;
    let mut thread = req.thread.take().unwrap_or_default();
    if let Some(resources) = req.tool_resources.take() {
        tool_resources::check(&state.db, &project, "tool_resources", &resources).await?;
        thread.tool_resources = Some(resources);
    }
    let thread = thread.insert(&state, &project, "thread").await?;
    run.thread_id = thread.id.clone();
    let result = start_run(&state, &project, &req, run).await;
    if result.is_err() {
        let _ = store::delete(&state.db, Kind::Thread, &project, &thread.id, &[]).await;
    }
    result
}

/// A run of a thread: 404 for an unknown thread first, then for an unknown run.
pub(super) async fn load_run(
    state: &AppState,
    project: &Project,
    thread_id: &str,
    run_id: &str,
) -> ApiResult<Run> {
    store::require(&state.db, Kind::Thread, project, thread_id).await?;
    store::get(
        &state.db,
        Kind::Run,
        project,
        run_id,
        &[("thread_id", thread_id)],
    )
    .await
}

/// Gives a queued run to the executor and answers: the run itself, or its event stream.
fn answer(state: &AppState, project: Project, run: Run, handover: Handover) -> Response {
    match state.executor.dispatch(project, handover) {
        Some(events) => sse_response(events),
        None => Json(run).into_response(),
    }
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Path(thread_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<Run>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
    Ok(Json(
        store::list(
            &state.db,
            Kind::Run,
            &project,
            &[("thread_id", &thread_id)],
            &params,
        )
        .await?,
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let run = load_run(&state, &project, &thread_id, &run_id).await?;
    let poll_hint = if run.is_terminal() { None } else { Some("200") };
    let mut response = Json(run).into_response();
    if let Some(ms) = poll_hint {
        response.headers_mut().insert(
            "openai-poll-after-ms",
            axum::http::HeaderValue::from_static(ms),
        );
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyRun {
    #[serde(default)]
    metadata: Option<Metadata>,
}

async fn modify(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, run_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ModifyRun>,
) -> ApiResult<Json<Run>> {
    store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
    let mut tx = state.db.begin().await?;
    let mut run: Run = store::get_for_update(
        &mut *tx,
        Kind::Run,
        &project,
        &run_id,
        &[("thread_id", &thread_id)],
    )
    .await?;
    if let Some(metadata) = req.metadata {
        validate::metadata("metadata", &metadata)?;
        run.metadata = metadata;
    }
    // Only the metadata changes, so the executor's concurrent writes of the rest survive.
    sqlx::query("UPDATE runs SET data = jsonb_set(data, '{metadata}', $2) WHERE id = $1")
        .bind(&run_id)
        .bind(SqlJson(&run.metadata))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(run))
}

async fn cancel(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<Run>> {
    store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
    let run = state
        .executor
        .request_cancel(&project, &thread_id, &run_id)
        .await?;
    Ok(Json(run))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitToolOutputs {
    tool_outputs: Vec<ToolOutput>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolOutput {
    #[serde(default)]
    pub tool_call_id: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
}

async fn submit_tool_outputs(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, run_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<SubmitToolOutputs>,
) -> ApiResult<Response> {
    let run = load_run(&state, &project, &thread_id, &run_id).await?;
    if run.status != "requires_action" {
        return Err(ApiError::invalid(format!(
            "Runs in status \"{}\" do not accept tool outputs.",
            run.status
        )));
    }
    let expected: Vec<&FunctionToolCall> = run
        .required_action
        .as_ref()
        .map(|a| a.submit_tool_outputs.tool_calls.iter().collect())
        .unwrap_or_default();
    let mut outputs = HashMap::new();
    for (i, o) in req.tool_outputs.iter().enumerate() {
        let id = o.tool_call_id.clone().ok_or_else(|| {
            ApiError::invalid_code(
                format!("tool_outputs[{i}].tool_call_id"),
                "missing_required_parameter",
                format!("Missing required parameter: 'tool_outputs[{i}].tool_call_id'."),
            )
        })?;
        if !expected.iter().any(|c| c.id == id) {
            return Err(ApiError::invalid_param(
                format!("tool_outputs[{i}].tool_call_id"),
                format!(
                    "Invalid tool_call_id: {id}. No tool call with this id is awaiting output."
                ),
            ));
        }
        outputs.insert(id, o.output.clone().unwrap_or_default());
    }
    let missing: Vec<&str> = expected
        .iter()
        .filter(|c| !outputs.contains_key(&c.id))
        .map(|c| c.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::invalid_param(
            "tool_outputs",
            format!(
                "Expected tool outputs for call_ids {missing:?}, got {:?}.",
                outputs.keys().collect::<Vec<_>>()
            ),
        ));
    }
    let mut handover = state
        .executor
        .handover(&run.id, req.stream.unwrap_or(false));
    let run = state
        .executor
        .accept_tool_outputs(&project, &run, outputs, &mut handover)
        .await?;
    Ok(answer(&state, project, run, handover))
}
