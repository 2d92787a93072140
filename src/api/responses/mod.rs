//! `/v1/responses`: create (plain, streamed, background), retrieve, delete, cancel and
//! input items. A response is executed by the same run loop as an Assistants run (see
//! `create`); its events are translated in `stream`, its object built in `domain::responses`.

mod context;
mod create;
mod request;
mod shell;
mod socket;
mod stream;

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::json::ApiJson;
use super::AppState;
use crate::auth::Project;
use crate::domain::responses::{self, Stored};
use crate::error::{ApiError, ApiResult};
use crate::executor::events::RunEvent;
use crate::pagination::{page_of, ListParams, OBJECT_LISTS};
use request::CreateResponse;
use stream::{Ending, Translated, Translator};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/responses", post(create).get(socket::connect))
        .route("/responses/input_tokens", post(context::input_tokens))
        .route("/responses/compact", post(context::compact))
        .route("/responses/{response_id}", get(retrieve).delete(remove))
        .route("/responses/{response_id}/cancel", post(cancel))
        .route("/responses/{response_id}/input_items", get(input_items))
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    ApiJson(mut req): ApiJson<CreateResponse>,
) -> ApiResult<Response> {
    create::compact(&state, &project, &mut req).await?;
    let stream = req.stream.unwrap_or(false);
    let background = req.background.unwrap_or(false);
    // A plain response is answered when it ends, so it follows its run's events too.
    let follow = stream || !background;
    let started = create::start(&state, &project, &req, follow).await?;
    let stored = started.stored;
    let events = state.executor.dispatch(project.clone(), started.handover);
    match (events, stream) {
        (Some(rx), true) => Ok(sse(state, stored, rx, background)),
        (Some(mut rx), false) => {
            // The same translation as a stream's, for its final object.
            let mut translator = Translator::new(&stored, state.db.clone(), state.blobs.clone());
            let snapshot = responses::snapshot(&stored, "in_progress");
            while let Some(ev) = rx.recv().await {
                if ev.name == "done" {
                    break;
                }
                if let Translated::Ended(_) = translator.translate(&ev, &snapshot).await {
                    break;
                }
            }
            let object = final_object(&state, &stored, &mut translator).await?;
            if object["error"]["code"] == "context_length_exceeded" {
                // As OpenAI answers a request whose input does not fit the model.
                return Err(ApiError::invalid_code(
                    "input",
                    "context_length_exceeded",
                    "Your input exceeds the context window of this model. Please adjust your input and try again.",
                ));
            }
            Ok(Json(object).into_response())
        }
        (None, _) => Ok(Json(responses::snapshot(&stored, "queued")).into_response()),
    }
}

/// The response's events as SSE: translated run events, then the final object's event.
/// The object once the translated run stopped: from what the stream carried, else the record.
async fn final_object(
    state: &AppState,
    stored: &Stored,
    translator: &mut Translator,
) -> ApiResult<Value> {
    match translator.ending() {
        Ending::Run(run, items) => Ok(responses::assemble(stored, &run, items)),
        Ending::Record => responses::object(&state.db, &state.blobs, stored).await,
    }
}

/// A background response's events are also kept (and translated to the end even when the
/// client leaves), for a later `GET ...?stream=true&starting_after=N`.
fn sse(
    state: AppState,
    stored: Stored,
    rx: mpsc::UnboundedReceiver<RunEvent>,
    keep: bool,
) -> Response {
    let out = translated(state, stored, rx, keep);
    let stream = UnboundedReceiverStream::new(out).map_events();
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The response's `response.*` events, translated from its run's, ending with the final
/// object's event (or `error`): what a stream (SSE or WebSocket) sends.
fn translated(
    state: AppState,
    stored: Stored,
    mut rx: mpsc::UnboundedReceiver<RunEvent>,
    keep: bool,
) -> mpsc::UnboundedReceiver<Value> {
    let (tx, out) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let mut translator = Translator::new(&stored, state.db.clone(), state.blobs.clone());
        let snapshot = responses::snapshot(&stored, "in_progress");
        let db = state.db.clone();
        let id = stored.id.clone();
        let send = |events: Vec<Value>| {
            let (db, id, tx) = (db.clone(), id.clone(), tx.clone());
            async move {
                if keep {
                    if let Err(e) = responses::record_events(&db, &id, &events).await {
                        tracing::warn!(error = %e, "could not keep a background stream's events");
                    }
                }
                let delivered = events.into_iter().all(|e| tx.send(e).is_ok());
                delivered || keep
            }
        };
        while let Some(ev) = rx.recv().await {
            let ended = ev.name == "done";
            let translated = if ended {
                Translated::Ended(translator.start(&snapshot))
            } else {
                translator.translate(&ev, &snapshot).await
            };
            match translated {
                Translated::Events(events) => {
                    if !send(events).await {
                        return;
                    }
                }
                Translated::Ended(events) => {
                    send(events).await;
                    let last = match final_object(&state, &stored, &mut translator).await {
                        Ok(object) => {
                            let kind = match object["status"].as_str() {
                                Some("completed") => "response.completed",
                                Some("incomplete") => "response.incomplete",
                                _ => "response.failed",
                            };
                            translator.event(kind, json!({"response": object}))
                        }
                        Err(e) => {
                            let body = e.body();
                            translator.event(
                                "error",
                                json!({"code": body["error"]["code"], "message": body["error"]["message"],
                                       "param": null, "error": body["error"]}),
                            )
                        }
                    };
                    send(vec![last]).await;
                    return;
                }
            }
        }
    });
    out
}

trait MapEvents {
    fn map_events(self) -> futures::stream::BoxStream<'static, Result<Event, Infallible>>;
}

impl MapEvents for UnboundedReceiverStream<Value> {
    fn map_events(self) -> futures::stream::BoxStream<'static, Result<Event, Infallible>> {
        use futures::StreamExt;
        self.map(|e| {
            let kind = e["type"].as_str().unwrap_or("message").to_string();
            Ok(Event::default().event(kind).data(e.to_string()))
        })
        .boxed()
    }
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let mut stored = responses::load(&state.db, &project, &id).await?;
    if query.get("stream").map(String::as_str) == Some("true") {
        return replay(state, stored, &query);
    }
    // `include` here adds to what the response was created with.
    let include = super::json::includes(&pairs);
    request::check_includes(&include)?;
    for inc in include {
        if !stored.include(&inc) {
            if let Some(list) = stored.request["include"].as_array_mut() {
                list.push(json!(inc));
            } else {
                stored.request["include"] = json!([inc]);
            }
        }
    }
    Ok(Json(responses::object(&state.db, &state.blobs, &stored).await?).into_response())
}

/// A background stream again, from after `starting_after`, following it to its end.
fn replay(state: AppState, stored: Stored, query: &HashMap<String, String>) -> ApiResult<Response> {
    if stored.request["background"] != true || stored.request["stream"] != true {
        return Err(ApiError::invalid_param(
            "stream",
            "Only a response created with background=true and stream=true can be streamed again.",
        ));
    }
    let mut after = match query.get("starting_after").filter(|v| !v.is_empty()) {
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::invalid_code(
                "starting_after",
                "invalid_type",
                format!("Invalid 'starting_after': expected an integer, but got '{v}' instead."),
            )
        })?),
        None => None,
    };
    let (tx, out) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        for _ in 0..REPLAY_POLLS {
            let Ok(events) = responses::events_after(&state.db, &stored.id, after).await else {
                return;
            };
            for e in events {
                after = e["sequence_number"].as_i64();
                let last = is_last(&e);
                if tx.send(e).is_err() || last {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let stream = UnboundedReceiverStream::new(out).map_events();
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A replay follows a stream for at most this many 100 ms polls (an hour).
const REPLAY_POLLS: usize = 36_000;

fn is_last(event: &Value) -> bool {
    matches!(
        event["type"].as_str(),
        Some("response.completed" | "response.incomplete" | "response.failed" | "error")
    )
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    responses::delete(&state.db, &project, &id).await?;
    Ok(Json(
        json!({"id": id, "object": "response", "deleted": true}),
    ))
}

/// Only background responses can be cancelled; cancelling a finished one returns it as is.
async fn cancel(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let stored = responses::load(&state.db, &project, &id).await?;
    if stored.request["background"] != true {
        return Err(ApiError::invalid(
            "Only responses created with background=true can be cancelled.",
        ));
    }
    let object = responses::object(&state.db, &state.blobs, &stored).await?;
    if matches!(object["status"].as_str(), Some("queued" | "in_progress"))
        && stored.frozen.is_none()
    {
        state
            .executor
            .request_cancel(&project, &stored.thread_id, &stored.run_id)
            .await?;
    }
    Ok(Json(
        responses::object(&state.db, &state.blobs, &stored).await?,
    ))
}

/// The response's input items, newest first by default, paged by `after`.
async fn input_items(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let stored = responses::load(&state.db, &project, &id).await?;
    Ok(Json(page_of(stored.input, &params)))
}
