//! `truncation_strategy: auto`: the thread is cut to its newest messages that fit the run's
//! prompt budget (`max_prompt_tokens`, or the model's context as configured), as OpenAI does,
//! instead of sending a long thread whole and failing upstream.

use serde_json::Value;

/// What one image is counted as (OpenAI bills a high-detail tile at 170 + 85; a few tiles).
const IMAGE_TOKENS: u64 = 1000;
/// Role and framing of one chat message.
const MESSAGE_TOKENS: u64 = 4;

/// A rough token count for a chat message, on the high side: one token per three bytes of text
/// (English averages four characters a token; other scripts have more bytes a character).
pub fn estimate(message: &Value) -> u64 {
    let text = |s: &str| s.len() as u64 / 3 + 1;
    let content = match message.get("content") {
        Some(Value::String(s)) => text(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("image_url") => IMAGE_TOKENS,
                _ => p.get("text").and_then(Value::as_str).map_or(0, text),
            })
            .sum(),
        _ => 0,
    };
    // Tool calls count by their serialized size.
    let calls = message
        .get("tool_calls")
        .map_or(0, |c| text(&c.to_string()));
    MESSAGE_TOKENS + content + calls
}

/// How many of `messages` (oldest first) to keep, counting back from the newest, so that they
/// and `fixed` tokens fit in `budget`. The newest message is always kept.
pub fn fit(fixed: u64, messages: &[Value], budget: u64) -> usize {
    let mut used = fixed;
    let mut keep = 0;
    for message in messages.iter().rev() {
        used += estimate(message);
        if used > budget && keep > 0 {
            break;
        }
        keep += 1;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn text_counts_a_token_per_three_bytes_and_images_a_thousand() {
        assert_eq!(estimate(&user(&"x".repeat(300))), 4 + 101);
        let parts = json!({"role": "user", "content": [
            {"type": "text", "text": "abc"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "A".repeat(100_000))}}
        ]});
        assert_eq!(estimate(&parts), 4 + 2 + 1000);
    }

    #[test]
    fn the_newest_messages_that_fit_are_kept_and_always_the_last() {
        let messages: Vec<Value> = (0..10).map(|_| user(&"x".repeat(297))).collect(); // 104 each
        assert_eq!(fit(0, &messages, 10_000), 10);
        assert_eq!(fit(0, &messages, 312), 3);
        assert_eq!(fit(100, &messages, 312), 2);
        assert_eq!(
            fit(5_000, &messages, 312),
            1,
            "the newest message always goes"
        );
    }
}
