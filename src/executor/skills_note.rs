//! The model is told the skills of the container its code runs in: each one's name,
//! description and path, after the instructions (as OpenAI adds them to the prompt).

use serde_json::{json, Value};

use super::run_loop::{internal, RunTask, Stop};
use crate::domain::skills::attach;

impl RunTask {
    pub(super) async fn add_skills_note(&self, chat: &mut Vec<Value>) -> Result<(), Stop> {
        // A thread's own session has no skills; a container's may.
        if self.session == self.run.thread_id {
            return Ok(());
        }
        let skills = attach::of_container(&self.inner.db, &self.session)
            .await
            .map_err(internal)?;
        let Some(note) = attach::context_note(&skills) else {
            return Ok(());
        };
        match chat.first_mut() {
            Some(first) if first["role"] == "system" && first["content"].is_string() => {
                let text = first["content"].as_str().unwrap_or_default();
                first["content"] = Value::String(format!("{text}\n\n{note}"));
            }
            _ => chat.insert(0, json!({"role": "system", "content": note})),
        }
        Ok(())
    }
}
