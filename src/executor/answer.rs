//! The assistant's messages: opened when the model starts talking, streamed as deltas, and
//! closed with `file_path` annotations over sandbox links and the run's images.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use super::annotate::{citation_marks, sandbox_links};
use super::run_loop::{internal, RunTask, Stop};
use crate::domain::files::store_generated;
use crate::ids;
use crate::objects::file::ASSISTANTS_OUTPUT;
use crate::objects::message::{Annotation, Content, FileRef, ImageFile, Text};
use crate::objects::run::{MessageCreation, StepDetails, Usage};
use crate::objects::{Message, RunStep};

/// Largest file a link in an answer may bring back from the sandbox.
const MAX_LINKED_FILE: u64 = 512 * 1024 * 1024;

pub(super) struct OpenMessage {
    message: Message,
    step: RunStep,
}

impl RunTask {
    pub(super) async fn open_message(&mut self) -> Result<OpenMessage, Stop> {
        let message = Message {
            id: ids::new_id(ids::MESSAGE),
            object: "thread.message".into(),
            created_at: ids::now(),
            thread_id: self.run.thread_id.clone(),
            status: "in_progress".into(),
            incomplete_details: None,
            completed_at: None,
            incomplete_at: None,
            role: "assistant".into(),
            content: vec![],
            assistant_id: Some(self.run.assistant_id.clone()),
            run_id: Some(self.run.id.clone()),
            attachments: vec![],
            metadata: Default::default(),
        };
        let step = self.new_step(StepDetails::MessageCreation {
            message_creation: MessageCreation {
                message_id: message.id.clone(),
            },
        });
        let db = &self.inner.db;
        record_step_and_message(db, &self.project, &step, &message).await?;
        self.inner.cache.invalidate(&message.thread_id);
        self.emit.emit("thread.run.step.created", &step);
        self.emit.emit("thread.run.step.in_progress", &step);
        self.emit.emit("thread.message.created", &message);
        self.emit.emit("thread.message.in_progress", &message);
        Ok(OpenMessage { message, step })
    }

    pub(super) fn message_delta(&self, open: &OpenMessage, text: &str) {
        self.content_delta(
            &open.message.id,
            json!({"index": 0, "type": "text", "text": {"value": text, "annotations": []}}),
        );
    }

    /// A `thread.message.delta` carrying one content part's new piece.
    fn content_delta(&self, message_id: &str, part: serde_json::Value) {
        self.emit.emit(
            "thread.message.delta",
            &json!({"id": message_id, "object": "thread.message.delta", "delta": {"content": [part]}}),
        );
    }

    /// Finishes a message: its text with annotations, then the images made since the last one.
    pub(super) async fn close_message(
        &mut self,
        open: OpenMessage,
        text: &str,
        usage: Option<Usage>,
        incomplete: Option<&'static str>,
    ) -> Result<(), Stop> {
        let OpenMessage {
            mut message,
            mut step,
        } = open;
        let annotations = self.annotate(text).await?;
        if !annotations.is_empty() {
            // Every entry of a delta array carries its `index` (the SDKs' accumulators need it).
            let indexed: Vec<serde_json::Value> = annotations
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let mut v = serde_json::to_value(a).unwrap_or_default();
                    v["index"] = json!(i);
                    v
                })
                .collect();
            self.content_delta(
                &message.id,
                json!({"index": 0, "type": "text", "text": {"annotations": indexed}}),
            );
        }
        message.content.push(Content::Text {
            text: Text {
                value: text.to_string(),
                annotations,
            },
        });
        for file_id in std::mem::take(&mut self.pending_images) {
            let image_file = ImageFile {
                file_id,
                detail: None,
            };
            self.content_delta(
                &message.id,
                json!({"index": message.content.len(), "type": "image_file", "image_file": image_file}),
            );
            message.content.push(Content::ImageFile { image_file });
        }
        let now = ids::now();
        match incomplete {
            Some(reason) => {
                message.status = "incomplete".into();
                message.incomplete_at = Some(now);
                message.incomplete_details = Some(json!({ "reason": reason }));
            }
            None => {
                message.status = "completed".into();
                message.completed_at = Some(now);
            }
        }
        super::record::put_message(&self.inner.db, &self.inner.cache, &message)
            .await
            .map_err(internal)?;
        self.emit.emit("thread.message.completed", &message);
        self.complete_step(&mut step, usage.unwrap_or_default())
            .await
    }

    /// Leaves a message the run could not finish `incomplete`, with what was said so far; its
    /// step is closed with the run.
    pub(super) async fn abandon_message(
        &mut self,
        open: OpenMessage,
        text: &str,
        why: &Stop,
    ) -> Result<(), Stop> {
        let OpenMessage { mut message, .. } = open;
        let reason = match why {
            Stop::Cancelled => "run_cancelled",
            _ => "run_failed",
        };
        message.content = vec![crate::domain::messages::text(text.to_string())];
        message.status = "incomplete".into();
        message.incomplete_at = Some(ids::now());
        message.incomplete_details = Some(json!({ "reason": reason }));
        super::record::put_message(&self.inner.db, &self.inner.cache, &message)
            .await
            .map_err(internal)?;
        self.emit.emit("thread.message.incomplete", &message);
        Ok(())
    }

    /// A `file_citation` annotation for every citation mark of a result this run found, and
    /// a `file_path` annotation for every `sandbox:/mnt/data/...` link whose file exists; each
    /// file is copied out of the sandbox once per message.
    async fn annotate(&mut self, text: &str) -> Result<Vec<Annotation>, Stop> {
        let mut annotations: Vec<Annotation> = citation_marks(text)
            .into_iter()
            .filter_map(|mark| {
                let file_id = self.citations.get(mark.call)?.get(mark.index)?;
                Some(Annotation::FileCitation {
                    text: mark.text,
                    start_index: mark.start_index,
                    end_index: mark.end_index,
                    file_citation: FileRef {
                        file_id: file_id.clone(),
                    },
                })
            })
            .collect();
        let links = sandbox_links(text);
        if links.is_empty() || !self.run.uses_sandbox() {
            return Ok(annotations);
        }
        let mut stored: HashMap<String, Option<String>> = HashMap::new();
        for link in links {
            if !stored.contains_key(&link.path) {
                let file_id = self.copy_out(&link.path).await?;
                stored.insert(link.path.clone(), file_id);
            }
            if let Some(Some(file_id)) = stored.get(&link.path) {
                annotations.push(Annotation::FilePath {
                    text: link.text,
                    start_index: link.start_index,
                    end_index: link.end_index,
                    file_path: FileRef {
                        file_id: file_id.clone(),
                    },
                });
            }
        }
        annotations.sort_by_key(|a| match a {
            Annotation::FilePath { start_index, .. }
            | Annotation::FileCitation { start_index, .. } => *start_index,
        });
        Ok(annotations)
    }

    async fn copy_out(&self, path: &str) -> Result<Option<String>, Stop> {
        let bytes = match self
            .inner
            .sandbox
            .read_file(&self.session, path, MAX_LINKED_FILE)
            .await
        {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(run_id = %self.run.id, path, error = %e, "could not copy a linked file out of the sandbox");
                return Ok(None);
            }
        };
        let filename = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let file = store_generated(
            &self.inner.db,
            &self.inner.blobs,
            &self.project,
            filename,
            ASSISTANTS_OUTPUT,
            &bytes,
        )
        .await
        .map_err(internal)?;
        Ok(Some(file.id))
    }
}

async fn record_step_and_message(
    db: &sqlx::PgPool,
    project: &crate::auth::Project,
    step: &RunStep,
    message: &Message,
) -> Result<(), Stop> {
    crate::domain::messages::insert(db, project, message)
        .await
        .map_err(internal)?;
    super::record::insert_step(db, project, step)
        .await
        .map_err(internal)
}
