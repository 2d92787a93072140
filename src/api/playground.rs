//! The browser playground: static files embedded in the binary, served without a key.
//! The page itself calls `/v1` with the key the user pastes, so nothing here touches the database.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::error::ApiError;

const INDEX: &str = include_str!("../../playground/index.html");

/// `(name, content type, body)` of every file under `/playground/`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../playground/app.js"),
    ),
    (
        "responses.js",
        "text/javascript; charset=utf-8",
        include_str!("../../playground/responses.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../playground/style.css"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/playground", get(index))
        .route("/playground/{asset}", get(asset))
}

async fn root() -> Redirect {
    Redirect::to("/playground")
}

async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => serve(kind, body),
        None => ApiError::NotFound(format!("No playground file '{name}'.")).into_response(),
    }
}

fn serve(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            // The page only ever talks to this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}
