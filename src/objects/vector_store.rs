//! Vector stores (file_search's storage), their files and file batches, and the request
//! pieces they share: chunking strategies, expiry policies and file attributes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::retrieval::Chunking;
use crate::validate::Metadata;

/// A file's attributes: up to 16 keys, values strings, numbers or booleans.
pub type Attributes = serde_json::Map<String, Value>;

const DAY_SECS: i64 = 86_400;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorStore {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub usage_bytes: u64,
    pub file_counts: FileCounts,
    pub status: String,
    pub expires_after: Option<ExpiresAfter>,
    pub expires_at: Option<i64>,
    pub last_active_at: Option<i64>,
    pub metadata: Metadata,
}

impl VectorStore {
    pub fn new(
        id: String,
        name: Option<String>,
        description: Option<String>,
        expires_after: Option<ExpiresAfter>,
        metadata: Metadata,
        now: i64,
    ) -> Self {
        let mut store = Self {
            id,
            object: "vector_store".into(),
            created_at: now,
            name: name.unwrap_or_default(),
            description,
            usage_bytes: 0,
            file_counts: FileCounts::default(),
            status: "completed".into(),
            expires_after,
            expires_at: None,
            last_active_at: Some(now),
            metadata,
        };
        store.set_expiry();
        store
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.status == "expired" || self.expires_at.is_some_and(|at| at <= now)
    }

    /// Brings `status` up to date: an expired store stays expired, whatever happens to it.
    pub fn observe(&mut self, now: i64) {
        self.status = if self.is_expired(now) {
            "expired".into()
        } else if self.file_counts.in_progress > 0 {
            "in_progress".into()
        } else {
            "completed".into()
        };
    }

    /// Records use of the store, which pushes its expiry back (unless it already expired).
    pub fn touch(&mut self, now: i64) {
        if !self.is_expired(now) {
            self.last_active_at = Some(now);
            self.set_expiry();
        }
        self.observe(now);
    }

    /// `expires_at` from the policy, anchored at `last_active_at`.
    pub fn set_expiry(&mut self) {
        self.expires_at = match (&self.expires_after, self.last_active_at) {
            (Some(policy), Some(anchor)) => Some(anchor + policy.days * DAY_SECS),
            _ => None,
        };
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileCounts {
    pub in_progress: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total: u64,
}

impl FileCounts {
    pub fn add(&mut self, status: &str, n: u64) {
        match status {
            "in_progress" => self.in_progress += n,
            "completed" => self.completed += n,
            "failed" => self.failed += n,
            "cancelled" => self.cancelled += n,
            _ => return,
        }
        self.total += n;
    }
}

/// `{"anchor": "last_active_at", "days": 1..=365}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiresAfter {
    pub anchor: Anchor,
    pub days: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    LastActiveAt,
}

impl ExpiresAfter {
    pub fn validate(&self, param: &str) -> ApiResult<()> {
        int_range(&format!("{param}.days"), self.days, 1, 365)
    }
}

/// The statuses a vector store file (and the `filter` of its lists) can have.
pub const FILE_STATUSES: [&str; 4] = ["in_progress", "completed", "failed", "cancelled"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorStoreFile {
    pub id: String,
    pub object: String,
    pub usage_bytes: u64,
    pub created_at: i64,
    pub vector_store_id: String,
    pub status: String,
    pub last_error: Option<LastError>,
    pub chunking_strategy: ChunkingStrategy,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
}

/// A chunking strategy as objects report it: `auto` is reported as the static sizes it uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChunkingStrategy {
    Static {
        #[serde(rename = "static")]
        sizes: StaticSizes,
    },
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSizes {
    pub max_chunk_size_tokens: i64,
    pub chunk_overlap_tokens: i64,
}

impl ChunkingStrategy {
    pub fn chunking(&self) -> Chunking {
        match self {
            ChunkingStrategy::Static { sizes } => Chunking {
                max_chunk_size_tokens: sizes.max_chunk_size_tokens as u32,
                chunk_overlap_tokens: sizes.chunk_overlap_tokens as u32,
            },
            ChunkingStrategy::Other => Chunking::default(),
        }
    }
}

impl From<Chunking> for ChunkingStrategy {
    fn from(c: Chunking) -> Self {
        ChunkingStrategy::Static {
            sizes: StaticSizes {
                max_chunk_size_tokens: i64::from(c.max_chunk_size_tokens),
                chunk_overlap_tokens: i64::from(c.chunk_overlap_tokens),
            },
        }
    }
}

/// `chunking_strategy` as requests give it: `{"type": "auto"}` or
/// `{"type": "static", "static": {"max_chunk_size_tokens", "chunk_overlap_tokens"}}`.
/// Parse it, then [`ChunkingParam::resolve`] it into the sizes to use.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkingParam {
    #[serde(rename = "type")]
    kind: ChunkingKind,
    #[serde(default, rename = "static")]
    sizes: Option<StaticSizes>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChunkingKind {
    Auto,
    Static,
}

impl ChunkingParam {
    /// The chunk sizes, checked as OpenAI checks them; `param` names the field in errors.
    pub fn resolve(&self, param: &str) -> ApiResult<Chunking> {
        let sizes_param = format!("{param}.static");
        match (self.kind, self.sizes) {
            (ChunkingKind::Auto, None) => Ok(Chunking::default()),
            (ChunkingKind::Auto, Some(_)) => Err(ApiError::invalid_code(
                sizes_param.clone(),
                "unknown_parameter",
                format!("Unknown parameter: '{sizes_param}'."),
            )),
            (ChunkingKind::Static, None) => Err(ApiError::invalid_code(
                sizes_param.clone(),
                "missing_required_parameter",
                format!("Missing required parameter: '{sizes_param}'."),
            )),
            (ChunkingKind::Static, Some(s)) => {
                let max_param = format!("{sizes_param}.max_chunk_size_tokens");
                int_range(&max_param, s.max_chunk_size_tokens, 100, 4096)?;
                let overlap_param = format!("{sizes_param}.chunk_overlap_tokens");
                int_range(&overlap_param, s.chunk_overlap_tokens, 0, i64::MAX)?;
                if s.chunk_overlap_tokens > s.max_chunk_size_tokens / 2 {
                    return Err(ApiError::invalid_code(
                        overlap_param.clone(),
                        "invalid_value",
                        format!(
                            "Invalid '{overlap_param}': chunk_overlap_tokens must not exceed half of max_chunk_size_tokens ({}), but got {} instead.",
                            s.max_chunk_size_tokens / 2,
                            s.chunk_overlap_tokens
                        ),
                    ));
                }
                Ok(Chunking {
                    max_chunk_size_tokens: s.max_chunk_size_tokens as u32,
                    chunk_overlap_tokens: s.chunk_overlap_tokens as u32,
                })
            }
        }
    }
}

/// Checks file attributes: at most 16, keys up to 64 characters, values strings of up to 512
/// characters, numbers or booleans.
pub fn validate_attributes(param: &str, attributes: &Attributes) -> ApiResult<()> {
    if attributes.len() > 16 {
        return Err(ApiError::invalid_code(
            param,
            "object_above_max_properties",
            format!("Invalid '{param}': too many properties. Expected an object with at most 16 properties, but got an object with {} properties instead.", attributes.len()),
        ));
    }
    for (key, value) in attributes {
        let at = format!("{param}.{key}");
        crate::validate::max_chars(&at, key, 64)?;
        match value {
            Value::String(s) => crate::validate::max_chars(&at, s, 512)?,
            Value::Number(_) | Value::Bool(_) => {}
            other => {
                return Err(ApiError::invalid_code(
                    at.clone(),
                    "invalid_type",
                    format!(
                        "Invalid type for '{at}': expected a string, a number or a boolean, but got {} instead.",
                        json_type(other)
                    ),
                ))
            }
        }
    }
    Ok(())
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An integer bound, worded as OpenAI words it.
pub fn int_range(param: &str, value: i64, min: i64, max: i64) -> ApiResult<()> {
    if value < min {
        return Err(ApiError::invalid_code(
            param,
            "integer_below_min_value",
            format!("Invalid '{param}': integer below minimum value. Expected a value >= {min}, but got {value} instead."),
        ));
    }
    if value > max {
        return Err(ApiError::invalid_code(
            param,
            "integer_above_max_value",
            format!("Invalid '{param}': integer above maximum value. Expected a value <= {max}, but got {value} instead."),
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileBatch {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub vector_store_id: String,
    pub status: String,
    pub file_counts: FileCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(json: Value) -> ApiResult<Chunking> {
        crate::api::json::from_value::<ChunkingParam>(json)?.resolve("chunking_strategy")
    }

    fn param_of(result: ApiResult<Chunking>) -> String {
        match result {
            Err(ApiError::InvalidRequest { param, .. }) => param.unwrap_or_default(),
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn auto_is_eight_hundred_by_four_hundred() {
        let c = resolve(serde_json::json!({"type": "auto"})).unwrap();
        assert_eq!(
            (c.max_chunk_size_tokens, c.chunk_overlap_tokens),
            (800, 400)
        );
    }

    #[test]
    fn static_sizes_are_bounded_and_overlap_at_most_half() {
        let sized = |max: i64, overlap: i64| {
            resolve(serde_json::json!({"type": "static", "static": {
                "max_chunk_size_tokens": max, "chunk_overlap_tokens": overlap}}))
        };
        assert!(sized(100, 50).is_ok());
        assert!(sized(4096, 0).is_ok());
        assert_eq!(
            param_of(sized(99, 0)),
            "chunking_strategy.static.max_chunk_size_tokens"
        );
        assert_eq!(
            param_of(sized(4097, 0)),
            "chunking_strategy.static.max_chunk_size_tokens"
        );
        assert_eq!(
            param_of(sized(800, 401)),
            "chunking_strategy.static.chunk_overlap_tokens"
        );
        assert_eq!(
            param_of(resolve(serde_json::json!({"type": "static"}))),
            "chunking_strategy.static"
        );
    }

    #[test]
    fn attributes_take_strings_numbers_and_booleans() {
        let ok: Attributes =
            serde_json::from_value(serde_json::json!({"a": "x", "b": 1.5, "c": true})).unwrap();
        assert!(validate_attributes("attributes", &ok).is_ok());
        let nested: Attributes = serde_json::from_value(serde_json::json!({"a": [1]})).unwrap();
        assert!(validate_attributes("attributes", &nested).is_err());
    }

    #[test]
    fn an_expired_store_stays_expired_when_used() {
        let policy = ExpiresAfter {
            anchor: Anchor::LastActiveAt,
            days: 1,
        };
        let mut vs = VectorStore::new(
            "vs_1".into(),
            None,
            None,
            Some(policy),
            Default::default(),
            0,
        );
        assert_eq!(vs.expires_at, Some(DAY_SECS));
        vs.touch(100);
        assert_eq!(vs.expires_at, Some(100 + DAY_SECS));
        vs.touch(200 + DAY_SECS);
        assert_eq!(vs.status, "expired");
        assert_eq!(vs.last_active_at, Some(100));
    }
}
