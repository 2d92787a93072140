//! Embeddings from an OpenAI-compatible `POST /embeddings` (OpenAI, Azure, Ollama, vLLM, TEI
//! serve it). Vectors come back scaled to unit length, so a dot product is their cosine.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::json;

/// Inputs per request: OpenAI takes up to 2048; smaller batches keep one slow request short.
const BATCH: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(120);

/// Where and how to ask for embeddings: the URL and headers of the upstream serving the
/// model (found by the same routing as chat models).
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub headers: HeaderMap,
    /// The upstream's key, scrubbed from any message it echoes back.
    pub secret: String,
    /// What logs and errors call the upstream.
    pub upstream: String,
}

/// An embedding model on its upstream.
#[derive(Clone)]
pub struct Embedder {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// The model newly indexed stores use (a store keeps the model it was indexed with).
    pub model: String,
    /// `dimensions` sent with each request; 0 sends none (the model's own size).
    pub dimensions: u32,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("url", &self.endpoint.url)
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

/// Why no vectors came back: the upstream's answer, for a file's `last_error`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// `rate_limit_exceeded` for a 429, else `server_error` (OpenAI's `last_error` codes).
    pub code: &'static str,
    pub message: String,
    /// The upstream answered 404: it serves no such model (or no `/embeddings` at all), as a
    /// chat-only upstream does.
    pub unserved: bool,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl Embedder {
    pub fn new(http: reqwest::Client, endpoint: Endpoint, model: String, dimensions: u32) -> Self {
        Self {
            http,
            endpoint,
            model,
            dimensions,
        }
    }

    pub fn upstream(&self) -> &str {
        &self.endpoint.upstream
    }

    /// The unit vectors of `texts`, in order, from `model` at `dimensions` (0: the model's
    /// own size). Every vector has the same length.
    pub async fn embed(
        &self,
        model: &str,
        dimensions: u32,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, Refusal> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.embed_batch(model, dimensions, batch).await?);
        }
        if let Some(first) = out.first() {
            let n = first.len();
            if n == 0 || out.iter().any(|v| v.len() != n) {
                return Err(self.refusal(
                    "server_error",
                    format!("The embedding model '{model}' answered vectors of differing or zero length."),
                ));
            }
        }
        Ok(out)
    }

    async fn embed_batch(
        &self,
        model: &str,
        dimensions: u32,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, Refusal> {
        let mut body = json!({"model": model, "input": texts, "encoding_format": "float"});
        if dimensions > 0 {
            body["dimensions"] = json!(dimensions);
        }
        let sent = self
            .http
            .post(&self.endpoint.url)
            .headers(self.endpoint.headers.clone())
            .timeout(TIMEOUT)
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(self.refusal(
                    "server_error",
                    format!(
                        "The embedding upstream could not be reached: {}",
                        e.without_url()
                    ),
                ))
            }
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            let code = if status.as_u16() == 429 {
                "rate_limit_exceeded"
            } else {
                "server_error"
            };
            let mut refusal = self.refusal(
                code,
                format!(
                    "The embedding model '{model}' refused the request ({}): {detail}",
                    status.as_u16()
                ),
            );
            refusal.unserved = status.as_u16() == 404;
            return Err(refusal);
        }
        let answer: Answer = match response.json().await {
            Ok(a) => a,
            Err(_) => {
                return Err(self.refusal(
                    "server_error",
                    format!(
                        "The embedding model '{model}' answered something other than embeddings."
                    ),
                ))
            }
        };
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in answer.data {
            if let Some(slot) = vectors.get_mut(item.index) {
                *slot = Some(unit(item.embedding));
            }
        }
        vectors.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
            self.refusal(
                "server_error",
                format!(
                    "The embedding model '{model}' answered fewer embeddings than it was sent texts."
                ),
            )
        })
    }

    fn refusal(&self, code: &'static str, message: String) -> Refusal {
        let message = if self.endpoint.secret.len() >= 4 {
            message.replace(&self.endpoint.secret, "<redacted>")
        } else {
            message
        };
        tracing::warn!(upstream = %self.endpoint.upstream, %message, "embeddings failed");
        Refusal {
            code,
            message,
            unserved: false,
        }
    }
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_scaled_to_unit_length() {
        assert_eq!(unit(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(unit(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
