//! `item_reference` input items: an item of an earlier response or conversation named by
//! its id, found where it is kept — a thread message, a response's input items, or a run
//! step's tool call — and read as if the client had passed the item itself.

use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;

use super::input::{self, Input};
use super::items::{self, Context};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::objects::run::{RunStep, StepDetails, StepToolCall};
use crate::objects::Message;

/// The input with its references replaced by the items they name. A message already on
/// `thread_id` (the backing thread) is context the run reads anyway: it becomes an echo.
pub async fn resolve(
    db: &PgPool,
    project: &Project,
    thread_id: Option<&str>,
    input: Vec<Input>,
) -> ApiResult<Vec<Input>> {
    let mut out = Vec::with_capacity(input.len());
    for item in input {
        out.push(match item {
            Input::Reference { id, param } => find(db, project, thread_id, &id, &param).await?,
            other => other,
        });
    }
    Ok(out)
}

async fn find(
    db: &PgPool,
    project: &Project,
    thread_id: Option<&str>,
    id: &str,
    param: &str,
) -> ApiResult<Input> {
    let message: Option<(String, SqlJson<Message>)> =
        sqlx::query_as("SELECT thread_id, data FROM messages WHERE id = $1 AND project = $2")
            .bind(id)
            .bind(&project.0)
            .fetch_optional(db)
            .await?;
    if let Some((thread, message)) = message {
        if Some(thread.as_str()) == thread_id {
            return Ok(Input::Echo);
        }
        return input::parse(&items::message(&message.0, &Context::default()), param);
    }
    let kept: Option<SqlJson<Value>> = sqlx::query_scalar(
        "SELECT e FROM responses r, jsonb_array_elements(r.input) e
         WHERE r.project = $1 AND r.input @> $2 AND e->>'id' = $3
           AND (r.request->>'store') IS DISTINCT FROM 'false'
         LIMIT 1",
    )
    .bind(&project.0)
    .bind(SqlJson(json!([{ "id": id }])))
    .bind(id)
    .fetch_optional(db)
    .await?;
    if let Some(item) = kept {
        return input::parse(&item.0, param);
    }
    if let Some(call) = step_call(db, project, id).await? {
        return Ok(match call {
            StepToolCall::Function { id, function } => Input::FunctionCall {
                call_id: id,
                name: function.name,
                arguments: function.arguments,
            },
            // Code and search calls are context already spent.
            _ => Input::Echo,
        });
    }
    Err(ApiError::NotFound(format!(
        "Item with id '{id}' not found."
    )))
}

/// The tool call a `fc_`, `ci_` or `fs_` item id names, from the run step that made it.
async fn step_call(db: &PgPool, project: &Project, id: &str) -> ApiResult<Option<StepToolCall>> {
    let Some(rest) = ["fc_", "ci_", "fs_"]
        .iter()
        .find_map(|p| id.strip_prefix(p))
    else {
        return Ok(None);
    };
    // `call_abc` is item `fc_abc`; a call id without the prefix is kept whole.
    for call_id in [format!("call_{rest}"), rest.to_string()] {
        let step: Option<SqlJson<RunStep>> = sqlx::query_scalar(
            "SELECT data FROM run_steps
             WHERE data->'step_details'->>'type' = 'tool_calls'
               AND data->'step_details'->'tool_calls' @> $1 AND project = $2
             LIMIT 1",
        )
        .bind(SqlJson(json!([{ "id": call_id }])))
        .bind(&project.0)
        .fetch_optional(db)
        .await?;
        let Some(step) = step else { continue };
        let StepDetails::ToolCalls { tool_calls } = step.0.step_details else {
            continue;
        };
        let call = tool_calls.into_iter().find(|c| c.id() == call_id);
        if call
            .as_ref()
            .is_some_and(|c| items::call_item_id(prefix_of(c), c.id()) == id)
        {
            return Ok(call);
        }
    }
    Ok(None)
}

fn prefix_of(call: &StepToolCall) -> &'static str {
    match call {
        StepToolCall::Function { .. } => "fc",
        StepToolCall::CodeInterpreter { .. } => "ci",
        StepToolCall::FileSearch { .. } => "fs",
    }
}
