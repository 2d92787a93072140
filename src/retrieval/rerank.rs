//! The optional reranker: the fused candidates' texts sent with the query to an upstream's
//! `POST /rerank` (Cohere v1/v2, Jina, Hugging Face TEI, vLLM, Infinity share its shape:
//! `{"model", "query", "documents", "top_n"}` answered by `{"results": [{"index",
//! "relevance_score"}]}`; TEI answers a bare `[{"index", "score"}]`), which then set the order
//! and the scores. A reranker that fails leaves the fused order: a search never fails for it.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::embed::Endpoint;
use super::Hit;

/// A search waits this long for the reranker before it keeps the fused order.
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Reranker {
    http: reqwest::Client,
    endpoint: Endpoint,
    model: String,
    /// The most fused candidates sent (the best ones); those after keep their fused order.
    candidates: usize,
}

impl std::fmt::Debug for Reranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reranker")
            .field("url", &self.endpoint.url)
            .field("model", &self.model)
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

/// Both answers the field gives.
#[derive(Deserialize)]
#[serde(untagged)]
enum Answer {
    Results { results: Vec<Scored> },
    Bare(Vec<Scored>),
}

#[derive(Deserialize)]
struct Scored {
    index: usize,
    #[serde(alias = "score")]
    relevance_score: f64,
}

impl Reranker {
    pub fn new(http: reqwest::Client, endpoint: Endpoint, model: String, candidates: u32) -> Self {
        Self {
            http,
            endpoint,
            model,
            candidates: candidates.max(1) as usize,
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn upstream(&self) -> &str {
        &self.endpoint.upstream
    }

    /// How many of the best fused candidates a reranked search reads.
    pub fn candidates(&self) -> usize {
        self.candidates
    }

    /// `hits` (best fused first) in the reranker's order with its scores; the ones beyond
    /// the candidate cap follow in their fused order, scored no higher than the last reranked.
    /// `Err` (and `hits` as they were) when the upstream fails or answers nonsense.
    pub async fn rerank(
        &self,
        query: &str,
        hits: Vec<Hit>,
    ) -> Result<Vec<Hit>, (String, Vec<Hit>)> {
        if hits.is_empty() {
            return Ok(hits);
        }
        let sent = hits.len().min(self.candidates);
        let documents: Vec<&str> = hits[..sent].iter().map(|h| h.text.as_str()).collect();
        match self.ask(query, &documents).await {
            Ok(scores) => Ok(reorder(hits, &scores)),
            Err(why) => {
                let why = if self.endpoint.secret.len() >= 4 {
                    why.replace(&self.endpoint.secret, "<redacted>")
                } else {
                    why
                };
                Err((why, hits))
            }
        }
    }

    /// One score per document, in the documents' order.
    async fn ask(&self, query: &str, documents: &[&str]) -> Result<Vec<f64>, String> {
        let body = json!({
            "model": self.model,
            "query": query,
            "documents": documents,
            "top_n": documents.len(),
        });
        let response = self
            .http
            .post(&self.endpoint.url)
            .headers(self.endpoint.headers.clone())
            .timeout(TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("unreachable: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let detail: String = text.chars().take(300).collect();
            return Err(format!("answered {}: {detail}", status.as_u16()));
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|_| "answered something other than rerank results".to_string())?;
        let results = match answer {
            Answer::Results { results } | Answer::Bare(results) => results,
        };
        scores_of(results, documents.len())
    }
}

/// `hits` as the reranker orders them for `query`, or as they were when it fails (logged,
/// and counted in `assistd_file_search_rerank_total`).
pub async fn apply(reranker: &Reranker, query: &str, hits: Vec<Hit>) -> Vec<Hit> {
    if hits.is_empty() {
        return hits;
    }
    let started = Instant::now();
    match reranker.rerank(query, hits).await {
        Ok(hits) => {
            crate::metrics::file_search_rerank("reranked", started.elapsed());
            hits
        }
        Err((why, hits)) => {
            tracing::warn!(upstream = reranker.upstream(), model = reranker.model(), error = %why, "the reranker failed; results keep their fused order");
            crate::metrics::file_search_rerank("failed", started.elapsed());
            hits
        }
    }
}

/// A score per document from the upstream's results; every document must be scored once.
/// Scores outside 0..1 (raw logits, as some servers answer) go through a sigmoid, which keeps
/// their order.
fn scores_of(results: Vec<Scored>, documents: usize) -> Result<Vec<f64>, String> {
    let mut scores: Vec<Option<f64>> = vec![None; documents];
    for r in results {
        let slot = scores
            .get_mut(r.index)
            .ok_or_else(|| format!("answered index {} of {documents} documents", r.index))?;
        if !r.relevance_score.is_finite() {
            return Err("answered a score that is not a number".into());
        }
        *slot = Some(r.relevance_score);
    }
    let scores: Vec<f64> = scores
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| "left documents unscored".to_string())?;
    if scores.iter().all(|s| (0.0..=1.0).contains(s)) {
        Ok(scores)
    } else {
        Ok(scores.iter().map(|s| 1.0 / (1.0 + (-s).exp())).collect())
    }
}

/// The scored head in score order (ties keep the fused order), then the unscored tail in its
/// order, its scores scaled under the head's lowest so scores still follow the order.
fn reorder(hits: Vec<Hit>, scores: &[f64]) -> Vec<Hit> {
    let mut head: Vec<(usize, Hit)> = vec![];
    let mut tail: Vec<Hit> = vec![];
    for (i, mut hit) in hits.into_iter().enumerate() {
        match scores.get(i) {
            Some(&s) => {
                hit.score = s.clamp(0.0, 1.0);
                head.push((i, hit));
            }
            None => tail.push(hit),
        }
    }
    head.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    let floor = head.last().map_or(1.0, |(_, h)| h.score);
    let top = tail.first().map_or(0.0, |h| h.score);
    if top > floor {
        let scale = if top > 0.0 { floor / top } else { 0.0 };
        tail.iter_mut().for_each(|h| h.score *= scale);
    }
    head.into_iter().map(|(_, h)| h).chain(tail).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(n: u32, score: f64) -> Hit {
        Hit {
            vector_store_id: "vs".into(),
            file_id: format!("f{n}"),
            filename: String::new(),
            score,
            text: String::new(),
        }
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.file_id.as_str()).collect()
    }

    #[test]
    fn the_reranked_head_leads_and_the_tail_scores_stay_below_it() {
        let hits = vec![hit(1, 0.9), hit(2, 0.8), hit(3, 0.7), hit(4, 0.6)];
        let out = reorder(hits, &[0.1, 0.5, 0.3]);
        assert_eq!(ids(&out), ["f2", "f3", "f1", "f4"]);
        let scores: Vec<f64> = out.iter().map(|h| h.score).collect();
        assert_eq!(scores[..3], [0.5, 0.3, 0.1]);
        assert!(scores[3] <= 0.1 && scores[3] > 0.0, "{scores:?}");
    }

    #[test]
    fn both_answer_shapes_are_read_and_logits_become_0_to_1() {
        let cohere: Answer = serde_json::from_str(
            r#"{"id":"x","results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.2}]}"#,
        )
        .unwrap();
        let tei: Answer =
            serde_json::from_str(r#"[{"index":0,"score":-2.0},{"index":1,"score":3.5}]"#).unwrap();
        let (Answer::Results { results: a }, Answer::Bare(b)) = (cohere, tei) else {
            panic!("shapes misread");
        };
        assert_eq!(scores_of(a, 2).unwrap(), vec![0.2, 0.9]);
        let logits = scores_of(b, 2).unwrap();
        assert!(
            logits[0] < 0.5 && logits[1] > 0.9 && logits[1] <= 1.0,
            "{logits:?}"
        );
        let short = vec![Scored {
            index: 0,
            relevance_score: 0.5,
        }];
        assert!(scores_of(short, 2).is_err());
    }
}
