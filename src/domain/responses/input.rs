//! Input items of the Responses and Conversations APIs: parsed and checked, and a message
//! item as the thread message the run loop reads.

use serde_json::{json, Value};

use super::input_files;
use crate::domain::files::FileRef;
use crate::domain::messages::{self, text};
use crate::error::{ApiError, ApiResult};
use crate::objects::message::{Attachment, AttachmentTool, Content, ImageFile, ImageUrl};
use crate::objects::Message;

/// One input item, as the run is made of it.
#[derive(Debug, Clone)]
pub enum Input {
    Message {
        role: String,
        parts: Vec<Value>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: String,
    },
    /// An item already in the context the run reads (the chain's or conversation's own).
    Echo,
    /// A `compaction` item: the summary it carries stands for the context before it.
    Compaction {
        id: String,
        summary: String,
    },
    /// An item the model reads as context, kept as given (checked and completed): a code or
    /// search call, a reasoning item, or a system/developer message or function call and
    /// output added to a conversation by hand (`context::turns` says how the model sees it).
    Item(Value),
    /// An `item_reference`: the item of that id, found by `reference::resolve`.
    Reference {
        id: String,
        param: String,
    },
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_code(
        param,
        "missing_required_parameter",
        format!("Missing required parameter: '{param}'."),
    )
}

fn invalid_type(param: &str, expected: &str) -> ApiError {
    ApiError::invalid_code(
        param,
        "invalid_type",
        format!("Invalid type for '{param}': expected {expected}."),
    )
}

/// A replayed item's status, `completed` unless it says otherwise.
fn status_of(item: &Value) -> Value {
    match item.get("status").and_then(Value::as_str) {
        Some(
            s @ ("in_progress" | "completed" | "incomplete" | "failed" | "searching"
            | "interpreting"),
        ) => Value::from(s),
        _ => Value::from("completed"),
    }
}

/// One input item; `param` names it in errors (`input[2]`).
pub fn parse(item: &Value, param: &str) -> ApiResult<Input> {
    let kind = item.get("type").and_then(Value::as_str);
    let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
    match kind {
        None | Some("message") => {
            let role = text("role").ok_or_else(|| missing(&format!("{param}.role")))?;
            if !matches!(role.as_str(), "user" | "assistant" | "system" | "developer") {
                return Err(ApiError::invalid_code(
                    format!("{param}.role"),
                    "invalid_value",
                    format!("Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system', and 'developer'."),
                ));
            }
            let parts = match item.get("content") {
                Some(Value::String(s)) => vec![json!({"type": "input_text", "text": s})],
                Some(Value::Array(parts)) => parts.clone(),
                _ => return Err(missing(&format!("{param}.content"))),
            };
            for (j, p) in parts.iter().enumerate() {
                let at = format!("{param}.content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "refusal") => {}
                    Some("input_image") if p.get("image_url").is_some() || p.get("file_id").is_some() => {}
                    Some("input_file") if p["file_id"].is_string() => {}
                    Some("input_file") if p["file_data"].is_string() => {
                        if p["filename"].as_str().is_none_or(|f| f.is_empty()) {
                            return Err(missing(&format!("{at}.filename")));
                        }
                        input_files::decode(p["file_data"].as_str().unwrap_or_default(), &at)?;
                    }
                    Some("input_file") if p.get("file_url").is_some() => {
                        return Err(ApiError::invalid_param(
                            format!("{at}.file_url"),
                            "This server does not fetch files by URL: pass the file by 'file_id' or its bytes as 'file_data'.",
                        ))
                    }
                    Some(t @ ("input_image" | "input_file")) => {
                        return Err(ApiError::invalid_param(
                            at,
                            format!("This server takes an '{t}' part by 'file_id' (an image also by 'image_url', a file by 'file_data')."),
                        ))
                    }
                    _ => {
                        return Err(ApiError::invalid_code(
                            format!("{at}.type"),
                            "invalid_value",
                            "Invalid content part type: expected 'input_text', 'input_image' or 'input_file'.",
                        ))
                    }
                }
            }
            Ok(Input::Message { role, parts })
        }
        Some("function_call") => Ok(Input::FunctionCall {
            call_id: text("call_id").ok_or_else(|| missing(&format!("{param}.call_id")))?,
            name: text("name").ok_or_else(|| missing(&format!("{param}.name")))?,
            arguments: text("arguments").unwrap_or_default(),
        }),
        Some("function_call_output") => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => return Err(missing(&format!("{param}.output"))),
            };
            Ok(Input::FunctionCallOutput {
                call_id: text("call_id").ok_or_else(|| missing(&format!("{param}.call_id")))?,
                output,
            })
        }
        Some("compaction") => {
            let content = text("encrypted_content")
                .ok_or_else(|| missing(&format!("{param}.encrypted_content")))?;
            Ok(Input::Compaction {
                id: text("id").unwrap_or_else(|| crate::ids::new_id(super::compaction::COMPACTION)),
                summary: super::compaction::decode(
                    &content,
                    &format!("{param}.encrypted_content"),
                )?,
            })
        }
        Some("code_interpreter_call") => {
            let id = text("id").ok_or_else(|| missing(&format!("{param}.id")))?;
            let code = match item.get("code") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::String(c)) => Value::from(c.as_str()),
                Some(_) => return Err(invalid_type(&format!("{param}.code"), "a string or null")),
            };
            let outputs = match item.get("outputs") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Array(outs)) => {
                    for (j, o) in outs.iter().enumerate() {
                        let ok = match o.get("type").and_then(Value::as_str) {
                            Some("logs") => o["logs"].is_string(),
                            Some("image") => o["url"].is_string(),
                            _ => false,
                        };
                        if !ok {
                            return Err(invalid_type(
                                &format!("{param}.outputs[{j}]"),
                                "{type: 'logs', logs} or {type: 'image', url}",
                            ));
                        }
                    }
                    Value::Array(outs.clone())
                }
                Some(_) => {
                    return Err(invalid_type(
                        &format!("{param}.outputs"),
                        "an array or null",
                    ))
                }
            };
            let container_id = match item.get("container_id") {
                Some(Value::String(c)) => Value::from(c.as_str()),
                None | Some(Value::Null) => return Err(missing(&format!("{param}.container_id"))),
                Some(_) => return Err(invalid_type(&format!("{param}.container_id"), "a string")),
            };
            Ok(Input::Item(
                json!({"type": "code_interpreter_call", "id": id,
                "status": status_of(item), "container_id": container_id, "code": code, "outputs": outputs}),
            ))
        }
        Some("file_search_call") => {
            let id = text("id").ok_or_else(|| missing(&format!("{param}.id")))?;
            let queries = match item.get("queries") {
                Some(Value::Array(q)) if q.iter().all(Value::is_string) => Value::Array(q.clone()),
                Some(_) => {
                    return Err(invalid_type(
                        &format!("{param}.queries"),
                        "an array of strings",
                    ))
                }
                None => return Err(missing(&format!("{param}.queries"))),
            };
            let results = match item.get("results") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Array(r)) => Value::Array(r.clone()),
                Some(_) => {
                    return Err(invalid_type(
                        &format!("{param}.results"),
                        "an array or null",
                    ))
                }
            };
            Ok(Input::Item(json!({"type": "file_search_call", "id": id,
                "status": status_of(item), "queries": queries, "results": results})))
        }
        Some("reasoning") => {
            let id = text("id").ok_or_else(|| missing(&format!("{param}.id")))?;
            let summary = match item.get("summary") {
                Some(Value::Array(s)) if s.iter().all(|p| p["text"].is_string()) => s.clone(),
                Some(_) => {
                    return Err(invalid_type(
                        &format!("{param}.summary"),
                        "an array of {type: 'summary_text', text}",
                    ))
                }
                None => return Err(missing(&format!("{param}.summary"))),
            };
            let mut kept = json!({"type": "reasoning", "id": id, "summary": summary});
            for key in ["content", "encrypted_content", "status"] {
                if let Some(v) = item.get(key).filter(|v| !v.is_null()) {
                    kept[key] = v.clone();
                }
            }
            Ok(Input::Item(kept))
        }
        Some("shell_call") => super::shell_items::call(item, param).map(Input::Item),
        Some("shell_call_output") => super::shell_items::output(item, param).map(Input::Item),
        Some("item_reference") => Ok(Input::Reference {
            id: text("id").ok_or_else(|| missing(&format!("{param}.id")))?,
            param: param.to_string(),
        }),
        Some(other) => Err(ApiError::invalid_code(
            format!("{param}.type"),
            "invalid_value",
            format!("Invalid input item type: '{other}'."),
        )),
    }
}

/// A user or assistant message item as a thread message; the file ids it names join `refs`
/// (checked by the caller). An `input_file` part becomes the file's text (`file_texts`, by
/// part, from `input_files::read`), and the file is attached for code_interpreter when
/// `attach`.
pub fn message(
    thread_id: &str,
    role: &str,
    parts: &[Value],
    file_texts: &[Option<String>],
    attach: bool,
    param: &str,
    refs: &mut Vec<FileRef>,
) -> Message {
    let mut content = vec![];
    let mut attachments = vec![];
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{param}.content[{j}]");
        match p["type"].as_str() {
            Some("input_text" | "output_text") => {
                content.push(text(p["text"].as_str().unwrap_or_default().into()))
            }
            Some("refusal") => content.push(text(p["refusal"].as_str().unwrap_or_default().into())),
            Some("input_image") => match (p["image_url"].as_str(), p["file_id"].as_str()) {
                (Some(url), _) => content.push(Content::ImageUrl {
                    image_url: ImageUrl {
                        url: url.into(),
                        detail: None,
                    },
                }),
                (None, Some(file_id)) => {
                    refs.push(FileRef {
                        param: format!("{at}.file_id"),
                        id: file_id.into(),
                    });
                    content.push(Content::ImageFile {
                        image_file: ImageFile {
                            file_id: file_id.into(),
                            detail: None,
                        },
                    });
                }
                _ => {}
            },
            Some("input_file") => {
                if let Some(Some(t)) = file_texts.get(j) {
                    content.push(text(t.clone()));
                }
                // `input_files::read` checked the file.
                if let (Some(file_id), true) = (p["file_id"].as_str(), attach) {
                    attachments.push(Attachment {
                        file_id: file_id.into(),
                        tools: vec![AttachmentTool::CodeInterpreter],
                    });
                }
            }
            _ => {}
        }
    }
    if content.is_empty() {
        content.push(text(String::new()));
    }
    let role = if role == "assistant" {
        "assistant"
    } else {
        "user"
    };
    messages::given(
        thread_id,
        role.into(),
        content,
        attachments,
        Default::default(),
    )
}

/// A message item as `/input_items` and conversation items list it.
pub fn message_item(id: &str, role: &str, parts: &[Value]) -> Value {
    json!({"type": "message", "id": id, "role": role, "status": "completed", "content": parts})
}
