//! Thread messages: the rows both the messages API and the executor write.

use sqlx::types::Json as SqlJson;
use sqlx::PgExecutor;

use crate::auth::Project;
use crate::error::ApiResult;
use crate::ids;
use crate::objects::message::{Attachment, Content, Text};
use crate::objects::Message;
use crate::validate::Metadata;

pub fn text(value: String) -> Content {
    Content::Text {
        text: Text {
            value,
            annotations: vec![],
        },
    }
}

/// A message a client gave (through the messages API, a thread's opening messages, or a
/// response's input), complete as it is.
pub fn given(
    thread_id: &str,
    role: String,
    content: Vec<Content>,
    attachments: Vec<Attachment>,
    metadata: Metadata,
) -> Message {
    Message {
        id: ids::new_id(ids::MESSAGE),
        object: "thread.message".into(),
        created_at: ids::now(),
        thread_id: thread_id.to_string(),
        status: "completed".into(),
        incomplete_details: None,
        completed_at: None,
        incomplete_at: None,
        role,
        content,
        assistant_id: None,
        run_id: None,
        attachments,
        metadata,
    }
}

pub async fn insert<'e>(db: impl PgExecutor<'e>, project: &Project, m: &Message) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO messages (id, project, thread_id, run_id, created_at, data) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&m.id)
    .bind(&project.0)
    .bind(&m.thread_id)
    .bind(&m.run_id)
    .bind(m.created_at)
    .bind(SqlJson(m))
    .execute(db)
    .await?;
    Ok(())
}

/// The thread's run that has not finished yet, if any.
pub async fn active_run<'e>(db: impl PgExecutor<'e>, thread_id: &str) -> ApiResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM runs WHERE thread_id = $1 AND status IN ('queued', 'in_progress', 'requires_action', 'cancelling') ORDER BY seq DESC LIMIT 1",
    )
    .bind(thread_id)
    .fetch_optional(db)
    .await?)
}
