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

/// The input with its references replaced by the items they name. An item already on
/// `thread_id` (the backing thread: the chain's or conversation's) is context the run reads
/// anyway: it becomes an echo. A replayed code call without its outputs gets them from the
/// call as recorded, when it is one of the project's.
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
            Input::Item(given) => replayed(db, project, thread_id, given).await?,
            other => other,
        });
    }
    Ok(out)
}

async fn replayed(
    db: &PgPool,
    project: &Project,
    thread_id: Option<&str>,
    mut given: Value,
) -> ApiResult<Input> {
    let id = given["id"].as_str().unwrap_or_default().to_string();
    if let Some(thread) = thread_id {
        let kept: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM thread_items WHERE thread_id = $1 AND id = $2")
                .bind(thread)
                .bind(&id)
                .fetch_optional(db)
                .await?;
        if kept.is_some() {
            return Ok(Input::Echo);
        }
    }
    let recorded = step_call(db, project, &id).await?;
    if let Some(found) = &recorded {
        if Some(found.thread_id.as_str()) == thread_id {
            return Ok(Input::Echo);
        }
    }
    if given["type"] == "code_interpreter_call" && given["outputs"].is_null() {
        if let Some(found) = recorded {
            let item = found.item(db).await?;
            given["outputs"] = item["outputs"].clone();
        }
    }
    Ok(Input::Item(given))
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
    if let Some((thread, item)) = super::context::find(db, project, id).await? {
        if Some(thread.as_str()) == thread_id {
            return Ok(Input::Echo);
        }
        return input::parse(&item, param);
    }
    if let Some(found) = step_call(db, project, id).await? {
        if let StepToolCall::Function { id, function } = &found.call {
            return Ok(Input::FunctionCall {
                call_id: id.clone(),
                name: function.name.clone(),
                arguments: function.arguments.clone(),
            });
        }
        // A code or search call of the chain is context already held; another one is read
        // as the call it was, with its code and outputs or its queries and results.
        if Some(found.thread_id.as_str()) == thread_id {
            return Ok(Input::Echo);
        }
        return Ok(Input::Item(found.item(db).await?));
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
    Err(ApiError::NotFound(format!(
        "Item with id '{id}' not found."
    )))
}

/// A tool call recorded in a run step, where it was made.
struct Recorded {
    thread_id: String,
    run_id: String,
    status: String,
    call: StepToolCall,
    /// The id named a hosted shell call's output (`sho_`), not the call.
    shell_output: bool,
}

impl Recorded {
    /// The call as an output item with everything it showed: the code's outputs and the
    /// container it ran in, the search's queries and results.
    async fn item(&self, db: &PgPool) -> ApiResult<Value> {
        let session: Option<String> =
            sqlx::query_scalar("SELECT session_id FROM runs WHERE id = $1")
                .bind(&self.run_id)
                .fetch_optional(db)
                .await?
                .flatten();
        let queries = match &self.call {
            StepToolCall::FileSearch { .. } => {
                super::search_queries(db, &[self.run_id.as_str()]).await
            }
            _ => Default::default(),
        };
        let cx = Context {
            container_id: session.unwrap_or_default(),
            outputs: Some(Default::default()),
            search_results: true,
            queries,
            ..Default::default()
        };
        let mut made = items::call_items(&self.call, &self.status, &cx);
        Ok(match self.shell_output {
            true => made.pop().unwrap_or_default(),
            false => made.swap_remove(0),
        })
    }
}

/// The tool call a `fc_`, `ci_` or `fs_` item id names, from the run step that made it.
async fn step_call(db: &PgPool, project: &Project, id: &str) -> ApiResult<Option<Recorded>> {
    let Some(rest) = ["fc_", "ci_", "fs_", "sh_", "sho_"]
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
        let Some(SqlJson(step)) = step else { continue };
        let StepDetails::ToolCalls { tool_calls } = step.step_details else {
            continue;
        };
        let call = tool_calls.into_iter().find(|c| c.id() == call_id);
        let named = |c: &StepToolCall| {
            items::call_item_id(prefix_of(c), c.id()) == id
                || matches!(c, StepToolCall::Shell { shell, .. } if shell.output.is_some())
                    && items::call_item_id("sho", c.id()) == id
        };
        if let Some(call) = call.filter(named) {
            return Ok(Some(Recorded {
                thread_id: step.thread_id,
                run_id: step.run_id,
                status: step.status,
                shell_output: id.starts_with("sho_"),
                call,
            }));
        }
    }
    Ok(None)
}

fn prefix_of(call: &StepToolCall) -> &'static str {
    match call {
        StepToolCall::Function { .. } => "fc",
        StepToolCall::CodeInterpreter { .. } => "ci",
        StepToolCall::FileSearch { .. } => "fs",
        StepToolCall::Shell { .. } => "sh",
    }
}
