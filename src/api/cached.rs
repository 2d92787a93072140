//! Reads served through the read cache ([`crate::cache`]): the stored body when there is one,
//! otherwise the loaded object, serialized once and kept for next time.

use std::future::Future;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::auth::Project;
use crate::cache::ReadCache;
use crate::error::{ApiError, ApiResult};

/// Names one read of `project`, e.g. `assistant` or a message page's parameters. Reads of
/// another project never share an entry, even for the same id.
pub fn key(project: &Project, read: &str) -> String {
    format!("{}\u{1f}{read}", project.0)
}

/// Serves read `key` under `tag` (the id whose changes make it stale). Only successes are kept.
pub async fn serve<T: Serialize>(
    cache: &ReadCache,
    tag: &str,
    key: String,
    load: impl Future<Output = ApiResult<T>>,
) -> ApiResult<Response> {
    if let Some(body) = cache.get(tag, &key) {
        crate::metrics::read_cache(true);
        return Ok(json(body));
    }
    let ticket = cache.ticket(tag);
    let object = load.await?;
    let body = Bytes::from(serde_json::to_vec(&object).map_err(|e| ApiError::Internal(e.into()))?);
    if let Some(ticket) = ticket {
        crate::metrics::read_cache(false);
        cache.fill(tag, key, body.clone(), ticket);
    }
    Ok(json(body))
}

fn json(body: Bytes) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
