//! Run steps: list and retrieve.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::auth::Project;
use crate::error::ApiResult;
use crate::objects::RunStep;
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::store::{self, Kind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads/{thread_id}/runs/{run_id}/steps", get(list))
        .route(
            "/threads/{thread_id}/runs/{run_id}/steps/{step_id}",
            get(retrieve),
        )
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, run_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<RunStep>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    super::runs::load_run(&state, &project, &thread_id, &run_id).await?;
    Ok(Json(
        store::list(
            &state.db,
            Kind::Step,
            &project,
            &[("run_id", &run_id)],
            &params,
        )
        .await?,
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, run_id, step_id)): Path<(String, String, String)>,
) -> ApiResult<Json<RunStep>> {
    super::runs::load_run(&state, &project, &thread_id, &run_id).await?;
    Ok(Json(
        store::get(
            &state.db,
            Kind::Step,
            &project,
            &step_id,
            &[("run_id", &run_id)],
        )
        .await?,
    ))
}
