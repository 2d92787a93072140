//! Prometheus metrics: HTTP requests, runs, sandbox sessions, code execution and upstream calls.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::objects::Run;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide recorder once; later calls reuse it (tests start many apps).
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Middleware: requests by route template and status, with latency.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    counter!("assistd_http_requests_total", &labels).increment(1);
    histogram!("assistd_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

pub fn run_finished(run: &Run) {
    counter!("assistd_runs_total", "status" => run.status.clone()).increment(1);
    let end = run.completed_at.or(run.failed_at).or(run.cancelled_at);
    if let (Some(start), Some(end)) = (run.started_at, end) {
        histogram!("assistd_run_duration_seconds", "status" => run.status.clone())
            .record((end - start).max(0) as f64);
    }
}

pub fn read_cache(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!("assistd_read_cache_requests_total", "result" => result).increment(1);
}

pub fn read_cache_bytes(bytes: usize) {
    gauge!("assistd_read_cache_bytes").set(bytes as f64);
}

pub fn code_executed(elapsed: Duration) {
    histogram!("assistd_code_execution_seconds").record(elapsed.as_secs_f64());
}

pub fn upstream_call(elapsed: Duration, outcome: &'static str) {
    counter!("assistd_upstream_calls_total", "outcome" => outcome).increment(1);
    histogram!("assistd_upstream_call_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

pub fn sandbox_gauges(live: usize, pooled: usize, evicted_total: u64, expired_total: u64) {
    gauge!("assistd_sandbox_sessions_live").set(live as f64);
    gauge!("assistd_sandbox_sessions_pooled").set(pooled as f64);
    gauge!("assistd_sandbox_sessions_evicted_total").set(evicted_total as f64);
    gauge!("assistd_sandbox_sessions_expired_total").set(expired_total as f64);
}

pub fn runs_in_flight(n: usize) {
    gauge!("assistd_runs_in_flight").set(n as f64);
}

/// One file_search: which legs ranked it (`hybrid`, `keyword`, `vector`) and, when the vector
/// leg was wanted but missing, why (`no_embedding_upstream`, `embedding_failed`).
pub fn file_search(legs: &'static str, fallback: &'static str, took: Duration) {
    counter!("assistd_file_search_total", "legs" => legs, "fallback" => fallback).increment(1);
    histogram!("assistd_file_search_duration_seconds", "legs" => legs).record(took.as_secs_f64());
}

/// One rerank of a file_search's results: `reranked`, or `failed` (the fused order kept).
pub fn file_search_rerank(outcome: &'static str, took: Duration) {
    counter!("assistd_file_search_rerank_total", "outcome" => outcome).increment(1);
    histogram!("assistd_file_search_rerank_duration_seconds", "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// A new session took a sandbox: warm from the pool (`hit`) or after waiting for a launch.
pub fn sandbox_pool_take(hit: bool, waited: Duration) {
    let result = if hit { "hit" } else { "miss" };
    counter!("assistd_sandbox_pool_takes_total", "result" => result).increment(1);
    histogram!("assistd_sandbox_pool_wait_seconds", "result" => result)
        .record(waited.as_secs_f64());
}

pub fn sandbox_pool_target(target: usize) {
    gauge!("assistd_sandbox_pool_target").set(target as f64);
}
