//! Data-plane calls across replicas. An E2B sandbox's session lives on one replica (its
//! placement in Postgres); a data-plane call arriving at another replica of the deployment is
//! proxied, as it is, to the one holding the session, at the address that replica advertises
//! (`ASSISTD_ADVERTISE_URL`). Request and response bodies are streamed through, so `run_code`'s
//! NDJSON and Connect's `process.Process/Start` stream as they do on the holder. (Moving the
//! session instead, as a thread's runs may, would cost a checkpoint and restore per call and
//! lose running commands and the JavaScript context.)
//!
//! A call no live replica holds is served here, and this replica takes the session. A
//! forwarded call carries `X-Assistd-Forwarded-By` (the forwarding replica's worker id) and,
//! when that names a live sibling, is served where it arrives, so a call is forwarded at most
//! once.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::data::address;
use super::E2bError;
use crate::api::AppState;
use crate::executor::holder::Holder;

const FORWARDED_BY: HeaderName = HeaderName::from_static("x-assistd-forwarded-by");
/// Headers that belong to one connection, not to the request (RFC 9110, 7.6.1), and `host`.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Middleware on the E2B router: data-plane calls for a sandbox held by a sibling go there.
pub async fn to_holder(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/sandbox/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // A call without a valid address is answered by the handler's own error.
    let Ok((id, port)) = address(&parts) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    // Honoured only from a live sibling: a client cannot make a replica serve a sandbox that
    // another one holds (worker ids are random and never shown to clients).
    let forwarded = match super::header(&parts.headers, FORWARDED_BY.as_str()) {
        Some(worker) => match state.executor.is_sibling(worker).await {
            Ok(sibling) => sibling,
            Err(e) => return E2bError::from(e).into_response(),
        },
        None => false,
    };
    let holder = match state.executor.hold(&id).await {
        Ok(holder) => holder,
        Err(e) => return E2bError::from(e).into_response(),
    };
    match holder {
        Some(Holder {
            worker,
            address: Some(url),
        }) if !forwarded => {
            let me = state.executor.worker_id().to_string();
            forward(
                &me,
                &worker,
                &url,
                &id,
                port,
                Request::from_parts(parts, body),
            )
            .await
        }
        Some(Holder { worker, .. }) => {
            // Forwarded here by a replica that saw this one as the holder, or held by one
            // that advertises no address (an older version): served here, as before.
            tracing::debug!(
                sandbox = id,
                holder = worker,
                forwarded,
                "serving a held sandbox here"
            );
            next.run(Request::from_parts(parts, body)).await
        }
        None => next.run(Request::from_parts(parts, body)).await,
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .expect("building the HTTP client for forwarding E2B calls")
    })
}

/// Sends the call to the holder's `base` URL and streams its answer back.
async fn forward(
    me: &str,
    worker: &str,
    base: &str,
    id: &str,
    port: u16,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{base}/e2b{path}");
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    // The Host form of addressing does not survive the hop: name the sandbox in headers.
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert("e2b-sandbox-id", value);
    }
    headers.insert("e2b-sandbox-port", HeaderValue::from(port));
    if let Ok(value) = HeaderValue::from_str(me) {
        headers.insert(FORWARDED_BY, value);
    }
    let sent = client()
        .request(parts.method, &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(sandbox = id, holder = worker, url, error = %e, "forwarding an E2B call");
            return E2bError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "sandbox {id} lives on another replica (at {base}), which could not be \
                     reached; its ASSISTD_ADVERTISE_URL must be reachable from this replica"
                ),
            )
            .into_response();
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    if let Some(out) = response.headers_mut() {
        for (name, value) in answer.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out.append(name.clone(), value.clone());
            }
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|e| {
            E2bError::new(
                StatusCode::BAD_GATEWAY,
                format!("forwarding the answer: {e}"),
            )
            .into_response()
        })
}
