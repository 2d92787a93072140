//! The file_search tool: the model's query searched in the run's vector stores (its
//! assistant's and its thread's); the results go on the run step and back to the model, each
//! behind a citation mark (`【0:1†report.md】`) that becomes a `file_citation` annotation.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::model::ToolCall;
use super::run_loop::{internal, Resources, RunTask, Stop};
use crate::domain::files::get_live;
use crate::domain::vector_stores::{add_files, create_for_files};
use crate::objects::message::AttachmentTool;
use crate::objects::run::{FileSearchResult, RunStep, StepDetails, StepToolCall};
use crate::objects::vector_store::Attributes;
use crate::objects::{Message, Thread};
use crate::retrieval::{self, Filter, Hit, Search, Weights};
use crate::store::{self, Kind};

/// OpenAI's defaults for a file_search tool without options.
const DEFAULT_MAX_RESULTS: usize = 20;
pub const RANKER: &str = "default_2024_08_21";

impl RunTask {
    /// Searches for one file_search call and records its results on the step; returns what
    /// the model reads.
    pub(super) async fn run_search(
        &mut self,
        step: &mut RunStep,
        index: usize,
        call: &ToolCall,
    ) -> Result<String, Stop> {
        let query = query_of(&call.arguments);
        let (max_results, threshold) = options(self.run.file_search().flatten());
        let stores = &self.vector_stores;
        let hits = if stores.is_empty() {
            vec![]
        } else {
            let queries = [query.clone()];
            let search = Search {
                vector_store_ids: stores,
                queries: &queries,
                max_results,
                score_threshold: threshold,
                weights: weights(self.run.file_search().flatten()),
                files: self.filtered_files(stores).await?,
                rerank: reranks(self.run.file_search().flatten()),
            };
            self.inner
                .retrieval
                .search(&search)
                .await
                .map_err(internal)?
        };
        let call_no = self.citations.len();
        self.citations
            .push(hits.iter().map(|h| h.file_id.clone()).collect());

        if let StepDetails::ToolCalls { tool_calls } = &mut step.step_details {
            if let Some(StepToolCall::FileSearch { file_search, .. }) = tool_calls.get_mut(index) {
                file_search.results = hits.iter().map(result_of).collect();
            }
        }
        Ok(for_the_model(
            call_no,
            &query,
            &hits,
            self.vector_stores.is_empty(),
        ))
    }

    /// The files of `stores` the tool's `filters` keep (a Responses file_search option, checked
    /// when the request was read), or `None` without filters.
    async fn filtered_files(&self, stores: &[String]) -> Result<Option<HashSet<String>>, Stop> {
        let Some(filter) = self
            .run
            .file_search()
            .flatten()
            .and_then(|f| f.get("filters"))
            .and_then(|f| serde_json::from_value::<Filter>(f.clone()).ok())
        else {
            return Ok(None);
        };
        let rows: Vec<(String, sqlx::types::Json<Option<Attributes>>)> = sqlx::query_as(
            "SELECT id, data->'attributes' FROM vector_store_files WHERE vector_store_id = ANY($1)",
        )
        .bind(stores)
        .fetch_all(&self.inner.db)
        .await
        .map_err(internal)?;
        Ok(Some(
            rows.into_iter()
                .filter(|(_, attrs)| filter.matches(&attrs.0.clone().unwrap_or_default()))
                .map(|(id, _)| id)
                .collect(),
        ))
    }

    /// The stores the run searches: the assistant's, then the thread's. Files the thread's
    /// messages attached for file_search are added to the thread's store first (made on
    /// first need), as OpenAI does.
    pub(super) async fn search_stores(
        &self,
        history: &[Message],
        resources: &mut Resources,
    ) -> Result<Vec<String>, Stop> {
        let mut ids = resources.assistant.store_ids();
        self.index_attachments(history, &mut resources.thread)
            .await?;
        for id in resources.thread.tool_resources.store_ids() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn index_attachments(
        &self,
        history: &[Message],
        thread: &mut Thread,
    ) -> Result<(), Stop> {
        let db = &self.inner.db;
        let retrieval = &self.inner.retrieval;
        let mut attached: Vec<String> = vec![];
        for a in history.iter().flat_map(|m| &m.attachments) {
            if a.tools.contains(&AttachmentTool::FileSearch) && !attached.contains(&a.file_id) {
                attached.push(a.file_id.clone());
            }
        }
        // Files deleted since they were attached are left out.
        let mut live = vec![];
        for id in attached {
            if get_live(db, &self.project, &id).await.is_ok() {
                live.push(id);
            }
        }
        if live.is_empty() {
            return Ok(());
        }
        match thread.tool_resources.store_ids().first() {
            Some(store_id) => {
                let present: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM vector_store_files WHERE vector_store_id = $1 AND id = ANY($2)",
                )
                .bind(store_id)
                .bind(&live)
                .fetch_all(db)
                .await
                .map_err(internal)?;
                let missing: Vec<String> = live
                    .into_iter()
                    .filter(|id| !present.contains(id))
                    .collect();
                if !missing.is_empty() {
                    add_files(db, retrieval, &self.project, store_id, &missing)
                        .await
                        .map_err(internal)?;
                }
            }
            None => {
                let store = create_for_files(db, retrieval, &self.project, None, &live, None)
                    .await
                    .map_err(internal)?;
                thread.tool_resources.file_search = Some(json!({ "vector_store_ids": [store.id] }));
                store::put(db, Kind::Thread, &thread.id, &*thread)
                    .await
                    .map_err(internal)?;
                self.inner.cache.invalidate(&thread.id);
            }
        }
        Ok(())
    }
}

/// `max_num_results` and `ranking_options.score_threshold` of the tool's options.
fn options(file_search: Option<&Value>) -> (usize, f64) {
    let max = file_search
        .and_then(|f| f.get("max_num_results"))
        .and_then(Value::as_u64)
        .map_or(DEFAULT_MAX_RESULTS, |n| n.clamp(1, 50) as usize);
    let threshold = file_search
        .and_then(|f| f.pointer("/ranking_options/score_threshold"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    (max, threshold)
}

/// The tool's `ranking_options.hybrid_search` weights (checked when the tool was accepted),
/// else the default blend.
fn weights(file_search: Option<&Value>) -> Weights {
    let hybrid = file_search.and_then(|f| f.pointer("/ranking_options/hybrid_search"));
    let weight = |key: &str| hybrid.and_then(|h| h.get(key)).and_then(Value::as_f64);
    match (weight("embedding_weight"), weight("text_weight")) {
        (Some(embedding), Some(text))
            if embedding >= 0.0 && text >= 0.0 && embedding + text > 0.0 =>
        {
            Weights { embedding, text }
        }
        _ => Weights::default(),
    }
}

/// Whether the tool's `ranking_options.ranker` lets the reranker run: all but `none`.
fn reranks(file_search: Option<&Value>) -> bool {
    file_search
        .and_then(|f| f.pointer("/ranking_options/ranker"))
        .and_then(Value::as_str)
        != Some("none")
}

/// The ranking options a step shows for the run's tool.
pub fn ranking_options(file_search: Option<&Value>) -> crate::objects::run::RankingOptions {
    crate::objects::run::RankingOptions {
        ranker: RANKER.into(),
        score_threshold: options(file_search).1,
    }
}

/// The query of a call's `{"query": ...}` arguments (or the raw text a lax model sent).
pub fn query_of(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(o)) => o
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => arguments.to_string(),
    }
}

fn result_of(hit: &Hit) -> FileSearchResult {
    FileSearchResult {
        file_id: hit.file_id.clone(),
        file_name: hit.filename.clone(),
        score: hit.score,
        content: vec![retrieval::snippet(hit)],
    }
}

fn for_the_model(call_no: usize, query: &str, hits: &[Hit], no_stores: bool) -> String {
    if no_stores {
        return "No files have been given to search.".into();
    }
    if hits.is_empty() {
        return format!("No passages match {}.", json!(query));
    }
    let mut out = format!("{} passages for {}:\n", hits.len(), json!(query));
    for (i, hit) in hits.iter().enumerate() {
        out.push_str(&format!(
            "\n【{call_no}:{i}†{}】 (score {:.2})\n{}\n",
            hit.filename, hit.score, hit.text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_twenty_results_and_no_threshold() {
        assert_eq!(options(None), (20, 0.0));
        let custom = json!({"max_num_results": 3, "ranking_options": {"score_threshold": 0.5}});
        assert_eq!(options(Some(&custom)), (3, 0.5));
        assert_eq!(options(Some(&json!({"max_num_results": 500}))).0, 50);
    }

    #[test]
    fn results_reach_the_model_behind_their_citation_marks() {
        let hit = Hit {
            vector_store_id: "vs_1".into(),
            file_id: "file-1".into(),
            filename: "notes.md".into(),
            score: 0.5,
            text: "The launch is on Tuesday.".into(),
        };
        let text = for_the_model(2, "launch day", &[hit], false);
        assert!(text.starts_with("1 passages for \"launch day\":"), "{text}");
        assert!(text.contains("【2:0†notes.md】 (score 0.50)\nThe launch is on Tuesday."));
        assert_eq!(query_of(r#"{"query": "launch"}"#), "launch");
        assert_eq!(query_of("launch"), "launch");
    }
}
