//! `rewrite_query`: one call to a chat model turning a question into a search query.

use std::time::Duration;

use serde_json::{json, Value};

use super::embed::Endpoint;

const TIMEOUT: Duration = Duration::from_secs(30);
const PROMPT: &str = "Rewrite the user's question as a short search query for a document \
search engine: keep names, codes and numbers exactly, drop filler words, add a close synonym \
where it helps. Answer with the query alone, on one line.";

#[derive(Clone)]
pub struct Rewriter {
    http: reqwest::Client,
    endpoint: Endpoint,
    model: String,
}

impl Rewriter {
    pub fn new(http: reqwest::Client, endpoint: Endpoint, model: String) -> Self {
        Self {
            http,
            endpoint,
            model,
        }
    }

    /// The model's rewrite of `query`, or `query` itself when the model fails or answers
    /// nothing usable (a search never fails for want of a rewrite).
    pub async fn rewrite(&self, query: &str) -> String {
        match self.ask(query).await {
            Some(rewritten) => rewritten,
            None => {
                tracing::warn!(upstream = %self.endpoint.upstream, model = %self.model, "rewrite_query failed; searching the query as written");
                query.to_string()
            }
        }
    }

    async fn ask(&self, query: &str) -> Option<String> {
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": PROMPT},
                {"role": "user", "content": query},
            ],
        });
        let response = self
            .http
            .post(&self.endpoint.url)
            .headers(self.endpoint.headers.clone())
            .timeout(TIMEOUT)
            .json(&body)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        let answer: Value = response.json().await.ok()?;
        let text = answer
            .pointer("/choices/0/message/content")?
            .as_str()?
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())?
            .trim_matches('"')
            .to_string();
        (!text.is_empty() && text.len() <= 1000).then_some(text)
    }
}
