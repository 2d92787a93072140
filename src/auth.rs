//! Key authentication: `Authorization: Bearer KEY`, or `api-key: KEY` as Azure clients send it.
//! Every key belongs to a project; objects are scoped by project, so another project's id reads
//! as "not found".

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The project a request acts for, put in the request's extensions by [`require_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project(pub String);

#[derive(Clone, Debug)]
pub struct ApiKeys {
    key_to_project: Arc<HashMap<String, String>>,
}

impl ApiKeys {
    /// Parses `KEY` and `PROJECT:KEY` entries, comma-separated. A bare key's project is derived
    /// from a hash of the key so that it is stable and reveals nothing.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (project, key) = match entry.split_once(':') {
                Some((p, k)) if !p.is_empty() && !k.is_empty() => (p.to_string(), k.to_string()),
                Some(_) => {
                    anyhow::bail!("ASSISTD_API_KEYS: malformed entry (want KEY or PROJECT:KEY)")
                }
                None => (derived_project(entry), entry.to_string()),
            };
            map.insert(key, project);
        }
        Ok(Self {
            key_to_project: Arc::new(map),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.key_to_project.is_empty()
    }

    /// A fresh random key for a server started without any, in its own project.
    pub fn generated() -> (Self, String) {
        let key = format!(
            "sk-assistd-{}",
            rand::distr::SampleString::sample_string(
                &rand::distr::Alphanumeric,
                &mut rand::rng(),
                32
            )
        );
        let keys = Self::parse(&key).expect("a generated key parses");
        (keys, key)
    }

    /// The project of `key`, if it is one of the server's keys (for surfaces that carry the
    /// key elsewhere, such as E2B's `X-API-KEY`).
    pub fn project_of(&self, key: &str) -> Option<Project> {
        self.project_for(key).cloned().map(Project)
    }

    fn project_for(&self, key: &str) -> Option<&String> {
        self.key_to_project.get(key)
    }
}

fn derived_project(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("proj_{}", &hex::encode(digest)[..16])
}

/// Middleware: rejects requests without a known key, 401 in OpenAI's shape.
pub async fn require_key(State(keys): State<ApiKeys>, mut req: Request, next: Next) -> Response {
    let Some(key) = presented_key(req.headers()) else {
        return ApiError::Unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an api-key header.".into(),
        )
        .into_response();
    };
    match keys.project_for(&key) {
        Some(project) => {
            req.extensions_mut().insert(Project(project.clone()));
            next.run(req).await
        }
        None => ApiError::Unauthorized(format!("Incorrect API key provided: {}.", mask_key(&key)))
            .into_response(),
    }
}

/// The key a request carries: the bearer token if there is an `Authorization` header, else
/// the `api-key` header.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(auth) = header(AUTHORIZATION.as_str()) {
        let key = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or("");
        return Some(key.trim().to_string());
    }
    header("api-key").map(|k| k.trim().to_string())
}

fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len().min(40) - 7))
}

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Project>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("Missing API key.".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_naming_one_project_share_it_and_bare_keys_get_their_own() {
        let keys = ApiKeys::parse("team:sk-a, team:sk-b ,sk-c").unwrap();
        assert_eq!(keys.project_for("sk-a"), Some(&"team".to_string()));
        assert_eq!(keys.project_for("sk-b"), Some(&"team".to_string()));
        let c = keys.project_for("sk-c").unwrap();
        assert!(c.starts_with("proj_") && c != "team");
        assert_eq!(keys.project_for("sk-d"), None);
    }

    #[test]
    fn a_malformed_entry_is_refused() {
        assert!(ApiKeys::parse(":sk-a").is_err());
        assert!(ApiKeys::parse("team:").is_err());
    }

    #[test]
    fn a_key_comes_from_authorization_or_else_from_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("api-key", "sk-azure".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("sk-azure"));
        h.insert(AUTHORIZATION, "Bearer sk-bearer".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("sk-bearer"));
    }

    #[test]
    fn masked_keys_keep_only_their_ends() {
        assert_eq!(mask_key("sk-abcdefghijkl"), "sk-********ijkl");
        assert_eq!(mask_key("short"), "*****");
    }
}
