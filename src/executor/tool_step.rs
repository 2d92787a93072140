//! The tool_calls step of a turn, streamed while the model writes its calls, as OpenAI
//! streams it: the step is announced empty at the first call; each call's first delta carries
//! its id and type with empty content, and later deltas only the new characters of its code
//! (decoded from the JSON arguments) or of a function's arguments. The SDKs take a call's
//! first delta as its creation, so the code must come in the later ones.
//!
//! The SDKs also take a delta for another index as the end of the current call, so each
//! call's deltas must come together: while a code call has not run yet, the deltas of the
//! calls after it wait, and are released when the run loop reaches them.

use serde_json::{json, Value};

use super::code_stream::{Arguments, CodeStream};
use super::model::Turn;
use super::prompt::{CODE_TOOL, SEARCH_TOOL, SHELL_TOOL};
use super::record;
use super::run_loop::{internal, RunTask, Stop};
use super::search;
use crate::objects::run::{
    CodeInterpreterCall, CodeOutput, FileSearchCall, FunctionCallWithOutput, RunStep, ShellCall,
    StepDetails, StepToolCall,
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum CallKind {
    Code,
    Search,
    Function,
    /// The Responses `shell` tool, hosted or local.
    Shell,
}

impl CallKind {
    pub(super) fn of(name: &str, shell: bool) -> Self {
        match name {
            CODE_TOOL | "python" => CallKind::Code,
            SEARCH_TOOL => CallKind::Search,
            SHELL_TOOL if shell => CallKind::Shell,
            _ => CallKind::Function,
        }
    }

    /// Calls whose results come after the model's turn: the deltas of later calls wait.
    fn runs_later(self) -> bool {
        matches!(self, CallKind::Code | CallKind::Shell)
    }
}

/// A turn's tool_calls step, from the model's first call until its calls have run.
pub(super) struct ToolStep {
    pub step: RunStep,
    calls: Vec<StreamedCall>,
    /// Calls up to this index stream as they come; the deltas of later ones wait.
    live: usize,
}

struct StreamedCall {
    kind: CallKind,
    code: CodeStream,
    held: Vec<Value>,
}

/// A turn's tool calls once the turn is over.
pub(super) struct SettledCalls {
    /// Per call, what kind of tool it calls.
    pub kinds: Vec<CallKind>,
    /// Per call, why its arguments cannot be used (`None` when they can).
    pub problems: Vec<Option<String>>,
}

impl RunTask {
    /// The model began a call: the step opens at the first one, then the call is announced.
    pub(super) async fn call_begun(
        &mut self,
        tools: &mut Option<ToolStep>,
        id: &str,
        name: &str,
    ) -> Result<(), Stop> {
        let tools = match tools {
            Some(tools) => tools,
            None => {
                let step = self.new_step(StepDetails::ToolCalls { tool_calls: vec![] });
                record::insert_step(&self.inner.db, &self.project, &step)
                    .await
                    .map_err(internal)?;
                self.emit.emit("thread.run.step.created", &step);
                self.emit.emit("thread.run.step.in_progress", &step);
                tools.insert(ToolStep {
                    step,
                    calls: vec![],
                    live: 0,
                })
            }
        };
        let kind = CallKind::of(name, self.run.shell().is_some());
        let announced = match kind {
            CallKind::Shell => json!({"id": id, "type": "shell", "shell": {}}),
            CallKind::Code => json!({"id": id, "type": "code_interpreter",
                "code_interpreter": {"input": "", "outputs": []}}),
            CallKind::Search => json!({"id": id, "type": "file_search", "file_search": {}}),
            CallKind::Function => json!({"id": id, "type": "function",
                "function": {"name": name, "arguments": "", "output": null}}),
        };
        let index = tools.calls.len();
        tools.calls.push(StreamedCall {
            kind,
            code: CodeStream::default(),
            held: vec![],
        });
        // Calls after functions and searches stream at once: nothing of those comes later.
        if tools.calls[..index].iter().all(|c| !c.kind.runs_later()) {
            tools.live = index;
        }
        self.send(tools, index, announced);
        Ok(())
    }

    /// Sends a delta of call `index`, or keeps it until that call's turn comes.
    fn send(&self, tools: &mut ToolStep, index: usize, delta: Value) {
        if index <= tools.live {
            self.step_delta(&tools.step, index, delta);
        } else if let Some(call) = tools.calls.get_mut(index) {
            call.held.push(delta);
        }
    }

    /// The run loop reached call `index`: what it held back goes out now.
    pub(super) fn release_call(&self, tools: &mut ToolStep, index: usize) {
        tools.live = tools.live.max(index);
        for i in 0..=index.min(tools.calls.len().saturating_sub(1)) {
            let held = std::mem::take(&mut tools.calls[i].held);
            for delta in held {
                self.step_delta(&tools.step, i, delta);
            }
        }
    }

    /// More of call `index`'s arguments: the new code, or the raw function arguments.
    pub(super) fn call_arguments(&self, tools: &mut ToolStep, index: usize, fragment: &str) {
        let Some(call) = tools.calls.get_mut(index) else {
            return;
        };
        match call.kind {
            CallKind::Code => {
                let piece = call.code.push(fragment);
                if !piece.is_empty() {
                    self.send(tools, index, code_input(&piece));
                }
            }
            CallKind::Function => self.send(
                tools,
                index,
                json!({"type": "function", "function": {"arguments": fragment}}),
            ),
            // OpenAI streams no arguments for file_search; its results come with the step.
            // A shell call's commands are sent whole when it runs (or is handed over).
            CallKind::Search | CallKind::Shell => {}
        }
    }

    /// The turn is over: the step records its whole calls, each code call's input exactly
    /// the code that was streamed.
    pub(super) async fn settle_tool_step(
        &mut self,
        tools: &mut ToolStep,
        turn: &Turn,
    ) -> Result<SettledCalls, Stop> {
        let mut recorded = vec![];
        let mut kinds = vec![];
        let mut problems = vec![];
        for (index, call) in turn.tool_calls.iter().enumerate() {
            let Some(streamed) = tools.calls.get_mut(index) else {
                break;
            };
            let kind = streamed.kind;
            kinds.push(kind);
            let (details, problem) = match kind {
                CallKind::Code => {
                    let (rest, code, verdict) = std::mem::take(&mut streamed.code).finish();
                    if !rest.is_empty() {
                        self.send(tools, index, code_input(&rest));
                    }
                    let details = StepToolCall::CodeInterpreter {
                        id: call.id.clone(),
                        code_interpreter: CodeInterpreterCall {
                            input: code,
                            outputs: vec![],
                        },
                    };
                    let problem = match verdict {
                        Arguments::Valid => None,
                        Arguments::Invalid(why) => Some(not_json(CODE_TOOL, &why)),
                    };
                    (details, problem)
                }
                CallKind::Search => {
                    let details = StepToolCall::FileSearch {
                        id: call.id.clone(),
                        file_search: FileSearchCall {
                            ranking_options: search::ranking_options(
                                self.run.file_search().flatten(),
                            ),
                            results: vec![],
                        },
                    };
                    let problem =
                        broken_object(&call.arguments).map(|why| not_json(SEARCH_TOOL, &why));
                    (details, problem)
                }
                CallKind::Shell => {
                    let (action, problem) = match super::shell::action(&call.arguments) {
                        Ok(action) => (action, None),
                        Err(why) => (
                            super::shell::empty_action(),
                            Some(not_json(SHELL_TOOL, &why)),
                        ),
                    };
                    let details = StepToolCall::Shell {
                        id: call.id.clone(),
                        shell: ShellCall {
                            action,
                            environment: self.shell_environment(),
                            output: None,
                        },
                    };
                    (details, problem)
                }
                CallKind::Function => {
                    let details = StepToolCall::Function {
                        id: call.id.clone(),
                        function: FunctionCallWithOutput {
                            name: call.name.clone(),
                            arguments: call.arguments.clone(),
                            output: None,
                        },
                    };
                    (details, None)
                }
            };
            recorded.push(details);
            problems.push(problem);
        }
        let step = &mut tools.step;
        step.step_details = StepDetails::ToolCalls {
            tool_calls: recorded,
        };
        step.usage = Some(turn.usage);
        record::put_step(&self.inner.db, step)
            .await
            .map_err(internal)?;
        Ok(SettledCalls { kinds, problems })
    }

    /// A call whose arguments could not be read: nothing runs, the step shows why, and the
    /// model is told so it can call again.
    pub(super) async fn refuse_call(
        &mut self,
        step: &mut RunStep,
        index: usize,
        problem: &str,
    ) -> Result<String, Stop> {
        if let StepDetails::ToolCalls { tool_calls } = &mut step.step_details {
            if let Some(StepToolCall::CodeInterpreter {
                code_interpreter, ..
            }) = tool_calls.get_mut(index)
            {
                let logs = CodeOutput::Logs {
                    logs: problem.to_string(),
                };
                code_interpreter.outputs = vec![logs.clone()];
                record::put_step(&self.inner.db, step)
                    .await
                    .map_err(internal)?;
                self.code_outputs_delta(step, index, &[logs]);
            }
        }
        Ok(problem.to_string())
    }

    /// The delta that adds a code call's outputs once it ran.
    pub(super) fn code_outputs_delta(&self, step: &RunStep, index: usize, outputs: &[CodeOutput]) {
        let outputs: Vec<Value> = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut v = serde_json::to_value(o).unwrap_or_default();
                v["index"] = json!(i);
                v
            })
            .collect();
        // No `id` here: the SDKs join string fields of later deltas onto the first one's.
        self.step_delta(
            step,
            index,
            json!({"type": "code_interpreter", "code_interpreter": {"outputs": outputs}}),
        );
    }
}

fn code_input(piece: &str) -> Value {
    json!({"type": "code_interpreter", "code_interpreter": {"input": piece}})
}

/// Why arguments that began as a JSON object are not one (raw text is fine: it is the query).
fn broken_object(arguments: &str) -> Option<String> {
    if !arguments.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(_)) => None,
        Ok(_) => Some("the arguments are not a JSON object".into()),
        Err(e) => Some(e.to_string()),
    }
}

fn not_json(tool: &str, why: &str) -> String {
    let example = match tool {
        CODE_TOOL => r#"{"code": "..."}"#,
        SHELL_TOOL => r#"{"commands": ["ls -l"], "timeout_ms": 60000}"#,
        _ => r#"{"query": "..."}"#,
    };
    format!(
        "Error: this {tool} call was not run because its arguments are not valid JSON ({why}). \
         Call {tool} again with arguments like {example}."
    )
}
