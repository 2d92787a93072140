//! The context a run would open with, without running it: counted for
//! `POST /v1/responses/input_tokens` and `context_management`, and summarised by one model
//! call for compaction.

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::model::ModelError;
use super::{prompt, record, Executor};
use crate::objects::run::Usage;
use crate::objects::{Message, Run};

impl Executor {
    /// The chat messages `run` would open with on `thread` (its messages and context items so
    /// far, if any, then `added` and `added_items`), and after them `transcript`: as the run
    /// loop builds them, without truncation.
    pub async fn opening_context(
        &self,
        run: &Run,
        thread: Option<&str>,
        added: &[Message],
        added_items: &[(Option<String>, Value)],
        transcript: &[Value],
    ) -> sqlx::Result<Vec<Value>> {
        let (mut history, mut items) = match thread {
            Some(t) => (
                record::history(&self.inner.db, t, &run.id).await?,
                record::context_items(&self.inner.db, t).await?,
            ),
            None => (vec![], vec![]),
        };
        history.extend_from_slice(added);
        items.extend_from_slice(added_items);
        Ok(prompt::conversation(
            run,
            prompt::Thread {
                messages: &history,
                items: &items,
            },
            &[],
            None,
            transcript,
            None,
            self.inner.sandbox.network_enabled(),
        ))
    }

    /// The prompt tokens of an opening context with `run`'s tools, estimated as `auto`
    /// truncation counts them (a token per three bytes of text, a thousand an image).
    pub fn count_tokens(&self, run: &Run, chat: &[Value]) -> u64 {
        prompt::estimate(run, chat, self.inner.sandbox.network_enabled())
    }

    /// One streamed call to `model`'s upstream with `messages` and no tools: its whole text.
    pub async fn complete(
        &self,
        model: &str,
        messages: Vec<Value>,
    ) -> Result<(String, Usage), ModelError> {
        let request = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        let cancel = CancellationToken::new();
        let mut stream = self.inner.model.stream(&request, &cancel).await?;
        while stream.next(&cancel).await?.is_some() {}
        let turn = stream.finish();
        Ok((turn.text, turn.usage))
    }
}
