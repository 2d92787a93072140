//! Compaction (`POST /v1/responses/compact` and `context_management`): a model context
//! replaced by one summary, made by one call to the chat upstream, carried in a `compaction`
//! item. The item is self-contained: its `encrypted_content` is the summary itself, encoded
//! (base64 of a small JSON document), not encrypted, so that it works with `store: false` and
//! across servers, and nothing is kept for it. Passed back as input, it becomes an assistant
//! message holding the summary.

use base64::Engine;
use serde_json::{json, Value};

use crate::domain::messages::{self, text};
use crate::error::{ApiError, ApiResult};
use crate::executor::model::ModelError;
use crate::executor::Executor;
use crate::ids;
use crate::objects::run::Usage;
use crate::objects::Message;

/// The id prefix of a compaction item.
pub const COMPACTION: &str = "cmp_";
/// `context_management` thresholds below this are refused, as OpenAI does.
pub const MIN_THRESHOLD: u64 = 1000;

const FORMAT: &str = "assistd.compaction.v1";

const INSTRUCTIONS: &str = "You compact a conversation between a user and an AI assistant. The \
conversation will continue from your summary alone, so write down everything the assistant needs: what the \
user asked for and why, facts and numbers established, decisions made, code that was run and what it \
produced (variables, files, results), and what is still to do. Be concise; answer with the summary only.";

/// The summary a compaction item carries (its `encrypted_content`); `param` names it in errors.
pub fn decode(content: &str, param: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::invalid_code(
            param,
            "invalid_encrypted_content",
            format!("Invalid '{param}': not a compaction made by this server."),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content)
        .map_err(|_| bad())?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    match (doc["format"].as_str(), doc["summary"].as_str()) {
        (Some(FORMAT), Some(summary)) => Ok(summary.to_string()),
        _ => Err(bad()),
    }
}

fn encode(summary: &str) -> String {
    let doc = json!({"format": FORMAT, "summary": summary});
    base64::engine::general_purpose::STANDARD.encode(doc.to_string())
}

/// A `compaction` item carrying `summary`.
pub fn item(id: &str, summary: &str) -> Value {
    json!({"type": "compaction", "id": id, "encrypted_content": encode(summary)})
}

/// The summary as the thread message the model reads in its place.
pub fn message(thread_id: &str, summary: &str) -> Message {
    messages::given(
        thread_id,
        "assistant".into(),
        vec![text(format!(
            "(Summary of the conversation so far.)\n{summary}"
        ))],
        vec![],
        Default::default(),
    )
}

/// The user messages of a model context, as message items (a compaction keeps them).
pub fn user_messages(chat: &[Value]) -> Vec<Value> {
    chat.iter()
        .filter(|m| m["role"] == "user")
        .map(|m| {
            json!({"type": "message", "id": ids::new_id(ids::MESSAGE), "role": "user",
                   "status": "completed",
                   "content": [{"type": "input_text", "text": message_text(m)}]})
        })
        .collect()
}

/// A compaction item summarising `chat` (a model context), by one call to `model`.
pub async fn summarise(
    executor: &Executor,
    model: &str,
    chat: &[Value],
) -> ApiResult<(Value, Usage)> {
    let transcript: Vec<String> = chat
        .iter()
        .filter(|m| m["role"] != "system")
        .map(render)
        .collect();
    let messages = vec![
        json!({"role": "system", "content": INSTRUCTIONS}),
        json!({"role": "user", "content": format!("The conversation:\n\n{}", transcript.join("\n\n"))}),
    ];
    let (summary, usage) = executor
        .complete(model, messages)
        .await
        .map_err(|e| match e {
            ModelError::ContextExceeded(_) => ApiError::invalid_code(
                "input",
                "context_length_exceeded",
                "The conversation to compact exceeds the context window of this model.",
            ),
            other => ApiError::Internal(anyhow::anyhow!("compaction call failed: {other:?}")),
        })?;
    Ok((item(&ids::new_id(COMPACTION), &summary), usage))
}

fn message_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// One chat message as a line of the transcript the summariser reads.
fn render(m: &Value) -> String {
    let role = m["role"].as_str().unwrap_or("user");
    let mut out = format!("{role}: {}", message_text(m));
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n[called {} with {}]",
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_carries_its_summary_and_only_ours_decode() {
        let item = item("cmp_1", "The user likes teal.");
        let content = item["encrypted_content"].as_str().unwrap();
        assert!(!content.contains("teal"));
        assert_eq!(decode(content, "input[0]").unwrap(), "The user likes teal.");
        let foreign = base64::engine::general_purpose::STANDARD.encode(r#"{"summary": "x"}"#);
        for bad in ["not base64!", "aGVsbG8=", foreign.as_str()] {
            let e = decode(bad, "input[0].encrypted_content").unwrap_err();
            assert_eq!(e.body()["error"]["code"], "invalid_encrypted_content");
        }
    }

    #[test]
    fn the_transcript_names_calls_and_keeps_user_messages() {
        let chat = vec![
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": [{"type": "text", "text": "Plot x"}]}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "code_interpreter", "arguments": "{\"code\":\"1\"}"}}]}),
        ];
        assert_eq!(
            render(&chat[2]),
            "assistant: \n[called code_interpreter with {\"code\":\"1\"}]"
        );
        let kept = user_messages(&chat);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["content"][0]["text"], "Plot x");
    }
}
