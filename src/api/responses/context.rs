//! `POST /v1/responses/input_tokens` and `POST /v1/responses/compact`: a request's model
//! context (its chain's messages, input, instructions and tools, as `create::opening` builds
//! them) counted, or compacted into a `compaction` item. Neither stores anything.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::create;
use super::request::CreateResponse;
use super::AppState;
use crate::api::json::{from_value, ApiJson};
use crate::auth::Project;
use crate::domain::responses::{compaction, usage_object, RESPONSE};
use crate::error::{ApiError, ApiResult};
use crate::ids;

/// The fields `input_tokens` takes (create's, less those about running and storing).
const COUNTED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "conversation",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
    "truncation",
];

/// `{"object": "response.input_tokens", "input_tokens": N}`: the tokens the model would be
/// sent, estimated as `truncation: auto` counts them.
pub async fn input_tokens(
    State(state): State<AppState>,
    project: Project,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    if let Some(key) = body.keys().find(|k| !COUNTED.contains(&k.as_str())) {
        return Err(unknown(key));
    }
    let mut body = body;
    // The model only routes a request; counting does not depend on it.
    body.entry("model").or_insert_with(|| json!("default"));
    let req: CreateResponse = from_value(Value::Object(body))?;
    let opening = create::opening(&state, &project, &req).await?;
    let tokens = state.executor.count_tokens(&opening.run, &opening.chat);
    Ok(Json(
        json!({"object": "response.input_tokens", "input_tokens": tokens}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compact {
    model: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    previous_response_id: Option<String>,
    // Accepted and echoed only, as on create.
    #[serde(default)]
    safety_identifier: Option<String>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    prompt_cache_key: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    prompt_cache_retention: Option<String>,
}

/// A `response.compaction`: the context's user messages, then one compaction item summarising
/// the whole context (made by one call to the model). Its output, passed as the input of a
/// later response, continues the conversation.
pub async fn compact(
    State(state): State<AppState>,
    project: Project,
    ApiJson(body): ApiJson<Compact>,
) -> ApiResult<Json<Value>> {
    let req: CreateResponse = from_value(json!({
        "model": body.model,
        "input": body.input,
        "instructions": body.instructions,
        "previous_response_id": body.previous_response_id,
    }))?;
    let opening = create::opening(&state, &project, &req).await?;
    if !opening.chat.iter().any(|m| m["role"] != "system") {
        return Err(ApiError::invalid_param(
            "input",
            "There is nothing to compact: give an input or a previous_response_id.",
        ));
    }
    let (item, usage) = compaction::summarise(&state.executor, &req.model, &opening.chat).await?;
    let mut output = compaction::user_messages(&opening.chat);
    output.push(item);
    Ok(Json(json!({
        "id": ids::new_id(RESPONSE),
        "object": "response.compaction",
        "created_at": ids::now(),
        "output": output,
        "usage": usage_object(usage),
        "safety_identifier": body.safety_identifier,
        "service_tier": body.service_tier.unwrap_or_else(|| "default".into()),
    })))
}

fn unknown(key: &str) -> ApiError {
    ApiError::invalid_code(
        key,
        "unknown_parameter",
        format!("Unknown parameter: '{key}'."),
    )
}
