//! E2B's sandbox protocol, a third surface beside OpenAI's: apps written for E2B's SDKs run
//! unchanged with `E2B_API_URL=http://HOST:PORT/e2b`, `E2B_SANDBOX_URL=http://HOST:PORT/e2b/sandbox`
//! and `E2B_API_KEY` set to one of the server's keys.
//!
//! - The control plane (`/e2b/sandboxes`, `/e2b/v2/sandboxes`) authenticates with `X-API-KEY`
//!   and answers errors in E2B's shape, `{"code": <status>, "message"}`.
//! - The data plane (`/e2b/sandbox/...`, see [`data`]) is routed by the `E2b-Sandbox-Id` and
//!   `E2b-Sandbox-Port` headers the SDKs send on every sandbox call (or by a
//!   `{port}-{id}.{domain}` Host), and authorised by the sandbox's own token. A call for a
//!   sandbox whose session another replica holds is proxied there (see [`forward`]).
//!
//! An E2B sandbox is a container (see `domain::containers::sandboxes`): the same id, session,
//! checkpoints, expiry (E2B's `timeout`), memory limit and project isolation; it is listed in
//! `/v1/containers` too.

mod connect;
mod data;
mod forward;
mod network;
mod pause;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::AppState;
use crate::auth::{ApiKeys, Project};
use crate::domain::containers::pause::Connected;
use crate::domain::containers::sandboxes::{NewSandbox, Sandbox};
use crate::domain::containers::MemoryLimit;
use crate::error::ApiError;

/// The envd version reported: the SDKs switch features on by it (0.3.0 allows `stdin:
/// false`, 0.4.0 drops the default-user Basic auth, 0.5.7 octet-stream uploads; 0.6.2 would
/// send file metadata, which is not served).
pub const ENVD_VERSION: &str = "0.5.7";
/// E2B's default sandbox timeout, in seconds.
const DEFAULT_TIMEOUT: i64 = 300;
/// The longest timeout accepted: a day, as E2B's.
const MAX_TIMEOUT: i64 = 24 * 60 * 60;

pub fn router(state: AppState, keys: ApiKeys) -> Router<AppState> {
    Router::new()
        .route("/sandboxes", get(list_v1).post(create))
        .route("/v2/sandboxes", get(list_v2).post(create))
        .route("/sandboxes/{sandbox_id}", get(retrieve).delete(kill))
        .route("/sandboxes/{sandbox_id}/connect", post(connect_to))
        .route("/v2/sandboxes/{sandbox_id}/connect", post(connect_to))
        .route("/sandboxes/{sandbox_id}/timeout", post(set_timeout))
        .route("/sandboxes/{sandbox_id}/pause", post(pause::pause))
        .route(
            "/sandboxes/{sandbox_id}/snapshots",
            post(pause::create_snapshot),
        )
        .route("/snapshots", get(pause::list_snapshots))
        .route("/templates/{template_id}", delete(pause::delete_template))
        .route_layer(middleware::from_fn_with_state(keys, require_key))
        .route("/sandbox/health", get(data::health))
        .route(
            "/sandbox/files",
            get(data::read_file).post(data::write_file),
        )
        .route("/sandbox/execute", post(data::execute))
        .route(
            "/sandbox/contexts",
            get(data::list_contexts).post(data::create_context),
        )
        .route(
            "/sandbox/contexts/{context_id}",
            delete(data::delete_context),
        )
        .route(
            "/sandbox/contexts/{context_id}/restart",
            post(data::restart_context),
        )
        .route(
            "/sandbox/filesystem.Filesystem/{method}",
            post(connect::filesystem),
        )
        .route("/sandbox/process.Process/{method}", post(connect::process))
        .route_layer(middleware::from_fn_with_state(state, forward::to_holder))
        .fallback(unknown_route)
}

/// An error in E2B's shape: `{"code": <HTTP status>, "message"}`. The SDKs read `code` (py
/// `e2b` raises `KeyError` without it; JS tells not-found by `code == 404`).
#[derive(Debug)]
pub struct E2bError {
    status: StatusCode,
    message: String,
}

impl E2bError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        E2bError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for E2bError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        if let ApiError::Internal(cause) = &e {
            tracing::error!(error = ?cause, "internal error");
        }
        let message = match &e {
            ApiError::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        };
        E2bError { status, message }
    }
}

impl From<sqlx::Error> for E2bError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.status.as_u16(), "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

type E2bResult<T> = Result<T, E2bError>;

/// Middleware: the control plane's `X-API-KEY` (any of the server's keys; keys shaped like
/// E2B's, `e2b_` and hex, are ordinary keys) becomes the request's project.
async fn require_key(State(keys): State<ApiKeys>, mut req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.trim().to_string());
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return E2bError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send one of the server's keys in the X-API-KEY header (E2B_API_KEY)",
        )
        .into_response();
    };
    match keys.project_of(&key) {
        Some(project) => {
            req.extensions_mut().insert(project);
            next.run(req).await
        }
        None => E2bError::new(StatusCode::UNAUTHORIZED, "invalid API key").into_response(),
    }
}

/// The project a control-plane request acts for (set by [`require_key`]).
struct KeyProject(Project);

impl<S: Send + Sync> FromRequestParts<S> for KeyProject {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Project>()
            .cloned()
            .map(KeyProject)
            .ok_or_else(|| E2bError::new(StatusCode::UNAUTHORIZED, "missing API key"))
    }
}

/// A JSON body in E2B's error shape when it is malformed; an empty body is `{}`.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = E2bError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| E2bError::bad_request(format!("unreadable body: {e}")))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| E2bError::bad_request(format!("invalid request body: {e}")))
    }
}

/// `POST /sandboxes` and `/v2/sandboxes`, as the SDKs send it (fields they add later are
/// ignored).
#[derive(Debug, Deserialize)]
struct CreateSandbox {
    #[serde(rename = "templateID")]
    template_id: Option<String>,
    timeout: Option<i64>,
    metadata: Option<Map<String, Value>>,
    allow_internet_access: Option<bool>,
    /// `allowOut` / `denyOut` (see `network.rs`); E2B's other network options are ignored.
    network: Option<Value>,
    #[serde(rename = "autoPause")]
    auto_pause: Option<bool>,
    /// `{"enabled": bool}` (older SDKs: a bare bool).
    #[serde(rename = "autoResume")]
    auto_resume: Option<Value>,
}

async fn create(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Body(req): Body<CreateSandbox>,
) -> E2bResult<Response> {
    let timeout = check_timeout(req.timeout)?;
    let metadata = req.metadata.unwrap_or_default();
    if let Some((key, _)) = metadata.iter().find(|(_, v)| !v.is_string()) {
        return Err(E2bError::bad_request(format!(
            "metadata values must be strings ('{key}' is not)"
        )));
    }
    let template_id = req
        .template_id
        .unwrap_or_else(|| "code-interpreter-v1".into());
    let snapshot = state
        .containers
        .snapshot_template(&project, &template_id)
        .await?;
    let auto_pause = req.auto_pause.unwrap_or(false);
    let auto_resume = match &req.auto_resume {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(o)) => o.get("enabled").and_then(Value::as_bool).unwrap_or(false),
        Some(_) => {
            return Err(E2bError::bad_request(
                "autoResume must be {\"enabled\": true|false}",
            ))
        }
    };
    let sandbox = state
        .containers
        .create_sandbox(
            &project,
            NewSandbox {
                template_id,
                timeout_secs: timeout,
                metadata,
                memory: MemoryLimit::parse_within("memory", None, MemoryLimit::G1)?,
                allow_internet_access: req.allow_internet_access.unwrap_or(true),
                network: network::policy(
                    &state.containers,
                    req.allow_internet_access,
                    req.network.as_ref(),
                )?,
                auto_pause,
                auto_resume: auto_pause && auto_resume,
            },
        )
        .await?;
    if let Some(manifest) = snapshot {
        state
            .containers
            .start_from_snapshot(
                &project,
                &sandbox.container.id,
                &sandbox.template_id,
                &manifest,
            )
            .await?;
    }
    Ok((StatusCode::CREATED, Json(created(&sandbox))).into_response())
}

fn check_timeout(timeout: Option<i64>) -> E2bResult<i64> {
    match timeout {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) if (1..=MAX_TIMEOUT).contains(&t) => Ok(t),
        Some(t) => Err(E2bError::bad_request(format!(
            "timeout must be from 1 to {MAX_TIMEOUT} seconds, got {t}"
        ))),
    }
}

/// The `Sandbox` object of create and connect.
fn created(sandbox: &Sandbox) -> Value {
    json!({
        "templateID": sandbox.template_id,
        "sandboxID": sandbox.container.id,
        "clientID": "assistd",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": sandbox.access_token,
        // Sent back by the SDKs on calls that carry no X-Access-Token (py's /contexts).
        "trafficAccessToken": sandbox.access_token,
    })
}

/// `GET /sandboxes/{id}`'s `SandboxDetail` and the lists' `ListedSandbox`.
fn detail(state: &AppState, sandbox: &Sandbox) -> Value {
    let c = &sandbox.container;
    let memory_mb = c
        .memory_limit
        .parse::<MemoryLimit>()
        .map(MemoryLimit::mib)
        .unwrap_or(state.config.sandbox.memory_mb);
    json!({
        "templateID": sandbox.template_id,
        "sandboxID": c.id,
        "clientID": "assistd",
        "startedAt": rfc3339(c.created_at),
        "endAt": rfc3339(c.deadline()),
        "envdVersion": ENVD_VERSION,
        "cpuCount": state.config.sandbox.cpus.ceil().max(1.0) as u64,
        "memoryMB": memory_mb,
        "diskSizeMB": state.config.sandbox.data_size_mb,
        "state": c.status,
        "metadata": sandbox.metadata,
        "allowInternetAccess": sandbox.internet_access,
        "network": network::shown(&crate::domain::containers::network::from_shown(
            &c.network_policy
        )),
    })
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-07T12:00:00Z`).
fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn retrieve(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
) -> E2bResult<Json<Value>> {
    let sandbox = state.containers.sandbox(&project, &id).await?;
    Ok(Json(detail(&state, &sandbox)))
}

async fn kill(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    state.containers.kill_sandbox(&project, &id).await?;
    data::forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
struct Timeout {
    timeout: Option<i64>,
}

/// `POST /(v2/)sandboxes/{id}/connect`: a running sandbox answers 200 (its timeout moved when
/// one is given), a paused one is resumed and answers 201; a killed or expired one is not found.
async fn connect_to(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
    Body(req): Body<Timeout>,
) -> E2bResult<Response> {
    let timeout = match req.timeout {
        Some(_) => Some(check_timeout(req.timeout)?),
        None => None,
    };
    Ok(
        match state
            .containers
            .connect_sandbox(&project, &id, timeout)
            .await?
        {
            Connected::Running(sandbox) => Json(created(&sandbox)).into_response(),
            Connected::Resumed(sandbox) => {
                (StatusCode::CREATED, Json(created(&sandbox))).into_response()
            }
        },
    )
}

async fn set_timeout(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Path(id): Path<String>,
    Body(req): Body<Timeout>,
) -> E2bResult<StatusCode> {
    let Some(seconds) = req.timeout else {
        return Err(E2bError::bad_request("timeout is required"));
    };
    let seconds = check_timeout(Some(seconds))?;
    state.containers.sandbox(&project, &id).await?;
    state
        .containers
        .set_deadline(&project, &id, seconds)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_v1(
    state: State<AppState>,
    project: KeyProject,
    query: Query<HashMap<String, String>>,
) -> E2bResult<Response> {
    list(state, project, query).await
}

async fn list_v2(
    state: State<AppState>,
    project: KeyProject,
    query: Query<HashMap<String, String>>,
) -> E2bResult<Response> {
    list(state, project, query).await
}

/// `GET /v2/sandboxes?metadata=k1%3Dv1%26k2%3Dv2&state=running,paused&limit=&nextToken=`:
/// the sandboxes in those states (both by default), the next page's token in `x-next-token`.
async fn list(
    State(state): State<AppState>,
    KeyProject(project): KeyProject,
    Query(query): Query<HashMap<String, String>>,
) -> E2bResult<Response> {
    let mut metadata = Map::new();
    if let Some(raw) = query.get("metadata").filter(|m| !m.is_empty()) {
        for pair in raw.split('&') {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                E2bError::bad_request(format!("metadata filter '{pair}' is not key=value"))
            })?;
            let decode = |s: &str| {
                urlencoding_decode(s)
                    .ok_or_else(|| E2bError::bad_request("metadata filter is not valid UTF-8"))
            };
            metadata.insert(decode(k)?, Value::String(decode(v)?));
        }
    }
    let mut states: Vec<&str> = match query.get("state").filter(|s| !s.trim().is_empty()) {
        // Running and paused, as E2B lists by default.
        None => vec!["running", "paused"],
        Some(raw) => raw
            .split(',')
            .map(str::trim)
            .filter_map(|s| ["running", "paused"].into_iter().find(|known| *known == s))
            .collect(),
    };
    states.dedup();
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
        .list_sandboxes(
            &project,
            (&metadata, &states),
            limit,
            query.get("nextToken").map(String::as_str),
        )
        .await?;
    let items: Vec<Value> = page.sandboxes.iter().map(|s| detail(&state, s)).collect();
    let mut response = Json(items).into_response();
    if let Some(token) = page.next_token {
        if let Ok(value) = HeaderValue::from_str(&token) {
            response.headers_mut().insert("x-next-token", value);
        }
    }
    Ok(response)
}

/// Percent-decoding of one `key=value` part of the metadata filter (the SDKs encode it).
fn urlencoding_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn unknown_route(req: Request) -> E2bError {
    E2bError::new(
        StatusCode::NOT_FOUND,
        format!(
            "{} {} is not part of the E2B API served here",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The data-plane path of a request addressed E2B's other way, to `{port}-{id}.{domain}` with
/// the bare envd or code-interpreter path (deployments with wildcard DNS); None otherwise.
pub fn host_path(host: Option<&str>, path: &str) -> Option<String> {
    let host = host?;
    let (label, _) = host.split_once('.')?;
    let (port, id) = label.split_once('-')?;
    let addressed = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty();
    (addressed && !path.starts_with("/e2b/")).then(|| format!("/e2b/sandbox{path}"))
}

/// A header's value as text, if present and readable.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_644_800), "2026-12-07T12:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn sandbox_hosts_address_the_data_plane() {
        let host = Some("49999-cntr_abc.sandbox.example.com");
        assert_eq!(
            host_path(host, "/execute").as_deref(),
            Some("/e2b/sandbox/execute")
        );
        assert_eq!(host_path(host, "/e2b/sandbox/execute"), None);
        assert_eq!(host_path(Some("127.0.0.1:8080"), "/v1/files"), None);
        assert_eq!(host_path(Some("api-server.example.com"), "/v1/files"), None);
        assert_eq!(host_path(None, "/execute"), None);
    }

    #[test]
    fn metadata_filters_are_percent_decoded() {
        assert_eq!(urlencoding_decode("a%3Db+c").as_deref(), Some("a=b c"));
        assert_eq!(urlencoding_decode("%zz"), None);
        assert_eq!(urlencoding_decode("50%").as_deref(), Some("50%"));
    }
}
