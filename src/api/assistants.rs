//! `/v1/assistants`: create, list, retrieve, modify, delete.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use sqlx::types::Json as SqlJson;

use super::json::{nullable, ApiJson};
use super::tool_resources;
use super::{cached, AppState};
use crate::auth::Project;
use crate::error::ApiResult;
use crate::ids;
use crate::objects::tools::{self, validate_response_format, validate_tools, Tool, ToolResources};
use crate::objects::{Assistant, Deleted};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::store::{self, Kind};
use crate::validate::{self, Metadata};
use axum::response::Response;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assistants", get(list).post(create))
        .route(
            "/assistants/{assistant_id}",
            get(retrieve).post(modify).delete(remove),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAssistant {
    model: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    reasoning_effort: Option<String>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_resources: Option<ToolResources>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyAssistant {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    instructions: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    reasoning_effort: Option<Option<String>>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default, deserialize_with = "nullable")]
    tool_resources: Option<Option<ToolResources>>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "nullable")]
    temperature: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    top_p: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    response_format: Option<Option<Value>>,
}

/// Checks every field of an assistant, whichever request built it; what it returns makes
/// the stores file_search asked for ([`tool_resources::settle`]).
async fn validate(
    state: &AppState,
    project: &Project,
    a: &Assistant,
) -> ApiResult<tool_resources::Checked> {
    validate::non_empty("model", &a.model)?;
    if let Some(name) = &a.name {
        validate::max_chars("name", name, 256)?;
    }
    if let Some(description) = &a.description {
        validate::max_chars("description", description, 512)?;
    }
    if let Some(instructions) = &a.instructions {
        validate::max_chars("instructions", instructions, 256_000)?;
    }
    validate_tools("tools", &a.tools)?;
    validate::metadata("metadata", &a.metadata)?;
    crate::domain::containers::network::from_assistant_metadata(
        &a.metadata,
        state.sandbox.network_ceiling(),
    )?;
    if let Some(t) = a.temperature {
        validate::range("temperature", t, 0.0, 2.0)?;
    }
    if let Some(p) = a.top_p {
        validate::range("top_p", p, 0.0, 1.0)?;
    }
    validate_response_format("response_format", &a.response_format)?;
    validate::reasoning_effort("reasoning_effort", a.reasoning_effort.as_deref())?;
    tool_resources::check(&state.db, project, "tool_resources", &a.tool_resources).await
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    ApiJson(req): ApiJson<CreateAssistant>,
) -> ApiResult<Json<Assistant>> {
    let mut assistant = Assistant {
        id: ids::new_id(ids::ASSISTANT),
        object: "assistant".into(),
        created_at: ids::now(),
        name: req.name,
        description: req.description,
        model: req.model,
        instructions: req.instructions,
        tools: req.tools.unwrap_or_default(),
        tool_resources: req.tool_resources.unwrap_or_default(),
        metadata: req.metadata.unwrap_or_default(),
        temperature: Some(req.temperature.unwrap_or(1.0)),
        top_p: Some(req.top_p.unwrap_or(1.0)),
        response_format: req.response_format.unwrap_or_else(|| Value::from("auto")),
        reasoning_effort: req.reasoning_effort,
    };
    tools::complete(&mut assistant.tools, &mut assistant.tool_resources);
    let checked = validate(&state, &project, &assistant).await?;
    tool_resources::settle(&state, &project, checked, &mut assistant.tool_resources).await?;
    sqlx::query("INSERT INTO assistants (id, project, created_at, data) VALUES ($1, $2, $3, $4)")
        .bind(&assistant.id)
        .bind(&project.0)
        .bind(assistant.created_at)
        .bind(SqlJson(&assistant))
        .execute(&state.db)
        .await?;
    Ok(Json(assistant))
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<Assistant>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    Ok(Json(
        store::list(&state.db, Kind::Assistant, &project, &[], &params).await?,
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let load = store::get::<Assistant>(&state.db, Kind::Assistant, &project, &id, &[]);
    cached::serve(&state.cache, &id, cached::key(&project, "assistant"), load).await
}

async fn modify(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ModifyAssistant>,
) -> ApiResult<Json<Assistant>> {
    let mut tx = state.db.begin().await?;
    let mut a: Assistant =
        store::get_for_update(&mut *tx, Kind::Assistant, &project, &id, &[]).await?;
    if let Some(model) = req.model {
        a.model = model;
    }
    if let Some(name) = req.name {
        a.name = name;
    }
    if let Some(description) = req.description {
        a.description = description;
    }
    if let Some(instructions) = req.instructions {
        a.instructions = instructions;
    }
    if let Some(effort) = req.reasoning_effort {
        a.reasoning_effort = effort;
    }
    if let Some(tools) = req.tools {
        a.tools = tools;
    }
    if let Some(resources) = req.tool_resources {
        a.tool_resources = resources.unwrap_or_default();
    }
    if let Some(metadata) = req.metadata {
        a.metadata = metadata;
    }
    if let Some(t) = req.temperature {
        a.temperature = Some(t.unwrap_or(1.0));
    }
    if let Some(p) = req.top_p {
        a.top_p = Some(p.unwrap_or(1.0));
    }
    if let Some(format) = req.response_format {
        a.response_format = format.unwrap_or_else(|| Value::from("auto"));
    }
    tools::complete(&mut a.tools, &mut a.tool_resources);
    let checked = validate(&state, &project, &a).await?;
    tool_resources::settle(&state, &project, checked, &mut a.tool_resources).await?;
    store::put(&mut *tx, Kind::Assistant, &id, &a).await?;
    tx.commit().await?;
    state.cache.invalidate(&id);
    Ok(Json(a))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    store::delete(&state.db, Kind::Assistant, &project, &id, &[]).await?;
    state.cache.invalidate(&id);
    Ok(Json(Deleted::new(id, "assistant.deleted")))
}
