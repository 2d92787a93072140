//! The code_interpreter tool: files copied into the thread's sandbox, code run there, and
//! its logs and images turned into step outputs and a result for the model.

use std::collections::HashSet;

use super::model::ToolCall;
use super::prompt::{self, StagedFile};
use super::run_loop::{internal, Resources, RunTask, Stop};
use crate::blobs::Key;
use crate::domain::files::store_generated;
use crate::objects::file::ASSISTANTS_OUTPUT;
use crate::objects::message::AttachmentTool;
use crate::objects::run::{CodeOutput, ImageRef, LastError, RunStep, StepDetails, StepToolCall};
use crate::objects::Message;

/// How much of a cell's output goes back to the model.
const MAX_RESULT_CHARS: usize = 20_000;

impl RunTask {
    /// Copies the assistant's and thread's code_interpreter files and the thread's attachments
    /// into /mnt/data, once per sandbox session.
    pub(super) async fn stage_files(
        &mut self,
        history: &[Message],
        resources: &Resources,
    ) -> Result<Vec<StagedFile>, Stop> {
        let db = &self.inner.db;
        let mut wanted: Vec<String> = vec![];
        wanted.extend(
            resources
                .assistant
                .code_interpreter_file_ids()
                .iter()
                .cloned(),
        );
        let thread = &resources.thread.tool_resources;
        wanted.extend(thread.code_interpreter_file_ids().iter().cloned());
        for message in history {
            for a in &message.attachments {
                if a.tools.is_empty() || a.tools.contains(&AttachmentTool::CodeInterpreter) {
                    wanted.push(a.file_id.clone());
                }
            }
        }
        let mut seen = HashSet::new();
        wanted.retain(|id| seen.insert(id.clone()));
        if wanted.is_empty() {
            return Ok(vec![]);
        }

        self.use_container().await?;
        let session = self.session.clone();
        let list = self
            .inner
            .staged
            .lock()
            .map_err(|_| internal("staged files poisoned"))?
            .entry(session.clone())
            .or_default()
            .clone();
        let mut known = list.lock().await;
        if !self.inner.sandbox.has_session(&session).await {
            known.clear();
        }
        let mut files = vec![];
        for file_id in wanted {
            if let Some(f) = known.iter().find(|f| f.file_id == file_id) {
                files.push(f.clone());
                continue;
            }
            // A file deleted or expired since it was attached is skipped, not fatal.
            let Ok(file) = crate::domain::files::get_live(db, &self.project, &file_id).await else {
                continue;
            };
            let bytes = self
                .inner
                .blobs
                .read(&Key::file(&file_id))
                .await
                .map_err(internal)?;
            let path = self
                .inner
                .sandbox
                .put_file(&session, &file.filename, &bytes)
                .await
                .map_err(sandbox_stop)?;
            let f = StagedFile { file_id, path };
            known.push(f.clone());
            files.push(f);
        }
        Ok(files)
    }

    /// Runs one code call and records its outputs on the step; returns what the model reads.
    pub(super) async fn run_code(
        &mut self,
        step: &mut RunStep,
        index: usize,
        call: &ToolCall,
    ) -> Result<String, Stop> {
        // The code the stream showed and the step recorded is what runs.
        let code = match &step.step_details {
            StepDetails::ToolCalls { tool_calls } => match tool_calls.get(index) {
                Some(StepToolCall::CodeInterpreter {
                    code_interpreter, ..
                }) => code_interpreter.input.clone(),
                _ => prompt::code_of(&call.arguments),
            },
            _ => prompt::code_of(&call.arguments),
        };
        self.use_container().await?;
        self.emit.emit(
            super::events::CODE_STARTED,
            &serde_json::json!({"step_id": step.id, "index": index}),
        );
        let started = std::time::Instant::now();
        let out = self
            .inner
            .sandbox
            .exec(&self.session, &code, &self.cancel)
            .await
            .map_err(sandbox_stop)?;
        self.executed(started).await?;

        let mut outputs = vec![];
        let logs = out.logs();
        if !logs.is_empty() {
            outputs.push(CodeOutput::Logs { logs: logs.clone() });
        }
        let mut result = logs;
        if let Some(note) = &out.restore_note {
            // Before this output, the model learns which variables and files came back.
            result = format!("{note}\n\n{result}");
        }
        for (n, png) in out.images.iter().enumerate() {
            let name = format!("{}-{}.png", call.id, n + 1);
            let file = store_generated(
                &self.inner.db,
                &self.inner.blobs,
                &self.project,
                &name,
                ASSISTANTS_OUTPUT,
                png,
            )
            .await
            .map_err(internal)?;
            result.push_str(&format!("\n[image {} shown to the user]", file.id));
            self.pending_images.push(file.id.clone());
            outputs.push(CodeOutput::Image {
                image: ImageRef { file_id: file.id },
            });
        }
        self.record_file_changes(&out.files, &out.removed).await?;
        if !out.files.is_empty() {
            let paths: Vec<&str> = out.files.iter().map(|f| f.path.as_str()).collect();
            result.push_str(&format!("\n[files written: {}]", paths.join(", ")));
        }
        if result.trim().is_empty() {
            result = "(no output)".into();
        }

        if let StepDetails::ToolCalls { tool_calls } = &mut step.step_details {
            if let Some(StepToolCall::CodeInterpreter {
                code_interpreter, ..
            }) = tool_calls.get_mut(index)
            {
                code_interpreter.outputs = outputs.clone();
            }
        }
        super::record::put_step(&self.inner.db, step)
            .await
            .map_err(internal)?;
        self.code_outputs_delta(step, index, &outputs);
        Ok(truncate(result, MAX_RESULT_CHARS))
    }
}

impl RunTask {
    /// The run's code runs in a container's session rather than its thread's.
    pub(super) fn in_container(&self) -> bool {
        self.session != self.run.thread_id
    }

    /// After an execution in the session's sandbox (a cell or a shell call) started at
    /// `started`: its time counted, the session placed here (its next runs come to this
    /// replica), and the run stopped if it was cancelled meanwhile.
    pub(super) async fn executed(&self, started: std::time::Instant) -> Result<(), Stop> {
        crate::metrics::code_executed(started.elapsed());
        let (db, me) = (&self.inner.db, &self.inner.worker_id);
        if let Err(e) = super::placement::place(db, &self.session, me).await {
            tracing::warn!(error = %e, "could not record where the sandbox session lives");
        }
        self.cancelled()
    }

    /// What an execution wrote and removed under /mnt/data becomes (or stops being) the
    /// container's files; a thread's session keeps no file list.
    pub(super) async fn record_file_changes(
        &self,
        written: &[crate::sandbox::ChangedFile],
        removed: &[String],
    ) -> Result<(), Stop> {
        if !self.in_container() {
            return Ok(());
        }
        let (db, blobs, sandbox) = (&self.inner.db, &self.inner.blobs, &self.inner.sandbox);
        if !written.is_empty() {
            crate::domain::containers::files::record_written(
                db,
                blobs,
                sandbox,
                &self.project,
                &self.session,
                written,
            )
            .await
            .map_err(internal)?;
        }
        if !removed.is_empty() {
            crate::domain::containers::files::record_removed(db, blobs, &self.session, removed)
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    /// Before a container's session is used: the container must still be usable (it is
    /// refreshed, and its sandbox gets its memory limit); else the run fails.
    pub(super) async fn use_container(&self) -> Result<(), Stop> {
        if !self.in_container() {
            self.give_thread_network().await;
            return Ok(());
        }
        let (db, blobs, sandbox) = (&self.inner.db, &self.inner.blobs, &self.inner.sandbox);
        let usable = crate::domain::containers::use_session(db, blobs, sandbox, &self.session)
            .await
            .map_err(internal)?;
        if usable {
            return Ok(());
        }
        Err(Stop::Failed(LastError {
            code: "container_expired".into(),
            message: format!(
                "Container '{}' has expired or was deleted; its code cannot run.",
                self.session
            ),
        }))
    }
}

impl RunTask {
    /// A thread's session takes the network policy of the run's assistant (its metadata's
    /// `network_policy`), or the operator's widest when it names none. A policy the operator no
    /// longer allows counts as `disabled`.
    async fn give_thread_network(&self) {
        use crate::domain::containers::network;
        let metadata: Option<sqlx::types::Json<crate::validate::Metadata>> =
            sqlx::query_scalar("SELECT data->'metadata' FROM assistants WHERE id = $1")
                .bind(&self.run.assistant_id)
                .fetch_optional(&self.inner.db)
                .await
                .ok()
                .flatten();
        let sandbox = &self.inner.sandbox;
        let policy = match metadata {
            None => None,
            Some(m) => network::from_assistant_metadata(&m.0, sandbox.network_ceiling())
                .unwrap_or(Some(crate::sandbox::egress::EgressPolicy::Disabled)),
        };
        if policy.is_none() && sandbox.network_policy(&self.run.thread_id).is_none() {
            return; // the widest already, with nothing to remember
        }
        sandbox.set_network_policy(&self.run.thread_id, policy);
    }
}

fn truncate(mut s: String, max_chars: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max_chars) {
        s.truncate(cut);
        s.push_str("\n[output truncated]");
    }
    s
}

pub(super) fn sandbox_stop(e: crate::sandbox::SandboxError) -> Stop {
    if matches!(e, crate::sandbox::SandboxError::Cancelled) {
        return Stop::Cancelled;
    }
    tracing::error!(error = %e, "sandbox failure");
    Stop::Failed(LastError {
        code: "server_error".into(),
        message: format!("The code interpreter is unavailable: {e}"),
    })
}
