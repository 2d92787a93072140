//! `/v1/threads`: create (with initial messages), list (an extension: OpenAI's public API has no
//! thread list), retrieve, modify, delete.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::json::{nullable, param_path, ApiJson};
use super::messages::NewMessage;
use super::tool_resources;
use super::{cached, AppState};
use crate::auth::Project;
use crate::domain::{messages, threads};
use crate::error::ApiResult;
use crate::ids;
use crate::objects::tools::ToolResources;
use crate::objects::{Deleted, Thread};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::store::{self, Kind};
use crate::validate::{self, Metadata};
use axum::response::Response;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads", get(list).post(create))
        .route(
            "/threads/{thread_id}",
            get(retrieve).post(modify).delete(remove),
        )
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NewThread {
    #[serde(default)]
    pub messages: Option<Vec<NewMessage>>,
    #[serde(default)]
    pub tool_resources: Option<ToolResources>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl NewThread {
    /// Validates and stores the thread and its messages in one transaction.
    /// `param` prefixes field names (`thread` inside create-thread-and-run).
    pub async fn insert(
        self,
        state: &AppState,
        project: &Project,
        param: &str,
    ) -> ApiResult<Thread> {
        let p = |field: &str| param_path(param, field);
        let mut thread = Thread {
            id: ids::new_id(ids::THREAD),
            object: "thread".into(),
            created_at: ids::now(),
            tool_resources: self.tool_resources.unwrap_or_default(),
            metadata: self.metadata.unwrap_or_default(),
        };
        validate::metadata(&p("metadata"), &thread.metadata)?;
        let checked = tool_resources::check(
            &state.db,
            project,
            &p("tool_resources"),
            &thread.tool_resources,
        )
        .await?;
        let new_messages = self.messages.unwrap_or_default();
        let mut built = Vec::with_capacity(new_messages.len());
        for (i, m) in new_messages.into_iter().enumerate() {
            built.push(
                m.build(
                    &state.db,
                    project,
                    &p(&format!("messages[{i}]")),
                    &thread.id,
                )
                .await?,
            );
        }
        tool_resources::settle(state, project, checked, &mut thread.tool_resources).await?;

        let mut tx = state.db.begin().await?;
        threads::insert_listed(&mut *tx, project, &thread).await?;
        for m in &built {
            messages::insert(&mut *tx, project, m).await?;
        }
        tx.commit().await?;
        Ok(thread)
    }
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    ApiJson(req): ApiJson<NewThread>,
) -> ApiResult<Json<Thread>> {
    Ok(Json(req.insert(&state, &project, "").await?))
}

/// The project's threads made through this API, newest first by default; the backing threads
/// of response chains and conversations are left out.
async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<Thread>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let listed = [("origin", threads::LISTED)];
    Ok(Json(
        store::list(&state.db, Kind::Thread, &project, &listed, &params).await?,
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let load = store::get::<Thread>(&state.db, Kind::Thread, &project, &id, &[]);
    cached::serve(&state.cache, &id, cached::key(&project, "thread"), load).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyThread {
    #[serde(default, deserialize_with = "nullable")]
    tool_resources: Option<Option<ToolResources>>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

async fn modify(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ModifyThread>,
) -> ApiResult<Json<Thread>> {
    let mut tx = state.db.begin().await?;
    let mut thread: Thread =
        store::get_for_update(&mut *tx, Kind::Thread, &project, &id, &[]).await?;
    let mut checked = None;
    if let Some(resources) = req.tool_resources {
        thread.tool_resources = resources.unwrap_or_default();
        checked = Some(
            tool_resources::check(
                &state.db,
                &project,
                "tool_resources",
                &thread.tool_resources,
            )
            .await?,
        );
    }
    if let Some(metadata) = req.metadata {
        validate::metadata("metadata", &metadata)?;
        thread.metadata = metadata;
    }
    if let Some(checked) = checked {
        tool_resources::settle(&state, &project, checked, &mut thread.tool_resources).await?;
    }
    store::put(&mut *tx, Kind::Thread, &id, &thread).await?;
    tx.commit().await?;
    state.cache.invalidate(&id);
    Ok(Json(thread))
}

/// Deleting a thread removes its messages, runs and steps with it (foreign keys cascade); its
/// sandbox session, placement and checkpoint go with `forget_session` (no foreign key: a
/// session may be a container's).
async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    store::delete(&state.db, Kind::Thread, &project, &id, &[]).await?;
    state.cache.invalidate(&id);
    state.executor.forget_session(&id).await;
    Ok(Json(Deleted::new(id, "thread.deleted")))
}
