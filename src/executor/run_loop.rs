//! One run, top to bottom: start, stage files, then call the model and run the tools it asks
//! for until it answers, needs the client's functions, or runs out of budget.

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::events::Emitter;
use super::model::{ModelError, Piece, ToolCall, Turn};
use super::prompt;
use super::record;
use super::tool_step::{CallKind, ToolStep};
use super::Inner;
use crate::auth::Project;
use crate::ids;
use crate::objects::run::{
    FunctionCall, FunctionToolCall, IncompleteDetails, LastError, RequiredAction, StepDetails,
    SubmitToolOutputs, Usage,
};
use crate::objects::tools::ToolResources;
use crate::objects::{Assistant, Run, RunStep, Thread};
use crate::store::{self, Kind};

const TOOL_CALLS_SPENT: &str =
    "This call was not run: the response reached its max_tool_calls limit. Answer without more tool calls.";

/// Why a run stopped before completing.
#[derive(Debug)]
pub enum Stop {
    Cancelled,
    /// The run disappeared (its thread was deleted) or another party finished it.
    Gone,
    Failed(LastError),
    Incomplete(&'static str),
}

/// How a run's execution ended when nothing stopped it.
enum Ending {
    Completed,
    RequiresAction,
}

/// What the run's tools draw on: the assistant's and the thread's `tool_resources`.
pub(super) struct Resources {
    pub assistant: ToolResources,
    pub thread: Thread,
}

pub(super) struct RunTask {
    pub(super) inner: Arc<Inner>,
    pub(super) project: Project,
    pub(super) run: Run,
    /// The sandbox session the run's code runs in: its thread's id, or a container's.
    pub(super) session: String,
    pub(super) emit: Emitter,
    pub(super) cancel: CancellationToken,
    /// The chat turns this run added before it was last claimed.
    pub(super) transcript: Vec<Value>,
    /// Images made since the last message, shown in the next one.
    pub(super) pending_images: Vec<String>,
    /// The file ids each file_search call of this run found, by call, for citations.
    pub(super) citations: Vec<Vec<String>>,
    /// The vector stores file_search searches (set when the run starts, if it has the tool).
    pub(super) vector_stores: Vec<String>,
    /// Code and search calls executed so far, against the run's `max_tool_calls`.
    pub(super) builtin_calls: u64,
}

impl RunTask {
    pub(super) async fn drive(mut self) {
        tracing::info!(thread_id = %self.run.thread_id, model = %self.run.model, "run started");
        let result = self.execute().await;
        if let Err(e) = self.finish(result).await {
            tracing::error!(run_id = %self.run.id, error = ?e, "could not record the end of a run");
        }
        self.emit.done();
    }

    async fn execute(&mut self) -> Result<Ending, Stop> {
        self.begin().await?;
        let history = record::history(&self.inner.db, &self.run.thread_id, &self.run.id)
            .await
            .map_err(internal)?;
        let context = record::context_items(&self.inner.db, &self.run.thread_id)
            .await
            .map_err(internal)?;
        let mut files = vec![];
        if self.run.uses_sandbox() || self.run.file_search().is_some() {
            let mut resources = self.resources().await?;
            if self.run.uses_sandbox() {
                files = self.stage_files(&history, &resources).await?;
            }
            if self.run.file_search().is_some() {
                self.vector_stores = self.search_stores(&history, &mut resources).await?;
            }
        }
        let images = self.image_urls(&history).await?;
        let budget = [
            self.run.max_prompt_tokens,
            self.inner.settings.context_tokens,
        ]
        .into_iter()
        .flatten()
        .min();
        let mut chat = prompt::conversation(
            &self.run,
            prompt::Thread {
                messages: &history,
                items: &context,
            },
            &files,
            images.as_ref(),
            &self.transcript,
            budget,
            self.inner.sandbox.network_enabled(),
        );
        self.add_skills_note(&mut chat).await?;

        for _ in 0..self.inner.settings.max_tool_rounds {
            let (turn, tools) = self.call_model(&chat).await?;
            let Some(mut tools) = tools else {
                return Ok(Ending::Completed);
            };
            let settled = self.settle_tool_step(&mut tools, &turn).await?;
            let mut added = vec![prompt::assistant_turn(&turn.text, &turn.tool_calls)];
            let mut functions = vec![];
            for (index, call) in turn.tool_calls.iter().enumerate() {
                self.release_call(&mut tools, index);
                let step = &mut tools.step;
                let output = match (settled.kinds[index], &settled.problems[index]) {
                    (CallKind::Function, _) => {
                        functions.push(call.clone());
                        continue;
                    }
                    (CallKind::Shell, _) if self.run.shell() != Some(true) => {
                        self.shell_called(step, index);
                        functions.push(call.clone());
                        continue;
                    }
                    (CallKind::Shell, Some(problem)) => {
                        self.refuse_shell(step, index, problem).await?
                    }
                    (CallKind::Shell, None) if self.tool_calls_spent() => {
                        self.refuse_shell(step, index, TOOL_CALLS_SPENT).await?
                    }
                    (_, Some(problem)) => self.refuse_call(step, index, problem).await?,
                    _ if self.tool_calls_spent() => {
                        self.refuse_call(step, index, TOOL_CALLS_SPENT).await?
                    }
                    (CallKind::Code, None) => self.run_code(step, index, call).await?,
                    (CallKind::Search, None) => self.run_search(step, index, call).await?,
                    (CallKind::Shell, None) => self.run_shell(step, index).await?,
                };
                self.builtin_calls += 1;
                added.push(prompt::tool_result(&call.id, &output));
            }
            record::append_transcript(&self.inner.db, &self.run.id, &added)
                .await
                .map_err(internal)?;
            if !functions.is_empty() {
                self.require_action(&functions);
                return Ok(Ending::RequiresAction);
            }
            self.complete_step(&mut tools.step, turn.usage).await?;
            chat.extend(added);
        }
        Err(Stop::Failed(LastError {
            code: "server_error".into(),
            message: format!(
                "The run made more than {} rounds of tool calls without answering.",
                self.inner.settings.max_tool_rounds
            ),
        }))
    }

    /// The tool resources of the run's assistant (none if it was deleted since) and its thread.
    async fn resources(&self) -> Result<Resources, Stop> {
        let db = &self.inner.db;
        let assistant_id = &self.run.assistant_id;
        let assistant =
            store::get::<Assistant>(db, Kind::Assistant, &self.project, assistant_id, &[])
                .await
                .map(|a| a.tool_resources)
                .unwrap_or_default();
        let thread = store::get(db, Kind::Thread, &self.project, &self.run.thread_id, &[])
            .await
            .map_err(|_| Stop::Gone)?;
        Ok(Resources { assistant, thread })
    }

    /// The claim already made the run `in_progress`; a cancel that came first stops it here.
    async fn begin(&mut self) -> Result<(), Stop> {
        self.cancelled()?;
        self.emit.emit("thread.run.in_progress", &self.run);
        Ok(())
    }

    /// One model turn. Text streams into an assistant message as it arrives, tool calls into
    /// a tool_calls step (returned open) as the model writes them; the final turn always
    /// leaves a message, even an empty one, so the answer has its step.
    async fn call_model(&mut self, chat: &[Value]) -> Result<(Turn, Option<ToolStep>), Stop> {
        let remaining = self
            .run
            .max_completion_tokens
            .map(|max| max.saturating_sub(self.usage().completion_tokens).max(1));
        let mut request = prompt::request(
            &self.run,
            chat.to_vec(),
            remaining,
            self.inner.sandbox.network_enabled(),
        );
        if self.tool_calls_spent() && request.get("tools").is_some() {
            request["tool_choice"] = "none".into();
        }
        let mut stream = self
            .inner
            .model
            .stream(&request, &self.cancel)
            .await
            .map_err(|e| model_stop(e, &self.run))?;
        let mut open = None;
        let mut said = String::new();
        let mut tools = None;
        loop {
            let piece = match stream.next(&self.cancel).await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(e) => {
                    let stop = model_stop(e, &self.run);
                    if let Some(m) = open {
                        self.abandon_message(m, &said, &stop).await?;
                    }
                    return Err(stop);
                }
            };
            match piece {
                // Text after the calls began stays in the transcript, as the model said it,
                // but the message it would continue is already closed.
                Piece::Text(_) if tools.is_some() => {}
                Piece::Text(text) => {
                    if open.is_none() {
                        open = Some(self.open_message().await?);
                    }
                    if let Some(m) = &open {
                        self.message_delta(m, &text);
                    }
                    said.push_str(&text);
                }
                Piece::CallBegun { id, name, .. } => {
                    // What the model said before calling a tool is a message of its own.
                    if let Some(m) = open.take() {
                        self.close_message(m, &said, None, None).await?;
                    }
                    self.call_begun(&mut tools, &id, &name).await?;
                }
                Piece::Arguments { index, fragment } => {
                    if let Some(tools) = tools.as_mut() {
                        self.call_arguments(tools, index, &fragment);
                    }
                }
            }
        }
        let turn = stream.finish();
        self.add_usage(turn.usage);
        let over_budget = self.over_budget(&turn);
        if open.is_none() && tools.is_none() {
            open = Some(self.open_message().await?);
        }
        if let Some(m) = open {
            let usage = tools.is_none().then_some(turn.usage);
            let incomplete = over_budget.map(|_| "max_tokens");
            self.close_message(m, &turn.text, usage, incomplete).await?;
        }
        match over_budget {
            Some(reason) => Err(Stop::Incomplete(reason)),
            None => Ok((turn, tools)),
        }
    }

    /// Whether the run made as many code and search calls as `max_tool_calls` allows.
    fn tool_calls_spent(&self) -> bool {
        self.run
            .max_tool_calls
            .is_some_and(|max| self.builtin_calls >= max)
    }

    fn over_budget(&self, turn: &Turn) -> Option<&'static str> {
        let usage = self.usage();
        if let Some(max) = self.run.max_prompt_tokens {
            if turn.usage.prompt_tokens > max {
                return Some("max_prompt_tokens");
            }
        }
        if let Some(max) = self.run.max_completion_tokens {
            if usage.completion_tokens >= max || turn.finish_reason.as_deref() == Some("length") {
                return Some("max_completion_tokens");
            }
        }
        None
    }

    pub(super) fn new_step(&self, details: StepDetails) -> RunStep {
        let kind = match details {
            StepDetails::MessageCreation { .. } => "message_creation",
            StepDetails::ToolCalls { .. } => "tool_calls",
        };
        RunStep {
            id: ids::new_id(ids::STEP),
            object: "thread.run.step".into(),
            created_at: ids::now(),
            run_id: self.run.id.clone(),
            assistant_id: self.run.assistant_id.clone(),
            thread_id: self.run.thread_id.clone(),
            kind: kind.into(),
            status: "in_progress".into(),
            cancelled_at: None,
            completed_at: None,
            expired_at: None,
            failed_at: None,
            last_error: None,
            step_details: details,
            usage: None,
            metadata: Default::default(),
        }
    }

    /// A `thread.run.step.delta` carrying one tool call's new content at `index`.
    pub(super) fn step_delta(&self, step: &RunStep, index: usize, mut call: Value) {
        if let Value::Object(o) = &mut call {
            o.insert("index".into(), Value::from(index));
        }
        self.emit.emit(
            "thread.run.step.delta",
            &serde_json::json!({
                "id": step.id,
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}
            }),
        );
    }

    pub(super) async fn complete_step(
        &mut self,
        step: &mut RunStep,
        usage: Usage,
    ) -> Result<(), Stop> {
        step.status = "completed".into();
        step.completed_at = Some(ids::now());
        step.usage = Some(usage);
        record::put_step(&self.inner.db, step)
            .await
            .map_err(internal)?;
        self.emit.emit("thread.run.step.completed", &*step);
        Ok(())
    }

    fn require_action(&mut self, calls: &[ToolCall]) {
        self.run.required_action = Some(RequiredAction {
            kind: "submit_tool_outputs".into(),
            submit_tool_outputs: SubmitToolOutputs {
                tool_calls: calls
                    .iter()
                    .map(|c| FunctionToolCall {
                        id: c.id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                        },
                    })
                    .collect(),
            },
        });
    }

    /// Records how the run ended and tells the client.
    async fn finish(&mut self, mut result: Result<Ending, Stop>) -> anyhow::Result<()> {
        if matches!(result, Err(Stop::Cancelled)) {
            // Cancelled because its container expired or was deleted: that is a failure.
            if let Err(expired) = self.use_container().await {
                result = Err(expired);
            }
        }
        if matches!(result, Err(Stop::Cancelled)) && self.inner.is_shutting_down() {
            result = Err(Stop::Failed(LastError {
                code: "server_error".into(),
                message: "The server shut down while this run was in progress.".into(),
            }));
        }
        let Some(mut event) = self.conclude(result) else {
            return Ok(());
        };
        let db = self.inner.db.clone();
        let db = &db;
        self.close_open_steps().await?;
        let mut written = record::finalize_run(db, &self.run, &["in_progress"]).await?;
        if !written && record::run_status(db, &self.run.id).await?.as_deref() == Some("cancelling")
        {
            // A cancel that arrived while the run was finishing still wins, as the client
            // expects; a failure stays a failure.
            if self.run.status != "failed" {
                event = self.conclude(Err(Stop::Cancelled)).unwrap_or(event);
                self.close_open_steps().await?;
            }
            written = record::finalize_run(db, &self.run, &["cancelling"]).await?;
        }
        if written {
            tracing::info!(status = %self.run.status, "run stopped");
            self.emit.emit(event, &self.run);
            crate::metrics::run_finished(&self.run);
        }
        Ok(())
    }

    /// Sets the run's status and timestamps for how it ended; returns the event to send, or
    /// `None` when the run is gone.
    fn conclude(&mut self, result: Result<Ending, Stop>) -> Option<&'static str> {
        let now = ids::now();
        let run = &mut self.run;
        run.completed_at = None;
        run.cancelled_at = None;
        run.failed_at = None;
        run.incomplete_details = None;
        run.last_error = None;
        let event = match result {
            Ok(Ending::Completed) => {
                run.status = "completed".into();
                run.completed_at = Some(now);
                "thread.run.completed"
            }
            Ok(Ending::RequiresAction) => {
                run.status = "requires_action".into();
                "thread.run.requires_action"
            }
            Err(Stop::Incomplete(reason)) => {
                run.status = "incomplete".into();
                run.incomplete_details = Some(IncompleteDetails {
                    reason: reason.into(),
                });
                "thread.run.incomplete"
            }
            Err(Stop::Cancelled) => {
                run.status = "cancelled".into();
                run.cancelled_at = Some(now);
                "thread.run.cancelled"
            }
            Err(Stop::Failed(error)) => {
                tracing::warn!(code = %error.code, message = %error.message, "run failed");
                run.status = "failed".into();
                run.failed_at = Some(now);
                run.last_error = Some(error);
                "thread.run.failed"
            }
            Err(Stop::Gone) => return None,
        };
        if run.is_terminal() {
            run.expires_at = None;
            run.required_action = None;
        }
        run.usage.get_or_insert_with(Usage::default);
        Some(event)
    }

    /// Steps a run left open end with it (a completed run or one waiting for tool outputs
    /// leaves none it should close).
    async fn close_open_steps(&self) -> anyhow::Result<()> {
        let status = match self.run.status.as_str() {
            "completed" | "requires_action" => return Ok(()),
            "cancelled" => "cancelled",
            _ => "failed",
        };
        record::close_open_steps(
            &self.inner.db,
            &self.run.id,
            status,
            ids::now(),
            self.run.last_error.as_ref(),
        )
        .await?;
        Ok(())
    }

    fn usage(&self) -> Usage {
        self.run.usage.unwrap_or_default()
    }

    fn add_usage(&mut self, usage: Usage) {
        self.run.usage.get_or_insert_with(Usage::default).add(usage);
    }

    pub(super) fn cancelled(&self) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            Err(Stop::Cancelled)
        } else {
            Ok(())
        }
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> Stop {
    tracing::error!(error = %e, "run failed on an internal error");
    Stop::Failed(LastError {
        code: "server_error".into(),
        message: "The server had an error while processing this run.".into(),
    })
}

fn model_stop(e: ModelError, run: &Run) -> Stop {
    match e {
        // Under `truncation: disabled` (a response's default) an input too long for the model
        // fails the response as OpenAI's does; an Assistants run reports its error codes only.
        ModelError::ContextExceeded(message) => Stop::Failed(LastError {
            code: if run.truncation_strategy.kind == "disabled" {
                "context_length_exceeded"
            } else {
                "server_error"
            }
            .into(),
            message,
        }),
        ModelError::Cancelled => Stop::Cancelled,
        ModelError::RateLimited(message) => Stop::Failed(LastError {
            code: "rate_limit_exceeded".into(),
            message,
        }),
        ModelError::Failed(message) => Stop::Failed(LastError {
            code: "server_error".into(),
            message,
        }),
    }
}
