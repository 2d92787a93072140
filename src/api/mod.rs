//! The HTTP surface: one module per resource, merged here under `/v1`. Azure clients' paths
//! (`/openai/...`, `/openai/deployments/{name}/...`) are the same routes.

pub mod assistants;
pub mod cached;
pub mod container_files;
pub mod containers;
pub mod conversations;
pub mod e2b;
pub mod files;
pub mod json;
pub mod messages;
pub mod models;
pub mod playground;
pub mod responses;
pub mod runs;
pub mod skills;
pub mod steps;
pub mod threads;
pub mod tool_resources;
pub mod vector_store_files;
pub mod vector_store_search;
pub mod vector_stores;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::{HeaderName, StatusCode, Uri};
use axum::middleware::Next;
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
use crate::domain::containers::Containers;
use crate::error::ApiError;
use crate::executor::upstreams::Upstreams;
use crate::executor::Executor;
use crate::metrics;
use crate::retrieval::Retrieval;
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
    pub containers: Containers,
    pub sandbox: SandboxManager,
    pub retrieval: Retrieval,
    pub upstreams: Upstreams,
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
        .merge(models::router())
        .merge(files::router())
        .merge(runs::router())
        .merge(responses::router())
        .merge(conversations::router())
        .merge(steps::router())
        .merge(vector_stores::router())
        .merge(vector_store_files::router())
        .merge(vector_store_search::router())
        .merge(containers::router())
        .merge(container_files::router())
        .merge(skills::router())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(
            keys.clone(),
            auth::require_key,
        ))
        .method_not_allowed_fallback(method_not_allowed);

    let app = Router::new()
        .nest("/v1", v1)
        .nest("/e2b", e2b::router(state.clone(), keys))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(metrics_route)
        .merge(playground::router())
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
        ));
    // Paths are rewritten before the router above picks a route (a layer on it would run after).
    Router::new().fallback_service(tower::Layer::layer(&middleware::from_fn(azure_paths), app))
}

/// Serves Azure clients' paths as the `/v1` routes (and E2B's `{port}-{id}.{domain}` hosts as
/// the `/e2b/sandbox` routes, see [`e2b::host_path`]): `AzureOpenAI` (openai-python and
/// openai-node) calls `{endpoint}/openai/PATH?api-version=V`, and with a deployment in its
/// base URL `{endpoint}/openai/deployments/NAME/PATH`. `api-version` is ignored (every
/// handler ignores query parameters it does not know).
async fn azure_paths(mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let rewritten = azure_path(req.uri().path()).or_else(|| e2b::host_path(host, req.uri().path()));
    if let Some(path) = rewritten {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = path_and_query.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            // Error messages name the path the client called.
            let original = OriginalUri(std::mem::replace(req.uri_mut(), uri));
            req.extensions_mut().insert(original);
        }
    }
    next.run(req).await
}

fn azure_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/openai")?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let rest = match rest.strip_prefix("/deployments/") {
        Some(after) => match after.split_once('/') {
            Some((name, tail)) if !name.is_empty() => format!("/{tail}"),
            _ => rest.to_string(),
        },
        None => rest.to_string(),
    };
    Some(format!("/v1{rest}"))
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

async fn unknown_route(OriginalUri(uri): OriginalUri, req: Request) -> Response {
    ApiError::NotFound(format!("Invalid URL ({} {})", req.method(), uri.path())).into_response()
}

async fn method_not_allowed(OriginalUri(uri): OriginalUri, req: Request) -> Response {
    ApiError::MethodNotAllowed(format!(
        "Method {} is not allowed for {}.",
        req.method(),
        uri.path()
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::azure_path;

    #[test]
    fn azure_paths_are_the_v1_routes() {
        assert_eq!(azure_path("/openai/files").as_deref(), Some("/v1/files"));
        assert_eq!(
            azure_path("/openai/deployments/gpt-4o/threads/thread_1/runs").as_deref(),
            Some("/v1/threads/thread_1/runs")
        );
        assert_eq!(azure_path("/openai").as_deref(), Some("/v1"));
        assert_eq!(azure_path("/openaix/files"), None);
        assert_eq!(azure_path("/v1/files"), None);
    }
}
