//! Our own JSON extractor, so that malformed bodies, wrong types, unknown and missing fields
//! all come back as OpenAI errors naming the parameter.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("Request body too large.".into())
            } else {
                ApiError::invalid(rejection.body_text())
            }
        })?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// The name of `field` inside `parent` as error messages give it (`messages[0].role`).
pub fn param_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// Parses a request body; an empty body is read as `{}` (as for `POST /v1/threads`).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes).map_err(|_| {
            ApiError::invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            )
        })?
    };
    if !value.is_object() {
        return Err(ApiError::invalid(
            "Invalid body: expected a JSON object at the top level.",
        ));
    }
    if let Some(param) = nul_at(&value, "") {
        return Err(ApiError::invalid_code(
            param.clone(),
            "invalid_value",
            format!("Invalid '{param}': strings may not contain the NUL character (\\u0000)."),
        ));
    }
    from_value(value)
}

/// Where a NUL character hides in a body: Postgres cannot store it in text or JSON.
fn nul_at(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let at = |key: &str| param_path(path, key);
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(at(k))
            } else {
                nul_at(v, &at(k))
            }
        }),
        _ => None,
    }
}

/// Deserializes with the path of the failing field, turned into OpenAI's messages.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        serde_error(if path == "." { "" } else { &path }, &e.inner().to_string())
    })
}

/// Re-roots a nested deserialization error under its parameter.
pub fn reroot(e: ApiError, at: &str) -> ApiError {
    match e {
        ApiError::InvalidRequest {
            message,
            param,
            code,
        } => {
            let inner = param.unwrap_or_default();
            let full = param_path(at, &inner);
            ApiError::InvalidRequest {
                message: if inner.is_empty() {
                    message
                } else {
                    message.replace(&format!("'{inner}'"), &format!("'{full}'"))
                },
                param: Some(full),
                code,
            }
        }
        other => other,
    }
}

/// "'a'", "'a' and 'b'", "'a', 'b', and 'c'", as OpenAI words its lists.
fn english_list(items: &[String]) -> String {
    match items {
        [] => "none".into(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

fn serde_error(path: &str, msg: &str) -> ApiError {
    let join = |field: &str| param_path(path, field);
    // serde_path_to_error's path usually already ends at an unknown field, but stops above a
    // missing one (and above fields refused by our own TryFrom checks).
    if let Some(field) = between(msg, "unknown field `", "`") {
        let param = if path == field || path.ends_with(&format!(".{field}")) {
            path.to_string()
        } else {
            join(field)
        };
        return ApiError::invalid_code(
            param.clone(),
            "unknown_parameter",
            format!("Unknown parameter: '{param}'."),
        );
    }
    if let Some(field) = between(msg, "missing field `", "`") {
        let param = join(field);
        return ApiError::invalid_code(
            param.clone(),
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
        );
    }
    if let Some(variant) = between(msg, "unknown variant `", "`") {
        // serde lists them as "`a`, `b`" or "one of `a`, `b`, `c`".
        let expected: Vec<String> = msg
            .split("expected ")
            .nth(1)
            .unwrap_or("")
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|v| format!("'{v}'"))
            .collect();
        return ApiError::invalid_code(
            path,
            "invalid_value",
            format!(
                "Invalid value: '{variant}'. Supported values are: {}.",
                english_list(&expected)
            ),
        );
    }
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        let (got, expected) = msg
            .split_once(", expected ")
            .map(|(g, e)| {
                (
                    g.trim_start_matches("invalid type: ")
                        .trim_start_matches("invalid value: "),
                    e,
                )
            })
            .unwrap_or((msg, "another type"));
        return ApiError::invalid_code(
            path,
            "invalid_type",
            format!("Invalid type for '{path}': expected {expected}, but got {got} instead."),
        );
    }
    ApiError::invalid_param(path, format!("Invalid '{path}': {msg}."))
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// For partial updates: absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
/// Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `include[]` (or `include`) values of a query string, decoded.
pub fn includes(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == "include" || k == "include[]")
        .map(|(_, v)| v.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        model: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn param_of(body: &str) -> (Option<String>, String) {
        match parse_body::<Body>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { param, message, .. }) => (param, message),
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_parameter_at_fault() {
        assert_eq!(param_of(r#"{}"#).0.as_deref(), Some("model"));
        assert_eq!(param_of(r#"{"model":1}"#).0.as_deref(), Some("model"));
        assert_eq!(param_of(r#"{"model":"m","x":1}"#).0.as_deref(), Some("x"));
        assert_eq!(
            param_of(r#"{"model":"m","inner":{"n":"a"}}"#).0.as_deref(),
            Some("inner.n")
        );
        assert_eq!(
            param_of(r#"{"model":"m","inner":{}}"#).0.as_deref(),
            Some("inner.n")
        );
    }

    #[test]
    fn nul_characters_are_refused_where_they_hide() {
        assert_eq!(
            param_of(r#"{"model":"m\u0000"}"#).0.as_deref(),
            Some("model")
        );
        assert_eq!(
            param_of(r#"{"model":"m","inner":{"a\u0000":1}}"#)
                .0
                .as_deref(),
            Some("inner.a\u{0}")
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Part {
        Text,
        ImageFile,
        ImageUrl,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Parts {
        parts: Vec<Part>,
    }

    #[test]
    fn unknown_values_list_the_supported_ones_as_openai_does() {
        let err = parse_body::<Parts>(br#"{"parts":[{"type":"video"}]}"#).unwrap_err();
        let ApiError::InvalidRequest {
            message,
            param,
            code,
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            message,
            "Invalid value: 'video'. Supported values are: 'text', 'image_file', and 'image_url'."
        );
        assert_eq!(param.as_deref(), Some("parts[0].type"));
        assert_eq!(code, Some("invalid_value"));
        assert_eq!(english_list(&["'a'".into(), "'b'".into()]), "'a' and 'b'");
    }

    #[test]
    fn malformed_json_and_non_objects_are_refused() {
        assert!(param_of("{nope").1.contains("could not parse"));
        assert!(param_of("[1]").1.contains("JSON object"));
    }
}
