//! A run's events as the Responses API streams them. The run loop emits the Assistants
//! events (`thread.message.delta`, `thread.run.step.delta`, ...); this turns them, in order,
//! into `response.*` events with dense `output_index`es and a `sequence_number` from 0.
//! Items are made with `domain::responses::items`, so they equal the stored object's.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::blobs::BlobStore;
use crate::domain::responses::items::{self, Context};
use crate::domain::responses::{container_files, image_url, search_queries, Stored};
use crate::executor::events::{RunEvent, CODE_STARTED, SHELL_CALLED};
use crate::objects::message::{Annotation, Message};
use crate::objects::run::{
    CodeInterpreterCall, CodeOutput, FunctionCallWithOutput, ShellCall, StepToolCall,
};

/// What a run event meant for the response stream.
pub enum Translated {
    Events(Vec<Value>),
    /// The run stopped for this response (ended, or waits for function outputs): the caller
    /// sends the final object's event.
    Ended(Vec<Value>),
}

/// How the stream's last event is made: from the run its terminal event carried and the items
/// this stream completed, or (when the stream ended without one) from the record.
pub enum Ending {
    Run(Box<crate::objects::Run>, Vec<Value>),
    Record,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Code,
    Function,
    Search,
    Shell,
}

struct Call {
    kind: Kind,
    call_id: String,
    output_index: usize,
    /// The code, or the function's arguments, so far.
    text: String,
    name: String,
    /// A code call whose code is running: its code is done. A shell call that was run or
    /// handed over: its `shell_call` item is done.
    interpreting: bool,
    /// A shell call's action, once it was run or handed over.
    action: Value,
    done: bool,
}

pub struct Translator {
    seq: u64,
    /// The first output index of the run's own items: 1 after a compaction item.
    base: usize,
    /// The compaction item the response begins with, announced with `response.created`.
    compaction: Option<Value>,
    next_index: usize,
    started: bool,
    in_progress: bool,
    messages: HashMap<String, usize>,
    /// Calls by step id and index in the step.
    calls: HashMap<(String, usize), Call>,
    cx: Context,
    /// Every item completed so far, by output index.
    done: std::collections::BTreeMap<usize, Value>,
    /// The run as its terminal event carried it.
    ended: Option<crate::objects::Run>,
    /// Whether the response's shell tool runs in its container.
    shell_hosted: bool,
    run_id: String,
    db: sqlx::PgPool,
    blobs: BlobStore,
}

impl Translator {
    pub fn new(stored: &Stored, db: sqlx::PgPool, blobs: BlobStore) -> Self {
        let compaction = stored.request.get("compaction").cloned();
        let base = usize::from(compaction.is_some());
        Translator {
            seq: 0,
            base,
            compaction,
            next_index: base,
            started: false,
            in_progress: false,
            messages: HashMap::new(),
            calls: HashMap::new(),
            done: Default::default(),
            ended: None,
            cx: Context {
                container_id: stored.container_id().to_string(),
                outputs: stored
                    .include("code_interpreter_call.outputs")
                    .then(HashMap::new),
                search_results: stored.include("file_search_call.results"),
                container_files: HashMap::new(),
                queries: HashMap::new(),
            },
            shell_hosted: stored.request["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| {
                    t["type"] == "shell"
                        && matches!(
                            t["environment"]["type"].as_str(),
                            Some("container_auto" | "container_reference")
                        )
                }),
            run_id: stored.run_id.clone(),
            db,
            blobs,
        }
    }

    /// Numbers an event: `{"type": kind, "sequence_number": n, ...body}`.
    pub fn event(&mut self, kind: &str, body: Value) -> Value {
        if kind == "response.output_item.done" {
            if let Some(i) = body["output_index"]
                .as_u64()
                .filter(|i| *i as usize >= self.base)
            {
                self.done.insert(i as usize, body["item"].clone());
            }
        }
        let mut e = json!({"type": kind, "sequence_number": self.seq});
        if let (Value::Object(e), Value::Object(b)) = (&mut e, body) {
            e.extend(b);
        }
        self.seq += 1;
        e
    }

    /// What the final event is made from. The items must be dense from 0: a stream that
    /// missed one (it began late, or an item never finished) reads the record instead.
    pub fn ending(&mut self) -> Ending {
        let dense = self.done.keys().copied().eq(self.base..self.next_index);
        match self.ended.take() {
            Some(run) if dense => {
                let items = std::mem::take(&mut self.done).into_values().collect();
                Ending::Run(Box::new(run), items)
            }
            _ => Ending::Record,
        }
    }

    /// `response.created` and `response.in_progress` with the object so far.
    pub fn start(&mut self, snapshot: &Value) -> Vec<Value> {
        let mut out = vec![];
        if !self.started {
            self.started = true;
            out.push(self.event("response.created", json!({"response": snapshot})));
            if let Some(item) = self.compaction.clone() {
                let at = json!({"output_index": 0, "item": item});
                out.push(self.event("response.output_item.added", at.clone()));
                out.push(self.event("response.output_item.done", at));
            }
        }
        out
    }

    pub async fn translate(&mut self, ev: &RunEvent, snapshot: &Value) -> Translated {
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        let mut out = self.start(snapshot);
        match ev.name {
            "thread.run.in_progress" if !self.in_progress => {
                self.in_progress = true;
                out.push(self.event("response.in_progress", json!({"response": snapshot})));
            }
            "thread.message.created" => self.message_created(&data, &mut out),
            "thread.message.delta" => {
                if ev.data.contains("\"file_path\"") {
                    // The code wrote the files it links: cite them by their container ids.
                    self.cx.container_files =
                        container_files(&self.db, &self.cx.container_id).await;
                }
                self.message_delta(&data, &mut out)
            }
            "thread.message.completed" | "thread.message.incomplete" => {
                if let Ok(m) = serde_json::from_value::<Message>(data) {
                    self.message_done(&m, &mut out);
                }
            }
            "thread.run.step.delta" => self.step_delta(&data, &mut out).await,
            SHELL_CALLED => {
                if let (Some(step_id), Some(index)) =
                    (data["step_id"].as_str(), data["index"].as_u64())
                {
                    let key = (step_id.to_string(), index as usize);
                    self.shell_called(&key, &data["action"], &data["environment"], &mut out);
                }
            }
            CODE_STARTED => {
                if let (Some(step_id), Some(index)) =
                    (data["step_id"].as_str(), data["index"].as_u64())
                {
                    self.interpreting(&(step_id.to_string(), index as usize), &mut out);
                }
            }
            "thread.run.step.completed" => self.step_completed(&data, &mut out).await,
            "thread.run.completed"
            | "thread.run.requires_action"
            | "thread.run.failed"
            | "thread.run.cancelled"
            | "thread.run.incomplete"
            | "thread.run.expired" => {
                self.finish_functions(&mut out);
                self.ended = serde_json::from_value(data).ok();
                return Translated::Ended(out);
            }
            _ => {}
        }
        Translated::Events(out)
    }

    fn message_created(&mut self, data: &Value, out: &mut Vec<Value>) {
        let Some(id) = data["id"].as_str() else {
            return;
        };
        let output_index = self.next_index;
        self.next_index += 1;
        self.messages.insert(id.to_string(), output_index);
        let item = json!({"type": "message", "id": id, "role": "assistant",
                          "status": "in_progress", "content": []});
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        ));
        out.push(self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": output_index, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        ));
    }

    fn message_delta(&mut self, data: &Value, out: &mut Vec<Value>) {
        let Some(id) = data["id"].as_str() else {
            return;
        };
        let Some(&output_index) = self.messages.get(id) else {
            return;
        };
        for part in data["delta"]["content"].as_array().into_iter().flatten() {
            if part["type"] != "text" || part["index"] != 0 {
                continue;
            }
            if let Some(text) = part["text"]["value"].as_str() {
                out.push(self.event(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                           "delta": text, "logprobs": []}),
                ));
            }
            let annotations = part["text"]["annotations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (n, a) in annotations.into_iter().enumerate() {
                if let Ok(a) = serde_json::from_value::<Annotation>(a) {
                    let annotation = items::annotation(&a, &self.cx);
                    out.push(self.event(
                        "response.output_text.annotation.added",
                        json!({"item_id": id, "output_index": output_index, "content_index": 0,
                               "annotation_index": n, "annotation": annotation}),
                    ));
                }
            }
        }
    }

    fn message_done(&mut self, m: &Message, out: &mut Vec<Value>) {
        let Some(&output_index) = self.messages.get(&m.id) else {
            return;
        };
        let item = items::message(m, &self.cx);
        let part = item["content"].get(0).cloned().unwrap_or_else(
            || json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}),
        );
        out.push(self.event(
            "response.output_text.done",
            json!({"item_id": m.id, "output_index": output_index, "content_index": 0,
                   "text": part["text"], "logprobs": []}),
        ));
        out.push(self.event(
            "response.content_part.done",
            json!({"item_id": m.id, "output_index": output_index, "content_index": 0, "part": part}),
        ));
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        ));
    }

    async fn step_delta(&mut self, data: &Value, out: &mut Vec<Value>) {
        let Some(step_id) = data["id"].as_str() else {
            return;
        };
        for call in data["delta"]["step_details"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(index) = call["index"].as_u64().map(|i| i as usize) else {
                continue;
            };
            let key = (step_id.to_string(), index);
            if !self.calls.contains_key(&key) {
                self.call_added(key.clone(), call, out);
            }
            let Some(c) = self.calls.get_mut(&key) else {
                continue;
            };
            if c.done {
                continue;
            }
            match c.kind {
                Kind::Code => {
                    let input = call["code_interpreter"]["input"]
                        .as_str()
                        .unwrap_or_default();
                    if !input.is_empty() {
                        c.text.push_str(input);
                        let (item_id, output_index) = (item_id(c), c.output_index);
                        out.push(self.event(
                            "response.code_interpreter_call_code.delta",
                            json!({"item_id": item_id, "output_index": output_index, "delta": input}),
                        ));
                    }
                    if let Some(outputs) = call["code_interpreter"]
                        .get("outputs")
                        .filter(|_| call.get("id").is_none())
                    {
                        let outputs: Vec<CodeOutput> = outputs
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|o| serde_json::from_value(o.clone()).ok())
                            .collect();
                        self.code_done(&key, outputs, out).await;
                    }
                }
                Kind::Function => {
                    let fragment = call["function"]["arguments"].as_str().unwrap_or_default();
                    if !fragment.is_empty() {
                        c.text.push_str(fragment);
                        let (item_id, output_index) = (item_id(c), c.output_index);
                        out.push(self.event(
                            "response.function_call_arguments.delta",
                            json!({"item_id": item_id, "output_index": output_index, "delta": fragment}),
                        ));
                    }
                }
                Kind::Shell => {
                    if let Some(output) = call["shell"]["output"].as_array() {
                        self.shell_output(&key, output, out);
                    }
                }
                Kind::Search => {}
            }
        }
    }

    fn call_added(&mut self, key: (String, usize), call: &Value, out: &mut Vec<Value>) {
        let kind = match call["type"].as_str() {
            Some("code_interpreter") => Kind::Code,
            Some("function") => Kind::Function,
            Some("file_search") => Kind::Search,
            Some("shell") => Kind::Shell,
            _ => return,
        };
        let call_id = call["id"].as_str().unwrap_or_default().to_string();
        let name = call["function"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let c = Call {
            kind,
            call_id,
            output_index: self.next_index,
            text: String::new(),
            name,
            interpreting: false,
            action: Value::Null,
            done: false,
        };
        self.next_index += 1;
        let (id, output_index) = (item_id(&c), c.output_index);
        let item = match kind {
            Kind::Code => {
                json!({"type": "code_interpreter_call", "id": id, "status": "in_progress",
                "container_id": self.cx.container_id, "code": "", "outputs": null})
            }
            Kind::Function => json!({"type": "function_call", "id": id, "call_id": c.call_id,
                "name": c.name, "arguments": "", "status": "in_progress"}),
            Kind::Search => json!({"type": "file_search_call", "id": id, "status": "in_progress",
                "queries": [], "results": null}),
            Kind::Shell => json!({"type": "shell_call", "id": id, "call_id": c.call_id,
                "action": {"commands": [], "timeout_ms": null, "max_output_length": null},
                "status": "in_progress", "environment": self.shell_environment()}),
        };
        self.calls.insert(key, c);
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        ));
        let at = json!({"item_id": id, "output_index": output_index});
        match kind {
            Kind::Code => out.push(self.event("response.code_interpreter_call.in_progress", at)),
            Kind::Search => {
                out.push(self.event("response.file_search_call.in_progress", at.clone()));
                out.push(self.event("response.file_search_call.searching", at));
            }
            Kind::Function | Kind::Shell => {}
        }
    }

    /// The model wrote the code and it runs now.
    fn interpreting(&mut self, key: &(String, usize), out: &mut Vec<Value>) {
        let Some(c) = self
            .calls
            .get_mut(key)
            .filter(|c| !c.done && !c.interpreting)
        else {
            return;
        };
        c.interpreting = true;
        let (id, output_index, code) = (item_id(c), c.output_index, c.text.clone());
        out.push(self.event(
            "response.code_interpreter_call_code.done",
            json!({"item_id": id, "output_index": output_index, "code": code}),
        ));
        out.push(self.event(
            "response.code_interpreter_call.interpreting",
            json!({"item_id": id, "output_index": output_index}),
        ));
    }

    async fn code_done(
        &mut self,
        key: &(String, usize),
        outputs: Vec<CodeOutput>,
        out: &mut Vec<Value>,
    ) {
        if let Some(urls) = self.cx.outputs.as_mut() {
            for o in &outputs {
                if let CodeOutput::Image { image } = o {
                    let url = image_url(&self.blobs, &image.file_id).await;
                    urls.insert(image.file_id.clone(), url);
                }
            }
        }
        // A call that ran before this stream saw it start (or was refused) still goes
        // through `code.done` and `interpreting`.
        self.interpreting(key, out);
        let Some(c) = self.calls.get_mut(key) else {
            return;
        };
        c.done = true;
        let (id, output_index, code, call_id) = (
            item_id(c),
            c.output_index,
            c.text.clone(),
            c.call_id.clone(),
        );
        let at = json!({"item_id": id, "output_index": output_index});
        out.push(self.event("response.code_interpreter_call.completed", at));
        let call = StepToolCall::CodeInterpreter {
            id: call_id,
            code_interpreter: CodeInterpreterCall {
                input: code,
                outputs,
            },
        };
        let item = items::tool_call(&call, "completed", &self.cx);
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        ));
    }

    /// A completed step settles every call still open, from the step as recorded.
    async fn step_completed(&mut self, data: &Value, out: &mut Vec<Value>) {
        let Some(step_id) = data["id"].as_str() else {
            return;
        };
        let calls = data["step_details"]["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (index, call) in calls.into_iter().enumerate() {
            let key = (step_id.to_string(), index);
            let Ok(call) = serde_json::from_value::<StepToolCall>(call) else {
                continue;
            };
            let Some(c) = self.calls.get(&key) else {
                continue;
            };
            if c.done {
                continue;
            }
            match (&call, c.kind) {
                (
                    StepToolCall::CodeInterpreter {
                        code_interpreter, ..
                    },
                    Kind::Code,
                ) => {
                    let outputs = code_interpreter.outputs.clone();
                    self.code_done(&key, outputs, out).await;
                }
                (StepToolCall::Shell { shell, .. }, Kind::Shell) => {
                    // What a stream that began late did not see, from the record.
                    self.shell_called(&key, &shell.action, &shell.environment, out);
                    if let Some(output) = &shell.output {
                        self.shell_output(&key, output, out);
                    }
                }
                (StepToolCall::FileSearch { id: call_id, .. }, Kind::Search) => {
                    let (id, output_index) = (item_id(c), c.output_index);
                    if !self.cx.queries.contains_key(call_id) {
                        self.cx.queries = search_queries(&self.db, &[&self.run_id]).await;
                    }
                    let item = items::tool_call(&call, "completed", &self.cx);
                    out.push(self.event(
                        "response.file_search_call.completed",
                        json!({"item_id": id, "output_index": output_index}),
                    ));
                    out.push(self.event(
                        "response.output_item.done",
                        json!({"output_index": output_index, "item": item}),
                    ));
                    if let Some(c) = self.calls.get_mut(&key) {
                        c.done = true;
                    }
                }
                _ => {}
            }
        }
        self.finish_functions(out);
    }

    /// Where the response's shell calls run, as their items show it.
    fn shell_environment(&self) -> Value {
        match self.shell_hosted {
            true => json!({"type": "container_reference", "container_id": self.cx.container_id}),
            false => json!({"type": "local"}),
        }
    }

    /// A shell call runs now (or goes to the client): its commands, one by one, then its
    /// `shell_call` item done.
    fn shell_called(
        &mut self,
        key: &(String, usize),
        action: &Value,
        environment: &Value,
        out: &mut Vec<Value>,
    ) {
        let Some(c) = self
            .calls
            .get_mut(key)
            .filter(|c| c.kind == Kind::Shell && !c.interpreting)
        else {
            return;
        };
        c.interpreting = true;
        c.action = action.clone();
        let (call_id, output_index) = (c.call_id.clone(), c.output_index);
        let commands = action["commands"].as_array().cloned().unwrap_or_default();
        for (i, command) in commands.iter().enumerate() {
            let at = json!({"output_index": output_index, "command_index": i});
            let mut added = at.clone();
            added["command"] = json!("");
            out.push(self.event("response.shell_call_command.added", added));
            let mut delta = at.clone();
            delta["delta"] = command.clone();
            out.push(self.event("response.shell_call_command.delta", delta));
            let mut done = at;
            done["command"] = command.clone();
            out.push(self.event("response.shell_call_command.done", done));
        }
        let call = StepToolCall::Shell {
            id: call_id,
            shell: ShellCall {
                action: action.clone(),
                environment: environment.clone(),
                output: None,
            },
        };
        let item = items::tool_call(&call, "completed", &self.cx);
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        ));
    }

    /// A hosted shell call ran: its `shell_call_output` item, command by command.
    fn shell_output(&mut self, key: &(String, usize), output: &[Value], out: &mut Vec<Value>) {
        let Some(c) = self
            .calls
            .get_mut(key)
            .filter(|c| c.kind == Kind::Shell && !c.done)
        else {
            return;
        };
        c.done = true;
        let (call_id, action) = (c.call_id.clone(), c.action.clone());
        let output_index = self.next_index;
        self.next_index += 1;
        let id = items::call_item_id("sho", &call_id);
        let mut item = items::shell_call_output(&call_id, &action, &[]);
        item["status"] = json!("in_progress");
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        ));
        for (i, entry) in output.iter().enumerate() {
            let at = json!({"item_id": id, "output_index": output_index, "command_index": i});
            let mut delta = at.clone();
            delta["delta"] = json!({"stdout": entry["stdout"], "stderr": entry["stderr"]});
            out.push(self.event("response.shell_call_output_content.delta", delta));
            let mut done = at;
            done["output"] = json!([entry]);
            out.push(self.event("response.shell_call_output_content.done", done));
        }
        let item = items::shell_call_output(&call_id, &action, output);
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        ));
    }

    /// Function calls are complete once the run stops for their outputs (or the step ends).
    fn finish_functions(&mut self, out: &mut Vec<Value>) {
        let mut open: Vec<(String, usize, String, String, usize)> = self
            .calls
            .values_mut()
            .filter(|c| c.kind == Kind::Function && !c.done)
            .map(|c| {
                c.done = true;
                (
                    c.call_id.clone(),
                    c.output_index,
                    c.name.clone(),
                    c.text.clone(),
                    0,
                )
            })
            .collect();
        open.sort_by_key(|c| c.1);
        for (call_id, output_index, name, arguments, _) in open {
            let call = StepToolCall::Function {
                id: call_id.clone(),
                function: FunctionCallWithOutput {
                    name: name.clone(),
                    arguments: arguments.clone(),
                    output: None,
                },
            };
            let item = items::tool_call(&call, "completed", &self.cx);
            let id = items::call_item_id("fc", &call_id);
            out.push(self.event(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": output_index, "name": name, "arguments": arguments}),
            ));
            out.push(self.event(
                "response.output_item.done",
                json!({"output_index": output_index, "item": item}),
            ));
        }
    }
}

fn item_id(c: &Call) -> String {
    let prefix = match c.kind {
        Kind::Code => "ci",
        Kind::Function => "fc",
        Kind::Search => "fs",
        Kind::Shell => "sh",
    };
    items::call_item_id(prefix, &c.call_id)
}
