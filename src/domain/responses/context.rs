//! Items kept as context on a backing thread (`thread_items`): what a client added to a
//! conversation by hand or replayed from its own history that is neither a user/assistant
//! message nor a tool call this server ran — system/developer messages, function calls and
//! outputs, code and search calls, reasoning. Each keeps its place among the thread's items
//! and is read by the model right after the message it followed (`after_message`).

use serde_json::{json, Value};
use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, PgPool};

use super::items::call_item_id;
use crate::auth::Project;
use crate::error::ApiResult;

/// One context item and the thread message it follows (`None`: before every message).
#[derive(Clone, Debug)]
pub struct Placed {
    pub after: Option<String>,
    pub item: Value,
}

pub fn function_call(call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"type": "function_call", "id": call_item_id("fc", call_id), "call_id": call_id,
           "name": name, "arguments": arguments, "status": "completed"})
}

pub fn function_call_output(call_id: &str, output: &str) -> Value {
    json!({"type": "function_call_output", "id": call_item_id("fco", call_id),
           "call_id": call_id, "output": output, "status": "completed"})
}

/// Stores the items on the thread, in order (a later copy of an item id replaces nothing:
/// the thread keeps the first).
pub async fn insert(
    tx: &mut sqlx::PgConnection,
    project: &Project,
    thread_id: &str,
    placed: &[Placed],
) -> ApiResult<()> {
    for p in placed {
        sqlx::query(
            "INSERT INTO thread_items (id, project, thread_id, after_message, data)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (thread_id, id) DO NOTHING",
        )
        .bind(p.item["id"].as_str().unwrap_or_default())
        .bind(&project.0)
        .bind(thread_id)
        .bind(&p.after)
        .bind(SqlJson(&p.item))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The thread's context items with their place in the item order (`item_seq`).
pub async fn on_thread(db: &PgPool, thread_id: &str) -> ApiResult<Vec<(i64, Value)>> {
    let rows: Vec<(i64, SqlJson<Value>)> = sqlx::query_as(
        "SELECT item_seq, data FROM thread_items WHERE thread_id = $1 ORDER BY item_seq",
    )
    .bind(thread_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(s, v)| (s, v.0)).collect())
}

/// A context item of the project by id, and the thread it is on.
pub async fn find(db: &PgPool, project: &Project, id: &str) -> ApiResult<Option<(String, Value)>> {
    let row: Option<(String, SqlJson<Value>)> = sqlx::query_as(
        "SELECT thread_id, data FROM thread_items WHERE project = $1 AND id = $2 LIMIT 1",
    )
    .bind(&project.0)
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(t, v)| (t, v.0)))
}

/// The thread's newest message, which items added now follow.
pub async fn newest_message<'e>(
    db: impl PgExecutor<'e>,
    thread_id: &str,
) -> ApiResult<Option<String>> {
    Ok(
        sqlx::query_scalar(
            "SELECT id FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(thread_id)
        .fetch_optional(db)
        .await?,
    )
}

/// Removes one context item of the thread; whether there was one.
pub async fn delete(db: &PgPool, thread_id: &str, id: &str) -> ApiResult<bool> {
    let done = sqlx::query("DELETE FROM thread_items WHERE thread_id = $1 AND id = $2")
        .bind(thread_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The container the newest code call kept on the thread ran in.
pub async fn container_of_thread(db: &PgPool, thread_id: &str) -> ApiResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT data->>'container_id' FROM thread_items
         WHERE thread_id = $1 AND data->>'type' = 'code_interpreter_call'
           AND data->>'container_id' IS NOT NULL
         ORDER BY item_seq DESC LIMIT 1",
    )
    .bind(thread_id)
    .fetch_optional(db)
    .await?)
}
