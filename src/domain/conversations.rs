//! Conversations: a backing thread whose messages and run steps are the conversation's items,
//! in the order they were made (`item_seq`, one sequence over both tables). A response with
//! `conversation` runs on that thread, so its input and output join the items as it runs.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, PgPool};

use crate::auth::Project;
use crate::blobs::BlobStore;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::run::{StepDetails, StepToolCall};
use crate::objects::{Message, RunStep};
use crate::validate::Metadata;

use super::responses::items::{self, Context};

pub const CONVERSATION: &str = "conv_";

pub struct Conversation {
    pub object: Value,
    pub thread_id: String,
}

pub fn new_object(metadata: &Metadata) -> Value {
    json!({
        "id": ids::new_id(CONVERSATION),
        "object": "conversation",
        "created_at": ids::now(),
        "metadata": metadata,
    })
}

pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    object: &Value,
    thread_id: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO conversations (id, project, created_at, thread_id, data)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(object["id"].as_str())
    .bind(&project.0)
    .bind(object["created_at"].as_i64())
    .bind(thread_id)
    .bind(SqlJson(object))
    .execute(db)
    .await?;
    Ok(())
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Conversation with id '{id}' not found."))
}

pub async fn load<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    id: &str,
) -> ApiResult<Conversation> {
    let row: Option<(SqlJson<Value>, String)> =
        sqlx::query_as("SELECT data, thread_id FROM conversations WHERE id = $1 AND project = $2")
            .bind(id)
            .bind(&project.0)
            .fetch_optional(db)
            .await?;
    let (object, thread_id) = row.ok_or_else(|| not_found(id))?;
    Ok(Conversation {
        object: object.0,
        thread_id,
    })
}

pub async fn set_metadata(
    db: &PgPool,
    project: &Project,
    id: &str,
    metadata: &Metadata,
) -> ApiResult<Value> {
    let mut c = load(db, project, id).await?;
    c.object["metadata"] = json!(metadata);
    sqlx::query("UPDATE conversations SET data = $2 WHERE id = $1")
        .bind(id)
        .bind(SqlJson(&c.object))
        .execute(db)
        .await?;
    Ok(c.object)
}

/// Deletes a message of the conversation's thread.
pub async fn delete_message(db: &PgPool, thread_id: &str, message_id: &str) -> ApiResult<()> {
    sqlx::query("DELETE FROM messages WHERE id = $1 AND thread_id = $2")
        .bind(message_id)
        .bind(thread_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Removes the conversation; its responses stay (their own thread rows keep them).
pub async fn delete(db: &PgPool, project: &Project, id: &str) -> ApiResult<()> {
    match crate::store::delete_row(db, "conversations", project, id).await? {
        true => Ok(()),
        false => Err(not_found(id)),
    }
}

/// Every item of the conversation, oldest first: its messages, the tool calls (with
/// function outputs) of the runs on its thread, and the items kept as context.
pub async fn items(
    db: &PgPool,
    blobs: &BlobStore,
    thread_id: &str,
    include: &[String],
) -> ApiResult<Vec<Value>> {
    let messages: Vec<(i64, SqlJson<Message>)> = sqlx::query_as(
        "SELECT item_seq, data FROM messages WHERE thread_id = $1 ORDER BY item_seq",
    )
    .bind(thread_id)
    .fetch_all(db)
    .await?;
    let steps: Vec<(i64, SqlJson<RunStep>)> = sqlx::query_as(
        "SELECT item_seq, data FROM run_steps WHERE thread_id = $1
           AND data->>'type' = 'tool_calls' ORDER BY item_seq",
    )
    .bind(thread_id)
    .fetch_all(db)
    .await?;
    // Each item shows the container its run's code used.
    let sessions: HashMap<String, String> = sqlx::query_as(
        "SELECT id, session_id FROM runs WHERE thread_id = $1 AND session_id IS NOT NULL",
    )
    .bind(thread_id)
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    let mut files = HashMap::new();
    for container in sessions.values() {
        if !files.contains_key(container) {
            let of = super::responses::container_files(db, container).await;
            files.insert(container.clone(), of);
        }
    }
    let use_run = |cx: &mut Context, run_id: Option<&str>| {
        let container = run_id.and_then(|r| sessions.get(r)).cloned();
        let container = container.unwrap_or_default();
        if cx.container_id != container {
            cx.container_files = files.get(&container).cloned().unwrap_or_default();
            cx.container_id = container;
        }
    };
    let mut cx = Context {
        container_files: HashMap::new(),
        container_id: String::new(),
        outputs: None,
        search_results: include.iter().any(|i| i == "file_search_call.results"),
        queries: HashMap::new(),
    };
    let searched: Vec<&str> = steps
        .iter()
        .filter(|(_, s)| items::searched(&s.0))
        .map(|(_, s)| s.0.run_id.as_str())
        .collect();
    if !searched.is_empty() {
        cx.queries = super::responses::search_queries(db, &searched).await;
    }
    if include.iter().any(|i| i == "code_interpreter_call.outputs") {
        let mut urls = HashMap::new();
        for file_id in steps.iter().flat_map(|(_, s)| items::image_files(&s.0)) {
            urls.insert(
                file_id.clone(),
                super::responses::image_url(blobs, &file_id).await,
            );
        }
        cx.outputs = Some(urls);
    }
    let mut ordered: Vec<(i64, Vec<Value>)> = vec![];
    for (seq, m) in &messages {
        use_run(&mut cx, m.0.run_id.as_deref());
        ordered.push((*seq, vec![items::message(&m.0, &cx)]));
    }
    for (seq, step) in &steps {
        use_run(&mut cx, Some(&step.0.run_id));
        let mut out = vec![];
        if let StepDetails::ToolCalls { tool_calls } = &step.0.step_details {
            for call in tool_calls {
                out.extend(items::call_items(call, &step.0.status, &cx));
                if let StepToolCall::Function { id, function } = call {
                    if let Some(output) = &function.output {
                        out.push(json!({"type": "function_call_output",
                            "id": items::call_item_id("fco", id), "call_id": id,
                            "output": output, "status": "completed"}));
                    }
                }
            }
        }
        ordered.push((*seq, out));
    }
    for (seq, item) in super::responses::context::on_thread(db, thread_id).await? {
        ordered.push((seq, vec![item]));
    }
    ordered.sort_by_key(|(seq, _)| *seq);
    Ok(ordered.into_iter().flat_map(|(_, items)| items).collect())
}
