//! One error type for the whole API, rendered as OpenAI's error JSON:
//! `{"error":{"message","type","param","code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request_error`, optionally naming the offending parameter.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
    /// 404 with OpenAI's wording, e.g. `No assistant found with id 'asst_x'.`
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Anything else: logged with its cause, returned as a bare 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    pub fn invalid_code(
        param: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
            code: Some(code),
        }
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        ApiError::NotFound(format!("No {kind} found with id '{id}'."))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI error body, as also sent in a streaming `error` event.
    pub fn body(&self) -> serde_json::Value {
        let (kind, param, code, message) = match self {
            ApiError::InvalidRequest {
                message,
                param,
                code,
            } => (
                "invalid_request_error",
                param.clone(),
                *code,
                message.clone(),
            ),
            ApiError::NotFound(m) => ("invalid_request_error", None, None, m.clone()),
            ApiError::Unauthorized(m) => (
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
                m.clone(),
            ),
            ApiError::PayloadTooLarge(m) => ("invalid_request_error", None, None, m.clone()),
            ApiError::MethodNotAllowed(m) => ("invalid_request_error", None, None, m.clone()),
            ApiError::Internal(_) => (
                "server_error",
                None,
                None,
                "The server had an error while processing your request. Sorry about that!"
                    .to_string(),
            ),
        };
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            // The request id is on the enclosing span, so the log line carries it.
            tracing::error!(error = ?cause, "internal error");
        }
        (status, axum::Json(self.body())).into_response()
    }
}
