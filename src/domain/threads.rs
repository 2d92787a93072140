//! Thread rows: made by the threads API, and as the backing thread of a response chain.

use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, PgPool};

use super::responses::context::Placed;
use crate::auth::Project;
use crate::error::ApiResult;
use crate::ids;
use crate::objects::tools::ToolResources;
use crate::objects::{Message, Thread};
use crate::store::{self, Kind};

pub fn new_thread(tool_resources: ToolResources) -> Thread {
    Thread {
        id: ids::new_id(ids::THREAD),
        object: "thread".into(),
        created_at: ids::now(),
        tool_resources,
        metadata: Default::default(),
    }
}

/// `origin` of the threads `GET /v1/threads` lists: those made through the threads API.
pub const LISTED: &str = "threads";

/// Inserts a backing thread (of a response chain or conversation), which the thread list leaves out.
pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    thread: &Thread,
) -> ApiResult<()> {
    insert_as(db, project, thread, "backing").await
}

/// Inserts a thread made through the threads API, which the thread list shows.
pub async fn insert_listed<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    thread: &Thread,
) -> ApiResult<()> {
    insert_as(db, project, thread, LISTED).await
}

async fn insert_as<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    thread: &Thread,
    origin: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO threads (id, project, created_at, data, origin) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&thread.id)
    .bind(&project.0)
    .bind(thread.created_at)
    .bind(SqlJson(thread))
    .bind(origin)
    .execute(db)
    .await?;
    Ok(())
}

/// A new thread with the tool resources of `thread_id` and copies of its messages and context
/// items up to `through` (an `item_seq`), to insert with it: a response chain branching off an
/// earlier response goes on there, seeing the context as it stood then.
pub async fn fork(
    db: &PgPool,
    project: &Project,
    thread_id: &str,
    through: i64,
) -> ApiResult<(Thread, Vec<Message>, Vec<Placed>)> {
    let from: Thread = store::get(db, Kind::Thread, project, thread_id, &[]).await?;
    let thread = new_thread(from.tool_resources);
    let messages: Vec<SqlJson<Message>> = sqlx::query_scalar(
        "SELECT data FROM messages WHERE thread_id = $1 AND item_seq <= $2 ORDER BY item_seq",
    )
    .bind(thread_id)
    .bind(through)
    .fetch_all(db)
    .await?;
    let mut renamed = std::collections::HashMap::new();
    let copies = messages
        .into_iter()
        .map(|m| {
            let id = ids::new_id(ids::MESSAGE);
            renamed.insert(m.0.id.clone(), id.clone());
            Message {
                id,
                thread_id: thread.id.clone(),
                ..m.0
            }
        })
        .collect();
    let items: Vec<(Option<String>, SqlJson<serde_json::Value>)> = sqlx::query_as(
        "SELECT after_message, data FROM thread_items
         WHERE thread_id = $1 AND item_seq <= $2 ORDER BY item_seq",
    )
    .bind(thread_id)
    .bind(through)
    .fetch_all(db)
    .await?;
    let items = items
        .into_iter()
        .map(|(after, item)| Placed {
            after: after.and_then(|a| renamed.get(&a).cloned()),
            item: item.0,
        })
        .collect();
    Ok((thread, copies, items))
}
