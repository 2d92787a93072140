//! Thread rows: made by the threads API, and as the backing thread of a response chain.

use sqlx::types::Json as SqlJson;
use sqlx::PgExecutor;

use crate::auth::Project;
use crate::error::ApiResult;
use crate::ids;
use crate::objects::tools::ToolResources;
use crate::objects::Thread;

pub fn new_thread(tool_resources: ToolResources) -> Thread {
    Thread {
        id: ids::new_id(ids::THREAD),
        object: "thread".into(),
        created_at: ids::now(),
        tool_resources,
        metadata: Default::default(),
    }
}

pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    thread: &Thread,
) -> ApiResult<()> {
    sqlx::query("INSERT INTO threads (id, project, created_at, data) VALUES ($1, $2, $3, $4)")
        .bind(&thread.id)
        .bind(&project.0)
        .bind(thread.created_at)
        .bind(SqlJson(thread))
        .execute(db)
        .await?;
    Ok(())
}
