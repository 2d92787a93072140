//! WebSocket mode (`client.responses.connect()`): `GET /v1/responses` upgraded to a socket
//! that takes `response.create` events (a create body with `"type": "response.create"`, as JSON
//! text frames) and answers each with the same `response.*` events a streamed create sends,
//! one response after another. A bad message gets an `error` event and the socket stays open.
//! `store: false` responses made on a socket can be continued on it (they are invisible
//! elsewhere, as over HTTP) and live as long as it: deleted when it closes.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::request::CreateResponse;
use super::{create, is_last, translated, AppState};
use crate::api::json::from_value;
use crate::auth::Project;
use crate::domain::responses;
use crate::error::{ApiError, ApiResult};

pub async fn connect(
    State(state): State<AppState>,
    project: Project,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|_| {
        ApiError::invalid(
            "GET /v1/responses opens a WebSocket (responses.connect()): send a WebSocket upgrade request, or POST to create a response.",
        )
    })?;
    let limit = state.config.max_body_bytes;
    Ok(upgrade
        .max_message_size(limit)
        .on_upgrade(move |socket| serve(state, project, socket)))
}

async fn serve(state: AppState, project: Project, mut socket: WebSocket) {
    let mut unstored = vec![];
    while let Some(Ok(message)) = socket.recv().await {
        let text = match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(_) => {
                let e = ApiError::invalid_code(
                    "type",
                    "invalid_message",
                    "This socket takes JSON text frames: send each event as a text message.",
                );
                if send(&mut socket, &error_event(&e)).await.is_err() {
                    break;
                }
                continue;
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if respond(&state, &project, &mut socket, &text, &mut unstored)
            .await
            .is_err()
        {
            break;
        }
    }
    for id in unstored {
        if let Err(e) = responses::delete(&state.db, &project, &id).await {
            tracing::warn!(response_id = %id, error = %e, "could not drop a socket's store:false response");
        }
    }
}

/// One message: a response's events until its last, or an `error` event. `Err` only when
/// the socket is gone.
async fn respond(
    state: &AppState,
    project: &Project,
    socket: &mut WebSocket,
    text: &str,
    unstored: &mut Vec<String>,
) -> Result<(), axum::Error> {
    let mut req = match request_of(text) {
        Ok(req) => req,
        Err(e) => return send(socket, &error_event(&e)).await,
    };
    req.held = unstored.clone();
    let started = match start(state, project, &mut req).await {
        Ok(started) => started,
        Err(e) => return send(socket, &error_event(&e)).await,
    };
    if req.store == Some(false) {
        unstored.push(started.stored.id.clone());
    }
    let Some(rx) = state.executor.dispatch(project.clone(), started.handover) else {
        let e = ApiError::Internal(anyhow::anyhow!("a socket's response was not followed"));
        return send(socket, &error_event(&e)).await;
    };
    let mut events = translated(state.clone(), started.stored, rx, false);
    while let Some(event) = events.recv().await {
        let last = is_last(&event);
        send(socket, &event).await?;
        if last {
            break;
        }
    }
    Ok(())
}

async fn start(
    state: &AppState,
    project: &Project,
    req: &mut CreateResponse,
) -> ApiResult<create::Started> {
    create::compact(state, project, req).await?;
    create::start(state, project, req, true).await
}

/// A `response.create` event as the create request it carries, always streamed.
fn request_of(text: &str) -> ApiResult<CreateResponse> {
    let value: Value = serde_json::from_str(text).map_err(|e| ApiError::InvalidRequest {
        message: format!("The message is not valid JSON ({e}): send each event as a JSON object."),
        param: None,
        code: Some("invalid_json"),
    })?;
    let Value::Object(mut body) = value else {
        return Err(ApiError::InvalidRequest {
            message:
                "The message is not a JSON object: send each event as a JSON object with a 'type'."
                    .into(),
            param: None,
            code: Some("invalid_json"),
        });
    };
    match body.remove("type").as_ref().map(|t| t.as_str()) {
        Some(Some("response.create")) => {}
        Some(Some("response.steer")) => {
            return Err(ApiError::invalid_code(
                "type",
                "unsupported_event",
                "'response.steer' is not supported by this server: send a 'response.create' with previous_response_id and the new input once the response is done.",
            ))
        }
        Some(Some(other)) => {
            return Err(ApiError::invalid_code(
                "type",
                "invalid_value",
                format!("Unknown event type '{other}': this socket takes 'response.create' events."),
            ))
        }
        Some(None) => {
            return Err(ApiError::invalid_code(
                "type",
                "invalid_type",
                "Invalid type for 'type': expected a string.",
            ))
        }
        None => {
            return Err(ApiError::invalid_code(
                "type",
                "missing_required_parameter",
                "Missing required parameter: 'type'.",
            ))
        }
    }
    if body.get("background").is_some_and(|b| b == true) {
        return Err(ApiError::invalid_param(
            "background",
            "Background responses are not supported over WebSocket.",
        ));
    }
    if body.get("stream_id").is_some_and(|s| !s.is_null()) {
        return Err(ApiError::invalid_param(
            "stream_id",
            "This server runs one response at a time on a socket: 'stream_id' lanes are not supported.",
        ));
    }
    body.remove("stream_id");
    // Streaming is implicit on a socket.
    body.insert("stream".into(), json!(true));
    from_value(Value::Object(body))
}

/// An `error` event: the API's error object and its HTTP status.
fn error_event(e: &ApiError) -> Value {
    if let ApiError::Internal(cause) = e {
        tracing::error!(error = ?cause, "a socket's response.create failed");
    }
    json!({"type": "error", "status": e.status().as_u16(), "error": e.body()["error"]})
}

async fn send(socket: &mut WebSocket, event: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(event.to_string().into())).await
}
