//! `GET /v1/models` and `GET /v1/models/{model}`: the models the configured upstreams serve,
//! for clients filling a model picker.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::executor::upstreams::ServedModel;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/models", get(list))
        .route("/models/{model}", get(retrieve))
}

async fn list(State(state): State<AppState>, _: Project) -> Json<Value> {
    let data: Vec<Value> = state.upstreams.models().await.iter().map(shape).collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn retrieve(
    State(state): State<AppState>,
    _: Project,
    Path(model): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .upstreams
        .models()
        .await
        .iter()
        .find(|m| m.id == model)
        .map(|m| Json(shape(m)))
        .ok_or_else(|| ApiError::NotFound(format!("The model '{model}' does not exist")))
}

fn shape(model: &ServedModel) -> Value {
    json!({
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
    })
}
