//! E2B's pause and snapshots on the control plane (see `domain::containers::pause` and
//! `snapshots`): `POST /sandboxes/{id}/pause` → 204 (409 when paused already),
//! `POST /sandboxes/{id}/snapshots` → 201 `{snapshotID, names}`, `GET /snapshots`, and
//! `DELETE /templates/{id}` for a snapshot (the only templates that can be deleted here).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Body, E2bError, E2bResult, KeyProject};
use crate::api::AppState;
use crate::domain::containers::pause::Paused;
use crate::domain::containers::snapshots::Snapshot;

/// `{"memory": bool}`: interpreter state is kept as far as checkpoints keep it either way.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PauseRequest {
    #[allow(dead_code)]
    memory: Option<bool>,
}

pub(super) async fn pause(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
    Body(_req): Body<PauseRequest>,
) -> E2bResult<StatusCode> {
    match state.containers.pause_sandbox(&project, &id).await? {
        Paused::Now => Ok(StatusCode::NO_CONTENT),
        Paused::Already => Err(E2bError::new(
            StatusCode::CONFLICT,
            format!("sandbox \"{id}\" is already paused"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SnapshotRequest {
    name: Option<String>,
}

fn snapshot_info(snapshot: &Snapshot) -> Value {
    json!({"snapshotID": snapshot.id, "names": snapshot.names()})
}

pub(super) async fn create_snapshot(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
    Body(req): Body<SnapshotRequest>,
) -> E2bResult<Response> {
    if let Some(name) = &req.name {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        if !ok {
            return Err(E2bError::bad_request(
                "name must be 1-128 characters of letters, digits and - _ . : /",
            ));
        }
    }
    let snapshot = state
        .containers
        .create_snapshot(&project, &id, req.name)
        .await?;
    Ok((StatusCode::CREATED, Json(snapshot_info(&snapshot))).into_response())
}

/// `GET /snapshots?sandboxID=&limit=&nextToken=`, the next page's token in `x-next-token`.
pub(super) async fn list_snapshots(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Query(query): Query<HashMap<String, String>>,
) -> E2bResult<Response> {
    let limit = match query.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| E2bError::bad_request("limit must be from 1 to 1000"))?,
    };
    let page = state
        .containers
        .list_snapshots(
            &project,
            query.get("sandboxID").map(String::as_str),
            limit,
            query.get("nextToken").map(String::as_str),
        )
        .await?;
    let items: Vec<Value> = page.snapshots.iter().map(snapshot_info).collect();
    let mut response = Json(items).into_response();
    if let Some(token) = page.next_token {
        if let Ok(value) = HeaderValue::from_str(&token) {
            response.headers_mut().insert("x-next-token", value);
        }
    }
    Ok(response)
}

pub(super) async fn delete_template(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    state.containers.delete_snapshot(&project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
