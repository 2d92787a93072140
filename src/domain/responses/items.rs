//! Output items of the Responses API made from what the run loop records: an assistant
//! message becomes a `message` item, each tool call of a step a `code_interpreter_call`,
//! `function_call` or `file_search_call` item. The stream and the stored object use these
//! same functions, so an item reads the same in both.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::objects::message::{Annotation, Content, Text};
use crate::objects::run::{CodeOutput, RunStep, StepDetails, StepToolCall};
use crate::objects::Message;

/// What items need besides the recorded objects.
#[derive(Default)]
pub struct Context {
    /// The container the response's code runs in.
    pub container_id: String,
    /// Whether `code_interpreter_call.outputs` is included, and the image URLs by file id.
    pub outputs: Option<HashMap<String, String>>,
    /// Whether `file_search_call.results` is included.
    pub search_results: bool,
    /// The container's files by path, for `container_file_citation`s of files the code wrote.
    pub container_files: HashMap<String, String>,
    /// What each file_search call searched for, by call id.
    pub queries: HashMap<String, String>,
}

/// An item id from a tool call id: `call_abc` becomes `fc_abc` for a function call.
pub fn call_item_id(prefix: &str, call_id: &str) -> String {
    format!(
        "{prefix}_{}",
        call_id.strip_prefix("call_").unwrap_or(call_id)
    )
}

/// An assistant's message with `output_text` parts; a user's with its input parts.
pub fn message(m: &Message, cx: &Context) -> Value {
    let user = m.role == "user";
    let content: Vec<Value> = m
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text { text } if user => {
                Some(json!({"type": "input_text", "text": text.value}))
            }
            Content::Text { text } => Some(output_text(text, cx)),
            Content::ImageUrl { image_url } if user => {
                Some(json!({"type": "input_image", "image_url": image_url.url, "detail": "auto"}))
            }
            Content::ImageFile { image_file } if user => Some(
                json!({"type": "input_image", "file_id": image_file.file_id, "detail": "auto"}),
            ),
            _ => None,
        })
        .collect();
    json!({
        "type": "message",
        "id": m.id,
        "role": m.role,
        "status": item_status(&m.status),
        "content": content,
    })
}

pub fn output_text(text: &Text, cx: &Context) -> Value {
    let annotations: Vec<Value> = text.annotations.iter().map(|a| annotation(a, cx)).collect();
    json!({"type": "output_text", "text": text.value, "annotations": annotations, "logprobs": []})
}

/// A `sandbox:/mnt/data/...` link becomes a `container_file_citation`, a search citation a
/// `file_citation`.
pub fn annotation(a: &Annotation, cx: &Context) -> Value {
    match a {
        Annotation::FilePath {
            text,
            start_index,
            end_index,
            file_path,
        } => json!({
            "type": "container_file_citation",
            "container_id": cx.container_id,
            // The container's own file (`cfile_...`) when it is listed; else the stored copy.
            "file_id": cx
                .container_files
                .get(text.strip_prefix("sandbox:").unwrap_or(text))
                .unwrap_or(&file_path.file_id),
            "filename": Path::new(text).file_name().and_then(|n| n.to_str()).unwrap_or(text),
            "start_index": start_index,
            "end_index": end_index,
        }),
        Annotation::FileCitation {
            text,
            start_index,
            file_citation,
            ..
        } => json!({
            "type": "file_citation",
            "file_id": file_citation.file_id,
            // The mark names the file: 【0:1†name.md】.
            "filename": text.split_once('†').map_or("", |(_, n)| n.trim_end_matches('】')),
            "index": start_index,
        }),
    }
}

/// The items of a tool_calls step, in call order.
pub fn tool_calls(step: &RunStep, cx: &Context) -> Vec<Value> {
    let StepDetails::ToolCalls { tool_calls } = &step.step_details else {
        return vec![];
    };
    tool_calls
        .iter()
        .flat_map(|call| call_items(call, &step.status, cx))
        .collect()
}

/// A call's items: one, or a hosted shell call's two (`shell_call`, then its
/// `shell_call_output` once it ran).
pub fn call_items(call: &StepToolCall, step_status: &str, cx: &Context) -> Vec<Value> {
    let mut out = vec![tool_call(call, step_status, cx)];
    if let StepToolCall::Shell { id, shell } = call {
        if let Some(output) = &shell.output {
            out.push(shell_call_output(id, &shell.action, output));
        }
    }
    out
}

/// A hosted shell call's outputs, one per command.
pub fn shell_call_output(call_id: &str, action: &Value, output: &[Value]) -> Value {
    json!({
        "type": "shell_call_output",
        "id": call_item_id("sho", call_id),
        "call_id": call_id,
        "status": "completed",
        "max_output_length": action["max_output_length"],
        "output": output,
    })
}

pub fn tool_call(call: &StepToolCall, step_status: &str, cx: &Context) -> Value {
    match call {
        StepToolCall::CodeInterpreter {
            id,
            code_interpreter,
        } => {
            let status = match step_status {
                "completed" => "completed",
                "in_progress" if !code_interpreter.outputs.is_empty() => "completed",
                "in_progress" => "in_progress",
                "cancelled" | "expired" => "incomplete",
                _ => "failed",
            };
            let outputs = cx.outputs.as_ref().map(|urls| {
                code_interpreter
                    .outputs
                    .iter()
                    .map(|o| match o {
                        CodeOutput::Logs { logs } => json!({"type": "logs", "logs": logs}),
                        CodeOutput::Image { image } => json!({
                            "type": "image",
                            "url": urls.get(&image.file_id).cloned().unwrap_or_default(),
                        }),
                    })
                    .collect::<Vec<_>>()
            });
            json!({
                "type": "code_interpreter_call",
                "id": call_item_id("ci", id),
                "status": status,
                "container_id": cx.container_id,
                "code": code_interpreter.input,
                "outputs": outputs,
            })
        }
        StepToolCall::Shell { id, shell } => {
            let local = shell.environment["type"] == "local";
            let status = match step_status {
                "completed" => "completed",
                _ if shell.output.is_some() => "completed",
                "in_progress" if local => "completed",
                "in_progress" => "in_progress",
                _ => "incomplete",
            };
            json!({
                "type": "shell_call",
                "id": call_item_id("sh", id),
                "call_id": id,
                "action": shell.action,
                "status": status,
                "environment": shell.environment,
            })
        }
        StepToolCall::Function { id, function } => json!({
            "type": "function_call",
            "id": call_item_id("fc", id),
            "call_id": id,
            "name": function.name,
            "arguments": function.arguments,
            "status": "completed",
        }),
        StepToolCall::FileSearch { id, file_search } => {
            let results = cx.search_results.then(|| {
                file_search
                    .results
                    .iter()
                    .map(|r| {
                        let text = r
                            .content
                            .iter()
                            .filter_map(|c| c.get("text").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join("\n");
                        json!({"file_id": r.file_id, "filename": r.file_name, "score": r.score,
                               "text": text, "attributes": {}})
                    })
                    .collect::<Vec<_>>()
            });
            let status = match step_status {
                "completed" => "completed",
                "in_progress" => "searching",
                "cancelled" | "expired" => "incomplete",
                _ => "failed",
            };
            json!({
                "type": "file_search_call",
                "id": call_item_id("fs", id),
                "status": status,
                "queries": cx.queries.get(id).map(|q| vec![q]).unwrap_or_default(),
                "results": results,
            })
        }
    }
}

fn item_status(status: &str) -> &'static str {
    match status {
        "completed" => "completed",
        "in_progress" => "in_progress",
        _ => "incomplete",
    }
}

/// Whether a step made a file_search call.
pub fn searched(step: &RunStep) -> bool {
    match &step.step_details {
        StepDetails::ToolCalls { tool_calls } => tool_calls
            .iter()
            .any(|c| matches!(c, StepToolCall::FileSearch { .. })),
        _ => false,
    }
}

/// The image files a step's code outputs show, for their URLs.
pub fn image_files(step: &RunStep) -> Vec<String> {
    let StepDetails::ToolCalls { tool_calls } = &step.step_details else {
        return vec![];
    };
    let mut ids = vec![];
    for call in tool_calls {
        if let StepToolCall::CodeInterpreter {
            code_interpreter, ..
        } = call
        {
            for o in &code_interpreter.outputs {
                if let CodeOutput::Image { image } = o {
                    ids.push(image.file_id.clone());
                }
            }
        }
    }
    ids
}
