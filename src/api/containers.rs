//! `/v1/containers`: create, list (with the `name` filter), retrieve, delete. The work is in
//! [`crate::domain::containers`]; a container's files are in [`super::container_files`].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::json::ApiJson;
use super::AppState;
use crate::auth::Project;
use crate::domain::containers::CreateContainer;
use crate::error::ApiResult;
use crate::objects::{Container, Deleted};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/containers", get(list).post(create))
        .route("/containers/{container_id}", get(retrieve).delete(remove))
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    ApiJson(req): ApiJson<CreateContainer>,
) -> ApiResult<Json<Container>> {
    Ok(Json(state.containers.create(&project, req).await?))
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<Container>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let name = query.get("name").map(String::as_str);
    Ok(Json(state.containers.list(&project, &params, name).await?))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Container>> {
    Ok(Json(state.containers.retrieve(&project, &id).await?))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    state.containers.delete(&project, &id).await?;
    Ok(Json(Deleted::new(id, "container.deleted")))
}
