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
use crate::retrieval::{self, Filter, Search, Weights};
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
    /// Rewrites each query with `ASSISTD_REWRITE_MODEL` first (one call per query).
    #[serde(default)]
    rewrite_query: Option<bool>,
    #[serde(default)]
    filters: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RankingOptions {
    /// `none` skips the reranker (`ASSISTD_RERANK_MODEL`); the others use it when configured.
    #[serde(default)]
    ranker: Option<Ranker>,
    #[serde(default)]
    score_threshold: Option<f64>,
    #[serde(default)]
    hybrid_search: Option<HybridSearch>,
}

/// How much the semantic and the keyword match count (OpenAI's fields, both required).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HybridSearch {
    embedding_weight: f64,
    text_weight: f64,
}

impl HybridSearch {
    fn weights(&self) -> ApiResult<Weights> {
        let p = "ranking_options.hybrid_search";
        for (field, w) in [
            ("embedding_weight", self.embedding_weight),
            ("text_weight", self.text_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                let p = format!("{p}.{field}");
                return Err(ApiError::invalid_code(
                    p.clone(),
                    "invalid_value",
                    format!("Invalid '{p}': expected a number at least 0, but got {w} instead."),
                ));
            }
        }
        if self.embedding_weight + self.text_weight <= 0.0 {
            return Err(ApiError::invalid_code(
                p,
                "invalid_value",
                format!("Invalid '{p}': 'embedding_weight' and 'text_weight' cannot both be 0."),
            ));
        }
        Ok(Weights {
            embedding: self.embedding_weight,
            text: self.text_weight,
        })
    }
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

async fn search(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> ApiResult<Json<SearchResultsPage>> {
    load(&state.db, &project, &id).await?;
    let queries = queries(req.query)?;
    let max = req.max_num_results.unwrap_or(10);
    int_range(
        "max_num_results",
        max,
        1,
        state.retrieval.max_results() as i64,
    )?;
    let max = max as usize;
    let ranking = req.ranking_options.as_ref();
    let threshold = ranking.and_then(|r| r.score_threshold).unwrap_or(0.0);
    validate::range("ranking_options.score_threshold", threshold, 0.0, 1.0)?;
    let weights = match ranking.and_then(|r| r.hybrid_search.as_ref()) {
        Some(h) => h.weights()?,
        None => Weights::default(),
    };
    if let Some(filter) = &req.filters {
        filter.validate("filters")?;
    }

    let queries = if req.rewrite_query == Some(true) {
        state.retrieval.rewrite(queries).await
    } else {
        queries
    };
    // The filter narrows the files before anything is ranked; without one only the found
    // files' attributes are read (a store may hold 100k files).
    let mut attributes = HashMap::new();
    let files = match &req.filters {
        Some(f) => {
            attributes = file_attributes(&state.db, &id, None).await?;
            Some(
                attributes
                    .iter()
                    .filter(|(_, attrs)| f.matches(attrs))
                    .map(|(id, _)| id.clone())
                    .collect(),
            )
        }
        None => None,
    };
    let stores = [id.clone()];
    let hits = state
        .retrieval
        .search(&Search {
            vector_store_ids: &stores,
            queries: &queries,
            max_results: max,
            score_threshold: threshold,
            weights,
            files,
            rerank: !matches!(ranking.and_then(|r| r.ranker.as_ref()), Some(Ranker::None)),
        })
        .await?;
    if req.filters.is_none() {
        let found: Vec<String> = hits.iter().map(|h| h.file_id.clone()).collect();
        attributes = file_attributes(&state.db, &id, Some(&found)).await?;
    }
    let data = hits
        .into_iter()
        .map(|hit| SearchResult {
            content: vec![retrieval::snippet(&hit)],
            attributes: attributes.get(&hit.file_id).cloned().unwrap_or_default(),
            file_id: hit.file_id,
            filename: hit.filename,
            score: hit.score,
        })
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

/// The attributes of each file of a store, or of those of `only`.
async fn file_attributes(
    db: &PgPool,
    vector_store_id: &str,
    only: Option<&[String]>,
) -> ApiResult<HashMap<String, Attributes>> {
    let rows: Vec<(String, SqlJson<Option<Attributes>>)> = sqlx::query_as(
        "SELECT id, data->'attributes' FROM vector_store_files
         WHERE vector_store_id = $1 AND ($2::text[] IS NULL OR id = ANY($2))",
    )
    .bind(vector_store_id)
    .bind(only)
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
