//! The chat completions request for a run: instructions, a note of the sandbox's files, the
//! thread's messages (after truncation), the run's own tool turns, and the tools.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::budget;

use crate::objects::message::{AttachmentTool, Content};
use crate::objects::run::Run;
use crate::objects::tools::Tool;
use crate::objects::Message;

/// The name under which code_interpreter is offered to the model as a function.
pub const CODE_TOOL: &str = "code_interpreter";
/// The name under which file_search is offered to the model as a function.
pub const SEARCH_TOOL: &str = "file_search";
/// The name under which the Responses `shell` tool is offered to the model as a function.
pub const SHELL_TOOL: &str = "shell";

/// A file copied into the sandbox for this run.
#[derive(Clone, Debug)]
pub struct StagedFile {
    pub file_id: String,
    pub path: String,
}

const CODE_GUIDE: &str = "You can run code with the `code_interpreter` tool. Each call is a cell of a \
persistent IPython (Jupyter) kernel: variables, imports and files survive between calls. The value of a trailing \
expression is shown, and `display()` shows anything (DataFrames as text tables; PIL images, SVG and matplotlib \
charts as images the user sees). IPython syntax works: `!cmd` shell commands, `%%bash`, `%%writefile`, `%timeit` \
and other magics. Node.js and bash are installed too: run JavaScript with `%%script node` or `!node file.js`. The \
working directory is /mnt/data, which holds the user's files. To give the user a file, save it under /mnt/data \
and link it in your answer as sandbox:/mnt/data/<filename>.";

/// The main libraries of the sandbox image (sandbox/openai-packages.txt lists them all).
const LIBRARIES: &str = "Python 3.11 with numpy, pandas, matplotlib, scipy, seaborn, scikit-learn, \
statsmodels, sympy, networkx, torch (CPU), jax, keras, xgboost, lightgbm, catboost, opencv (cv2), scikit-image, \
PIL, openpyxl, python-docx, python-pptx, pypdf, PyMuPDF (fitz), pdfplumber, reportlab, fpdf2, pytesseract \
(tesseract OCR), plotly, bokeh, geopandas, nltk, spacy, gensim and wordcloud preinstalled";

/// What the sandbox can reach: `network` is whether the operator gave sandboxes a network
/// (`ASSISTD_SANDBOX_NETWORK` other than "none").
fn network_note(network: bool) -> &'static str {
    if network {
        "The sandbox can reach the internet, so `%pip install` and `npm install` work."
    } else {
        "The sandbox has no internet access: `%pip install`, `npm install` and downloads fail, so use \
the preinstalled libraries."
    }
}

const SHELL_GUIDE: &str = "You can run shell commands with the `shell` tool. Each command runs in a fresh `bash -lc` (no state such as `cd` or variables carries over to the next one) as an unprivileged user with no terminal and no sudo, in /mnt/data, which holds the user's files and is shared by all commands and calls. To give the user a file, save it under /mnt/data and link it in your answer as sandbox:/mnt/data/<filename>.";

/// The shell function's parameters, as OpenAI's shell action has them.
fn shell_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "commands": {"type": "array", "items": {"type": "string"},
                         "description": "Shell commands to run, in order, each in a fresh `bash -lc`."},
            "timeout_ms": {"type": ["integer", "null"],
                           "description": "How long each command may run, in milliseconds."},
            "max_output_length": {"type": ["integer", "null"],
                                  "description": "How many characters of stdout and stderr to keep per command (the start and the end)."}
        },
        "required": ["commands"]
    })
}

const SEARCH_GUIDE: &str = "You can search the user's files with the `file_search` tool. Each result starts with \
a citation mark such as 【0:1†report.md】. When you use a result, put its mark right after the sentence it supports.";

pub fn system_prompt(run: &Run, files: &[StagedFile], network: bool) -> String {
    let mut parts = vec![];
    if !run.instructions.is_empty() {
        parts.push(run.instructions.clone());
    }
    if run.file_search().is_some() {
        parts.push(SEARCH_GUIDE.to_string());
    }
    if run.has_code_interpreter() {
        parts.push(format!(
            "{CODE_GUIDE} {LIBRARIES}. {}",
            network_note(network)
        ));
    }
    if run.shell() == Some(true) {
        parts.push(SHELL_GUIDE.to_string());
    }
    if run.uses_sandbox() && !files.is_empty() {
        let list: Vec<String> = files.iter().map(|f| format!("- {}", f.path)).collect();
        parts.push(format!(
            "Files available in /mnt/data:\n{}",
            list.join("\n")
        ));
    }
    parts.join("\n\n")
}

/// Image input for the model: `None` sends images as text references only, otherwise the
/// `data:` URLs of uploaded images by file id ([`super::images`]).
pub type ImageUrls<'a> = Option<&'a HashMap<String, String>>;

/// A thread message as the model sees it: its text, with attached files named by path. A user
/// message with images becomes content parts, so that a vision model sees them.
fn chat_message(m: &Message, files: &[StagedFile], images: ImageUrls<'_>) -> Value {
    let note = attachment_note(m, files);
    let has_images = m.content.iter().any(|c| !matches!(c, Content::Text { .. }));
    if let (Some(urls), true, "user") = (images, has_images, m.role.as_str()) {
        let text = |t: &str| json!({"type": "text", "text": t});
        let image = |url: &str, detail: &Option<String>| {
            let mut image_url = json!({"url": url});
            if let Some(detail) = detail {
                image_url["detail"] = Value::from(detail.as_str());
            }
            json!({"type": "image_url", "image_url": image_url})
        };
        let mut parts: Vec<Value> = m
            .content
            .iter()
            .map(|part| match part {
                Content::Text { text: t } => text(&t.value),
                Content::ImageUrl { image_url: i } => image(&i.url, &i.detail),
                Content::ImageFile { image_file: f } => match urls.get(&f.file_id) {
                    Some(url) => image(url, &f.detail),
                    None => text(&format!("[image {}]", f.file_id)),
                },
            })
            .collect();
        if let Some(note) = note {
            parts.push(text(note.trim_start()));
        }
        return json!({"role": m.role, "content": parts});
    }
    let mut text = String::new();
    for part in &m.content {
        match part {
            Content::Text { text: t } => text.push_str(&t.value),
            Content::ImageFile { image_file } => {
                text.push_str(&format!("[image {}]", image_file.file_id))
            }
            Content::ImageUrl { image_url } => text.push_str(&format!("[image {}]", image_url.url)),
        }
    }
    if let Some(note) = note {
        text.push_str(&note);
    }
    json!({"role": m.role, "content": text})
}

/// Names the files a message attached for code_interpreter by their sandbox paths.
fn attachment_note(m: &Message, files: &[StagedFile]) -> Option<String> {
    let attached: Vec<&str> = m
        .attachments
        .iter()
        .filter(|a| a.tools.is_empty() || a.tools.contains(&AttachmentTool::CodeInterpreter))
        .filter_map(|a| files.iter().find(|f| f.file_id == a.file_id))
        .map(|f| f.path.as_str())
        .collect();
    (!attached.is_empty()).then(|| format!("\n\n(Attached files: {})", attached.join(", ")))
}

/// What a thread holds for the model: its messages, oldest first, and the context items
/// (replayed calls, system messages, ...) each placed after the message id it followed.
#[derive(Clone, Copy)]
pub struct Thread<'a> {
    pub messages: &'a [Message],
    pub items: &'a [(Option<String>, Value)],
}

/// Thread messages oldest first, cut to the run's truncation strategy: its last N messages,
/// or with `auto` the newest that fit `budget` prompt tokens (when there is one).
pub fn conversation(
    run: &Run,
    thread: Thread<'_>,
    files: &[StagedFile],
    images: ImageUrls<'_>,
    transcript: &[Value],
    budget: Option<u64>,
    network: bool,
) -> Vec<Value> {
    let (history, context) = (thread.messages, thread.items);
    let keep = match run.truncation_strategy.last_messages {
        Some(n) if run.truncation_strategy.kind == "last_messages" => n as usize,
        _ => history.len(),
    };
    let mut out = vec![];
    let system = system_prompt(run, files, network);
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system}));
    }
    let skip = history.len().saturating_sub(keep);
    // Context items follow the message they came after; those of cut messages go with them,
    // and those whose message is gone (or that came first) open the thread.
    let kept: Vec<&str> = history[skip..].iter().map(|m| m.id.as_str()).collect();
    let cut: Vec<&str> = history[..skip].iter().map(|m| m.id.as_str()).collect();
    let placed = |after: Option<&str>| -> Vec<Value> {
        let items: Vec<&Value> = context
            .iter()
            .filter(|(a, _)| match (a.as_deref(), after) {
                (Some(a), Some(m)) => a == m,
                (a, None) => a.is_none_or(|a| !kept.contains(&a) && !cut.contains(&a)) && skip == 0,
                (None, Some(_)) => false,
            })
            .map(|(_, v)| v)
            .collect();
        context_turns(&items)
    };
    let mut thread: Vec<Value> = placed(None);
    for m in &history[skip..] {
        thread.push(chat_message(m, files, images));
        thread.extend(placed(Some(&m.id)));
    }
    if let (Some(budget), "auto") = (budget, run.truncation_strategy.kind.as_str()) {
        let fixed: u64 = out
            .iter()
            .chain(transcript)
            .map(budget::estimate)
            .sum::<u64>()
            + tools_tokens(run, network);
        let keep = budget::fit(fixed, &thread, budget);
        thread.drain(..thread.len() - keep);
    }
    out.extend(thread);
    out.extend(transcript.iter().cloned());
    out
}

/// The tokens of a whole opening request (its messages and its tools), counted as `auto`
/// truncation counts them.
pub fn estimate(run: &Run, chat: &[Value], network: bool) -> u64 {
    chat.iter().map(budget::estimate).sum::<u64>() + tools_tokens(run, network)
}

fn tools_tokens(run: &Run, network: bool) -> u64 {
    budget::estimate(&json!({"content": Value::from(tools(run, network)).to_string()}))
}

/// Context items as the model reads them: a system or developer message as a system
/// message; a function call with its output, a code call with its code and outputs, a search
/// call with its queries and results, each as a tool call and its result. A function call
/// without its output (or an output without its call) is left out, as is reasoning.
pub fn context_turns(items: &[&Value]) -> Vec<Value> {
    let mut out = vec![];
    let output_of = |call_id: &str| {
        items
            .iter()
            .find(|i| i["type"] == "function_call_output" && i["call_id"].as_str() == Some(call_id))
    };
    let call = |id: &str, name: &str, arguments: String| {
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]})
    };
    for item in items {
        let id = item["id"].as_str().unwrap_or_default();
        match item["type"].as_str() {
            Some("message") => {
                let text: Vec<&str> = item["content"]
                    .as_array()
                    .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
                    .unwrap_or_default();
                out.push(json!({"role": "system", "content": text.join("\n")}));
            }
            Some("function_call") => {
                let call_id = item["call_id"].as_str().unwrap_or_default();
                if let Some(output) = output_of(call_id) {
                    let arguments = item["arguments"].as_str().unwrap_or_default();
                    let name = item["name"].as_str().unwrap_or_default();
                    out.push(call(call_id, name, arguments.to_string()));
                    out.push(tool_result(
                        call_id,
                        output["output"].as_str().unwrap_or_default(),
                    ));
                }
            }
            Some("code_interpreter_call") => {
                let code = item["code"].as_str().unwrap_or_default();
                out.push(call(id, CODE_TOOL, json!({ "code": code }).to_string()));
                let shown = match item["outputs"].as_array() {
                    Some(outputs) => outputs
                        .iter()
                        .map(|o| match o["type"].as_str() {
                            Some("logs") => o["logs"].as_str().unwrap_or_default().to_string(),
                            _ => "[image]".to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    None => "(the output was not kept)".to_string(),
                };
                out.push(tool_result(id, &shown));
            }
            Some("shell_call") => {
                // A replayed call is context: it is never run again. Its output item (with
                // the same call_id) says what it gave; a call without one is left out.
                let call_id = item["call_id"].as_str().unwrap_or_default();
                let output = items.iter().find(|i| {
                    i["type"] == "shell_call_output" && i["call_id"].as_str() == Some(call_id)
                });
                if let Some(output) = output {
                    let commands = item["action"]["commands"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let arguments = json!({"commands": commands}).to_string();
                    out.push(call(call_id, SHELL_TOOL, arguments));
                    let outputs = output["output"].as_array().cloned().unwrap_or_default();
                    out.push(tool_result(
                        call_id,
                        &super::shell::result_text(&commands, &outputs),
                    ));
                }
            }
            Some("file_search_call") => {
                let queries: Vec<&str> = item["queries"]
                    .as_array()
                    .map(|q| q.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push(call(
                    id,
                    SEARCH_TOOL,
                    json!({ "query": queries.join("; ") }).to_string(),
                ));
                let found = match item["results"].as_array() {
                    Some(results) => results
                        .iter()
                        .filter_map(|r| r["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    None => "(the results were not kept)".to_string(),
                };
                out.push(tool_result(id, &found));
            }
            _ => {}
        }
    }
    out
}

fn tools(run: &Run, network: bool) -> Vec<Value> {
    run.tools
        .iter()
        .map(|tool| match tool {
            Tool::CodeInterpreter => json!({
                "type": "function",
                "function": {
                    "name": CODE_TOOL,
                    "description": format!("Run a cell in a persistent IPython (Jupyter) kernel and return its output: Python, plus IPython syntax (`!cmd` shell commands, `%%bash`, `%%script node` for JavaScript, `%timeit` and other magics). Node.js and bash are installed; `display()` shows DataFrames as text and images to the user. {LIBRARIES}. {}", network_note(network)),
                    "parameters": {
                        "type": "object",
                        "properties": {"code": {"type": "string", "description": "The cell to run: Python with IPython syntax."}},
                        "required": ["code"]
                    }
                }
            }),
            Tool::Function { function } => json!({"type": "function", "function": function}),
            Tool::Shell { shell } => json!({
                "type": "function",
                "function": {
                    "name": SHELL_TOOL,
                    "description": if shell.hosted {
                        format!("Run shell commands in the sandbox (Debian, bash, Python 3, Node.js) and return each one's stdout, stderr and exit code. {}", network_note(network))
                    } else {
                        "Run shell commands on the user's machine and return each one's stdout, stderr and exit code.".to_string()
                    },
                    "parameters": shell_parameters(),
                }
            }),
            Tool::FileSearch { .. } => json!({
                "type": "function",
                "function": {
                    "name": SEARCH_TOOL,
                    "description": "Search the files the user gave this assistant and thread; returns the best matching passages.",
                    "parameters": {
                        "type": "object",
                        "properties": {"query": {"type": "string", "description": "What to look for, in words likely to appear in the files."}},
                        "required": ["query"]
                    }
                }
            }),
        })
        .collect()
}

fn tool_choice(choice: &Value) -> Value {
    match choice.get("type").and_then(Value::as_str) {
        Some("code_interpreter") => json!({"type": "function", "function": {"name": CODE_TOOL}}),
        Some("file_search") => json!({"type": "function", "function": {"name": SEARCH_TOOL}}),
        Some("shell") => json!({"type": "function", "function": {"name": SHELL_TOOL}}),
        Some("function") => choice.clone(),
        Some(_) => Value::from("auto"),
        None => choice.clone(),
    }
}

/// The streamed chat completions body for the next turn.
pub fn request(
    run: &Run,
    messages: Vec<Value>,
    max_completion_tokens: Option<u64>,
    network: bool,
) -> Value {
    let mut body = json!({
        "model": run.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let tools = tools(run, network);
    if !tools.is_empty() {
        body["tool_choice"] = tool_choice(&run.tool_choice);
        body["parallel_tool_calls"] = Value::from(run.parallel_tool_calls);
        body["tools"] = Value::from(tools);
    }
    if let Some(t) = run.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = run.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(kind) = run.response_format.get("type").and_then(Value::as_str) {
        if kind != "text" {
            body["response_format"] = run.response_format.clone();
        }
    }
    if let Some(n) = max_completion_tokens {
        body["max_completion_tokens"] = json!(n);
    }
    if let Some(effort) = &run.reasoning_effort {
        body["reasoning_effort"] = json!(effort);
    }
    body
}

/// The transcript entry for a turn that called tools.
pub fn assistant_turn(text: &str, calls: &[super::model::ToolCall]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect();
    let content = if text.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    };
    json!({"role": "assistant", "content": content, "tool_calls": calls})
}

pub fn tool_result(call_id: &str, output: &str) -> Value {
    json!({"role": "tool", "tool_call_id": call_id, "content": output})
}

/// The code the model sent: `{"code": "..."}`, or, from models that skip the JSON, the raw text.
pub fn code_of(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(o)) => o
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default(),
        _ => arguments.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_comes_from_json_arguments_or_raw_text() {
        assert_eq!(code_of(r#"{"code": "print(1)"}"#), "print(1)");
        assert_eq!(code_of("print(2)"), "print(2)");
        assert_eq!(code_of(r#"{"other": 1}"#), "");
    }

    fn user_message(content: Value) -> Message {
        serde_json::from_value(json!({
            "id": "msg_1", "object": "thread.message", "created_at": 0, "thread_id": "thread_1",
            "status": "completed", "role": "user", "content": content, "attachments": [],
            "metadata": {}
        }))
        .expect("a message")
    }

    #[test]
    fn images_become_image_parts_only_when_image_input_is_on() {
        let m = user_message(json!([
            {"type": "text", "text": {"value": "What is this?", "annotations": []}},
            {"type": "image_file", "image_file": {"file_id": "file-1", "detail": "low"}},
            {"type": "image_file", "image_file": {"file_id": "file-gone"}},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "auto"}}
        ]));
        let urls = HashMap::from([(
            "file-1".to_string(),
            "data:image/png;base64,AA==".to_string(),
        )]);
        assert_eq!(
            chat_message(&m, &[], Some(&urls))["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
                {"type": "text", "text": "[image file-gone]"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "auto"}}
            ])
        );
        assert_eq!(
            chat_message(&m, &[], None)["content"],
            json!("What is this?[image file-1][image file-gone][image https://x/cat.png]")
        );
        let plain =
            user_message(json!([{"type": "text", "text": {"value": "hi", "annotations": []}}]));
        assert_eq!(
            chat_message(&plain, &[], Some(&urls))["content"],
            json!("hi")
        );
    }

    #[test]
    fn context_items_follow_their_message_and_calls_come_with_their_outputs() {
        let run = Run::queued("thread_1", "", "m");
        let mut m1 =
            user_message(json!([{"type": "text", "text": {"value": "one", "annotations": []}}]));
        m1.id = "msg_1".into();
        let mut m2 = m1.clone();
        m2.id = "msg_2".into();
        m2.content[0] = crate::objects::message::Content::Text {
            text: crate::objects::message::Text {
                value: "two".into(),
                annotations: vec![],
            },
        };
        let context = vec![
            (
                None,
                json!({"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be brief."}]}),
            ),
            (
                Some("msg_1".to_string()),
                json!({"type": "code_interpreter_call", "id": "ci_1", "code": "x = 1", "outputs": [{"type": "logs", "logs": "ok"}]}),
            ),
            (
                Some("msg_1".to_string()),
                json!({"type": "function_call_output", "call_id": "call_9", "output": "orphan"}),
            ),
            (
                Some("msg_1".to_string()),
                json!({"type": "function_call", "call_id": "call_2", "name": "f", "arguments": "{}"}),
            ),
            (
                Some("msg_1".to_string()),
                json!({"type": "function_call_output", "call_id": "call_2", "output": "done"}),
            ),
            (
                Some("msg_1".to_string()),
                json!({"type": "reasoning", "id": "rs_1", "summary": []}),
            ),
        ];
        let thread = Thread {
            messages: &[m1, m2],
            items: &context,
        };
        let chat = conversation(&run, thread, &[], None, &[], None, false);
        let shape: Vec<String> = chat
            .iter()
            .map(|m| match m["tool_calls"][0]["function"]["name"].as_str() {
                Some(name) => format!("call:{name}"),
                None => format!(
                    "{}:{}",
                    m["role"].as_str().unwrap_or(""),
                    m["content"].as_str().unwrap_or("")
                ),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "system:Be brief.",
                "user:one",
                "call:code_interpreter",
                "tool:ok",
                "call:f",
                "tool:done",
                "user:two"
            ]
        );
    }

    #[test]
    fn the_code_tool_names_the_main_libraries_and_whether_the_sandbox_has_a_network() {
        let run = Run {
            tools: vec![Tool::CodeInterpreter],
            ..Run::queued("thread_1", "asst_1", "gpt-test")
        };
        for network in [false, true] {
            let prompt = system_prompt(&run, &[], network);
            let body = request(&run, vec![], None, network);
            let description = body["tools"][0]["function"]["description"]
                .as_str()
                .expect("a description")
                .to_string();
            for text in [&prompt, &description] {
                for library in [
                    "pandas",
                    "scikit-learn",
                    "statsmodels",
                    "torch",
                    "pytesseract",
                ] {
                    assert!(text.contains(library), "{library} missing: {text}");
                }
                assert_eq!(text.contains("no internet access"), !network, "{text}");
                assert_eq!(text.contains("can reach the internet"), network, "{text}");
            }
        }
    }

    #[test]
    fn a_named_code_interpreter_choice_becomes_a_function_choice() {
        let c = tool_choice(&json!({"type": "code_interpreter"}));
        assert_eq!(c["function"]["name"], CODE_TOOL);
        assert_eq!(tool_choice(&json!("required")), json!("required"));
    }
}
