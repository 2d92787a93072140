//! The HTTP surface: one module per resource, merged here under `/v1`.

pub mod assistants;
pub mod cached;
pub mod files;
pub mod json;
pub mod messages;
pub mod runs;
pub mod steps;
pub mod threads;
pub mod tool_resources;
pub mod vector_store_files;
pub mod vector_store_search;
pub mod vector_stores;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::{self, ApiKeys};
use crate::blobs::BlobStore;
use crate::cache::ReadCache;
use crate::config::Config;
use crate::error::ApiError;
use crate::executor::Executor;
use crate::metrics;
use crate::sandbox::SandboxManager;
use metrics_exporter_prometheus::PrometheusHandle;

/// Everything a handler needs, built once at start.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub cache: ReadCache,
    pub blobs: BlobStore,
    pub config: Arc<Config>,
    pub executor: Executor,
    pub sandbox: SandboxManager,
    pub metrics: PrometheusHandle,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState, keys: ApiKeys) -> Router {
    // `/metrics` lives here unless it has an address of its own.
    let metrics_route = if state.config.metrics_addr.is_none() {
        Router::new().route("/metrics", get(render_metrics))
    } else {
        Router::new()
    };
    let v1 = Router::new()
        .merge(assistants::router())
        .merge(threads::router())
        .merge(messages::router())
        .merge(files::router())
        .merge(runs::router())
        .merge(steps::router())
        .merge(vector_stores::router())
        .merge(vector_store_files::router())
        .merge(vector_store_search::router())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(keys, auth::require_key))
        .method_not_allowed_fallback(method_not_allowed);

    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(metrics_route)
        .fallback(unknown_route)
        .route_layer(middleware::from_fn(metrics::track_http))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(600),
        ))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when Postgres answers, Docker answers and the sandbox image is present.
async fn readyz(State(state): State<AppState>) -> Response {
    let db = sqlx::query("SELECT 1").execute(&state.db).await.map(|_| ());
    let sandbox = state.sandbox.ready().await;
    let blobs = state.blobs.check().await;
    let body = serde_json::json!({
        "postgres": db.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "sandbox": sandbox.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "blobs": blobs.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        // Informational: without the cache reads are slower, not wrong.
        "read_cache": state.cache.state(),
    });
    let status = if db.is_ok() && sandbox.is_ok() && blobs.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

pub async fn render_metrics(State(state): State<AppState>) -> String {
    let stats = state.sandbox.stats();
    metrics::sandbox_gauges(
        stats.live,
        stats.pooled,
        stats.evicted_total,
        stats.expired_total,
    );
    metrics::runs_in_flight(state.executor.running());
    metrics::read_cache_bytes(state.cache.bytes());
    state.metrics.render()
}

async fn unknown_route(req: Request) -> Response {
    ApiError::NotFound(format!(
        "Invalid URL ({} {})",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

async fn method_not_allowed(OriginalUri(uri): OriginalUri, req: Request) -> Response {
    ApiError::MethodNotAllowed(format!(
        "Method {} is not allowed for {}.",
        req.method(),
        uri.path()
    ))
    .into_response()
}
