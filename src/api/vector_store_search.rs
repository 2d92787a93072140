//! `POST /v1/vector_stores/{vector_store_id}/search`: the best chunks for one or more
//! queries, narrowed by a filter on the files' attributes.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;

use super::json::ApiJson;
use super::AppState;
use crate::auth::Project;
use crate::domain::vector_stores::{load, refresh};
use crate::error::{ApiError, ApiResult};
use crate::objects::vector_store::{int_range, json_type, Attributes};
use crate::retrieval;
use crate::validate;

pub fn router() -> Router<AppState> {
    Router::new().route("/vector_stores/{vector_store_id}/search", post(search))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: Value,
    #[serde(default)]
    max_num_results: Option<i64>,
    #[serde(default)]
    ranking_options: Option<RankingOptions>,
    /// Accepted; there is no model here to rewrite queries with.
    #[serde(default)]
    #[allow(dead_code)]
    rewrite_query: Option<bool>,
    #[serde(default)]
    filters: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RankingOptions {
    #[serde(default)]
    #[allow(dead_code)]
    ranker: Option<Ranker>,
    #[serde(default)]
    score_threshold: Option<f64>,
}

#[derive(Debug, Deserialize)]
enum Ranker {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "default-2024-11-15")]
    Default20241115,
}

/// A filter on file attributes: a comparison of one attribute with a value, or an `and` /
/// `or` of filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(rename = "type")]
    op: FilterOp,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    filters: Option<Vec<Filter>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FilterOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    And,
    Or,
}

impl Filter {
    fn is_compound(&self) -> bool {
        matches!(self.op, FilterOp::And | FilterOp::Or)
    }

    /// Checks the shape each `type` needs.
    fn validate(&self, param: &str) -> ApiResult<()> {
        let missing = |field: &str| {
            let p = format!("{param}.{field}");
            ApiError::invalid_code(
                p.clone(),
                "missing_required_parameter",
                format!("Missing required parameter: '{p}'."),
            )
        };
        let unknown = |field: &str| {
            let p = format!("{param}.{field}");
            ApiError::invalid_code(
                p.clone(),
                "unknown_parameter",
                format!("Unknown parameter: '{p}'."),
            )
        };
        if self.is_compound() {
            if self.key.is_some() {
                return Err(unknown("key"));
            }
            if self.value.is_some() {
                return Err(unknown("value"));
            }
            let filters = self.filters.as_ref().ok_or_else(|| missing("filters"))?;
            for (i, f) in filters.iter().enumerate() {
                f.validate(&format!("{param}.filters[{i}]"))?;
            }
            return Ok(());
        }
        if self.filters.is_some() {
            return Err(unknown("filters"));
        }
        self.key.as_ref().ok_or_else(|| missing("key"))?;
        let value = self.value.as_ref().ok_or_else(|| missing("value"))?;
        let p = format!("{param}.value");
        let wrong = |expected: &str, got: &Value| {
            ApiError::invalid_code(
                p.clone(),
                "invalid_type",
                format!(
                    "Invalid type for '{p}': expected {expected}, but got {} instead.",
                    json_type(got)
                ),
            )
        };
        match (self.op, value) {
            (FilterOp::In | FilterOp::Nin, Value::Array(items)) => {
                match items.iter().find(|v| !(v.is_string() || v.is_number())) {
                    Some(bad) => Err(wrong("an array of strings or numbers", bad)),
                    None => Ok(()),
                }
            }
            (FilterOp::In | FilterOp::Nin, other) => Err(wrong("an array", other)),
            (_, Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(()),
            (_, other) => Err(wrong("a string, a number or a boolean", other)),
        }
    }

    /// Whether a file with these attributes passes. A comparison with an attribute the file
    /// does not have never passes.
    fn matches(&self, attributes: &Attributes) -> bool {
        let children = || self.filters.iter().flatten();
        match self.op {
            FilterOp::And => return children().all(|f| f.matches(attributes)),
            FilterOp::Or => return children().any(|f| f.matches(attributes)),
            _ => {}
        }
        let (Some(key), Some(value)) = (&self.key, &self.value) else {
            return false;
        };
        let Some(attr) = attributes.get(key) else {
            return false;
        };
        let ordering = compare(attr, value);
        match self.op {
            FilterOp::Eq => same(attr, value),
            FilterOp::Ne => !same(attr, value),
            FilterOp::Gt => ordering.is_some_and(|o| o.is_gt()),
            FilterOp::Gte => ordering.is_some_and(|o| o.is_ge()),
            FilterOp::Lt => ordering.is_some_and(|o| o.is_lt()),
            FilterOp::Lte => ordering.is_some_and(|o| o.is_le()),
            FilterOp::In => value
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| same(attr, v))),
            FilterOp::Nin => value
                .as_array()
                .is_some_and(|vs| !vs.iter().any(|v| same(attr, v))),
            FilterOp::And | FilterOp::Or => unreachable!("handled above"),
        }
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Numbers order by value and strings by their characters; other pairs do not order.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The queries of a search: a string, or a non-empty array of strings.
fn queries(value: Value) -> ApiResult<Vec<String>> {
    let wrong = |got: &Value| {
        ApiError::invalid_code(
            "query",
            "invalid_type",
            format!(
                "Invalid type for 'query': expected a string or an array of strings, but got {} instead.",
                json_type(got)
            ),
        )
    };
    let queries = match value {
        Value::String(s) => vec![s],
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::invalid_code(
                    "query",
                    "empty_array",
                    "Invalid 'query': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s),
                    other => {
                        let p = format!("query[{i}]");
                        return Err(ApiError::invalid_code(
                            p.clone(),
                            "invalid_type",
                            format!(
                                "Invalid type for '{p}': expected a string, but got {} instead.",
                                json_type(&other)
                            ),
                        ));
                    }
                }
            }
            out
        }
        other => return Err(wrong(&other)),
    };
    for (i, q) in queries.iter().enumerate() {
        let p = if queries.len() == 1 {
            "query".to_string()
        } else {
            format!("query[{i}]")
        };
        validate::non_empty(&p, q)?;
    }
    Ok(queries)
}

#[derive(Debug, Serialize)]
struct SearchResultsPage {
    object: &'static str,
    search_query: Vec<String>,
    data: Vec<SearchResult>,
    has_more: bool,
    next_page: Option<String>,
}

#[derive(Debug, Serialize)]
struct SearchResult {
    file_id: String,
    filename: String,
    score: f64,
    attributes: Attributes,
    content: Vec<Value>,
}

/// How many more chunks to read when a filter may drop some.
const FILTER_HEADROOM: usize = 10;

async fn search(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchResultsPage>> {
    load(&state.db, &project, &id).await?;
    let queries = queries(req.query)?;
    let max = req.max_num_results.unwrap_or(10);
    int_range("max_num_results", max, 1, 50)?;
    let max = max as usize;
    let threshold = req
        .ranking_options
        .as_ref()
        .and_then(|r| r.score_threshold)
        .unwrap_or(0.0);
    validate::range("ranking_options.score_threshold", threshold, 0.0, 1.0)?;
    if let Some(filter) = &req.filters {
        filter.validate("filters")?;
    }

    let fetch = if req.filters.is_some() {
        max * FILTER_HEADROOM
    } else {
        max
    };
    let stores = [id.clone()];
    // Several queries: each chunk keeps its best score.
    let mut hits: Vec<retrieval::Hit> = vec![];
    for q in &queries {
        for hit in retrieval::search(&state.db, &stores, q, fetch, threshold).await? {
            match hits
                .iter_mut()
                .find(|h| h.file_id == hit.file_id && h.text == hit.text)
            {
                Some(seen) if seen.score < hit.score => *seen = hit,
                Some(_) => {}
                None => hits.push(hit),
            }
        }
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));

    let attributes = file_attributes(&state.db, &id).await?;
    let data = hits
        .into_iter()
        .filter_map(|hit| {
            let attrs = attributes.get(&hit.file_id).cloned().unwrap_or_default();
            if req.filters.as_ref().is_some_and(|f| !f.matches(&attrs)) {
                return None;
            }
            Some(SearchResult {
                content: vec![retrieval::snippet(&hit)],
                file_id: hit.file_id,
                filename: hit.filename,
                score: hit.score.clamp(0.0, 1.0),
                attributes: attrs,
            })
        })
        .take(max)
        .collect();
    refresh(&state.db, &id, true).await?;
    Ok(Json(SearchResultsPage {
        object: "vector_store.search_results.page",
        search_query: queries,
        data,
        has_more: false,
        next_page: None,
    }))
}

/// The attributes of each file of a store.
async fn file_attributes(
    db: &PgPool,
    vector_store_id: &str,
) -> ApiResult<HashMap<String, Attributes>> {
    let rows: Vec<(String, SqlJson<Option<Attributes>>)> = sqlx::query_as(
        "SELECT id, data->'attributes' FROM vector_store_files WHERE vector_store_id = $1",
    )
    .bind(vector_store_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, SqlJson(attrs))| (id, attrs.unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: Value) -> Filter {
        let f: Filter = serde_json::from_value(json).unwrap();
        f.validate("filters").unwrap();
        f
    }

    fn attrs(json: Value) -> Attributes {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn comparisons_and_compounds_apply_to_attributes() {
        let a = attrs(serde_json::json!({"team": "red", "year": 2024, "draft": false}));
        assert!(
            filter(serde_json::json!({"type": "eq", "key": "team", "value": "red"})).matches(&a)
        );
        assert!(
            !filter(serde_json::json!({"type": "ne", "key": "team", "value": "red"})).matches(&a)
        );
        assert!(
            filter(serde_json::json!({"type": "gte", "key": "year", "value": 2024.0})).matches(&a)
        );
        assert!(
            !filter(serde_json::json!({"type": "lt", "key": "year", "value": 2000})).matches(&a)
        );
        assert!(
            filter(serde_json::json!({"type": "in", "key": "team", "value": ["blue", "red"]}))
                .matches(&a)
        );
        assert!(
            filter(serde_json::json!({"type": "nin", "key": "year", "value": [1, 2]})).matches(&a)
        );
        assert!(
            !filter(serde_json::json!({"type": "eq", "key": "missing", "value": 1})).matches(&a)
        );
        let both = filter(serde_json::json!({"type": "and", "filters": [
            {"type": "eq", "key": "draft", "value": false},
            {"type": "or", "filters": [
                {"type": "eq", "key": "team", "value": "blue"},
                {"type": "gt", "key": "year", "value": 2020}]}]}));
        assert!(both.matches(&a));
    }

    #[test]
    fn malformed_filters_name_the_field() {
        let param = |json: Value| match serde_json::from_value::<Filter>(json)
            .unwrap()
            .validate("filters")
        {
            Err(ApiError::InvalidRequest { param, .. }) => param.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            param(serde_json::json!({"type": "eq", "key": "k"})),
            "filters.value"
        );
        assert_eq!(param(serde_json::json!({"type": "and"})), "filters.filters");
        assert_eq!(
            param(
                serde_json::json!({"type": "or", "filters": [{"type": "in", "key": "k", "value": 1}]})
            ),
            "filters.filters[0].value"
        );
    }

    #[test]
    fn a_query_is_a_string_or_strings() {
        assert_eq!(queries(Value::from("a")).unwrap(), vec!["a"]);
        assert_eq!(
            queries(serde_json::json!(["a", "b"])).unwrap(),
            vec!["a", "b"]
        );
        assert!(queries(serde_json::json!([])).is_err());
        assert!(queries(serde_json::json!(1)).is_err());
        assert!(queries(Value::from("")).is_err());
    }
}
