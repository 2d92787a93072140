//! The Responses API's `shell` tool in the run loop. The model calls it as a function
//! (`commands`, `timeout_ms`, `max_output_length`); the step records a `shell` call. Hosted,
//! the commands run in the run's container (see `sandbox::shell`) and their outputs join the
//! call; local, the call goes to the client like a function call, and its
//! `shell_call_output` comes back as the next response's input.

use std::time::Duration;

use serde_json::{json, Value};

use super::code::sandbox_stop;
use super::events::SHELL_CALLED;
use super::run_loop::{internal, RunTask, Stop};
use crate::objects::run::{RunStep, StepDetails, StepToolCall};
use crate::sandbox::shell::ShellRequest;

/// Characters of stdout and stderr each command keeps when the call sets no limit.
const DEFAULT_MAX_OUTPUT_LENGTH: usize = 20_000;

/// The call's action from the model's arguments: `commands` (a list, or one string),
/// `timeout_ms` and `max_output_length` (positive integers or null), every key present.
pub(super) fn action(arguments: &str) -> Result<Value, String> {
    let args: Value = serde_json::from_str(arguments).map_err(|e| e.to_string())?;
    let commands: Vec<Value> = match &args["commands"] {
        Value::Array(list) if list.iter().all(Value::is_string) => list.clone(),
        Value::String(one) => vec![Value::from(one.as_str())],
        _ => return Err("'commands' must be a list of strings".into()),
    };
    if commands.is_empty() {
        return Err("'commands' is empty".into());
    }
    let positive = |key: &str| match &args[key] {
        Value::Null => Ok(Value::Null),
        v => match v.as_f64() {
            Some(n) if n >= 1.0 => Ok(Value::from(n as u64)),
            _ => Err(format!("'{key}' must be a positive integer")),
        },
    };
    Ok(json!({
        "commands": commands,
        "timeout_ms": positive("timeout_ms")?,
        "max_output_length": positive("max_output_length")?,
    }))
}

/// The action of a call whose arguments could not be read.
pub(super) fn empty_action() -> Value {
    json!({"commands": [], "timeout_ms": null, "max_output_length": null})
}

/// What the model reads of a shell call's outputs: per command, its output and how it ended.
pub(crate) fn result_text(commands: &[Value], outputs: &[Value]) -> String {
    let mut text = String::new();
    for (i, out) in outputs.iter().enumerate() {
        if let Some(cmd) = commands.get(i).and_then(Value::as_str) {
            text.push_str(&format!("$ {cmd}\n"));
        }
        for stream in ["stdout", "stderr"] {
            let s = out[stream].as_str().unwrap_or_default();
            if !s.is_empty() {
                if stream == "stderr" {
                    text.push_str("[stderr]\n");
                }
                text.push_str(s);
                if !s.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        match out["outcome"]["type"].as_str() {
            Some("timeout") => text.push_str("[timed out]\n"),
            _ => text.push_str(&format!(
                "[exit code {}]\n",
                out["outcome"]["exit_code"].as_i64().unwrap_or(0)
            )),
        }
    }
    text
}

impl RunTask {
    /// Where the run's shell calls run, as the `shell_call` item shows it.
    pub(super) fn shell_environment(&self) -> Value {
        match self.run.shell() {
            Some(true) => json!({"type": "container_reference", "container_id": self.session}),
            _ => json!({"type": "local"}),
        }
    }

    /// Tells the stream the call at `index` runs now (or goes to the client).
    pub(super) fn shell_called(&self, step: &RunStep, index: usize) {
        if let Some(call) = shell_call(step, index) {
            self.emit.emit(
                SHELL_CALLED,
                &json!({"step_id": step.id, "index": index,
                        "action": call.action, "environment": call.environment}),
            );
        }
    }

    /// Runs a hosted shell call in the run's container; records one output per command on
    /// the step and returns what the model reads.
    pub(super) async fn run_shell(
        &mut self,
        step: &mut RunStep,
        index: usize,
    ) -> Result<String, Stop> {
        let Some(call) = shell_call(step, index).cloned() else {
            return Err(internal("a shell call without its step"));
        };
        let commands: Vec<String> = call.action["commands"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        self.use_container().await?;
        self.shell_called(step, index);
        let max_chars = call.action["max_output_length"]
            .as_u64()
            .map_or(DEFAULT_MAX_OUTPUT_LENGTH, |n| n as usize);
        let request = ShellRequest {
            commands: &commands,
            timeout: call.action["timeout_ms"]
                .as_u64()
                .map(Duration::from_millis),
            max_chars,
        };
        let started = std::time::Instant::now();
        let out = self
            .inner
            .sandbox
            .run_shell(&self.session, request, &self.cancel)
            .await
            .map_err(sandbox_stop)?;
        self.executed(started).await?;
        self.record_file_changes(&out.files, &out.removed).await?;
        let outputs: Vec<Value> = out
            .commands
            .iter()
            .map(|c| json!({"stdout": c.stdout, "stderr": c.stderr, "outcome": c.outcome}))
            .collect();
        let mut result = result_text(
            call.action["commands"].as_array().map_or(&[], |v| v),
            &outputs,
        );
        if !out.files.is_empty() {
            let paths: Vec<&str> = out.files.iter().map(|f| f.path.as_str()).collect();
            result.push_str(&format!("[files written: {}]\n", paths.join(", ")));
        }
        self.record_shell_output(step, index, outputs).await?;
        Ok(result)
    }

    /// A hosted call whose arguments could not be read: nothing runs; its one output says why.
    pub(super) async fn refuse_shell(
        &mut self,
        step: &mut RunStep,
        index: usize,
        problem: &str,
    ) -> Result<String, Stop> {
        self.shell_called(step, index);
        let output = json!({"stdout": "", "stderr": problem,
                            "outcome": {"type": "exit", "exit_code": 2}});
        self.record_shell_output(step, index, vec![output]).await?;
        Ok(problem.to_string())
    }

    async fn record_shell_output(
        &mut self,
        step: &mut RunStep,
        index: usize,
        outputs: Vec<Value>,
    ) -> Result<(), Stop> {
        if let StepDetails::ToolCalls { tool_calls } = &mut step.step_details {
            if let Some(StepToolCall::Shell { shell, .. }) = tool_calls.get_mut(index) {
                shell.output = Some(outputs.clone());
            }
        }
        super::record::put_step(&self.inner.db, step)
            .await
            .map_err(internal)?;
        // No `id`: a delta with one is a call's first.
        self.step_delta(
            step,
            index,
            json!({"type": "shell", "shell": {"output": outputs}}),
        );
        Ok(())
    }
}

fn shell_call(step: &RunStep, index: usize) -> Option<&crate::objects::run::ShellCall> {
    match &step.step_details {
        StepDetails::ToolCalls { tool_calls } => match tool_calls.get(index) {
            Some(StepToolCall::Shell { shell, .. }) => Some(shell),
            _ => None,
        },
        _ => None,
    }
}
