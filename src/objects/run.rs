//! Runs and run steps.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tools::Tool;
use crate::validate::Metadata;

pub const ACTIVE_STATUSES: &[&str] = &["queued", "in_progress", "requires_action", "cancelling"];

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LastError {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequiredAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub submit_tool_outputs: SubmitToolOutputs,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SubmitToolOutputs {
    pub tool_calls: Vec<FunctionToolCall>,
}

/// A function call the client must answer: `{id, type: "function", function: {name, arguments}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IncompleteDetails {
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub thread_id: String,
    pub assistant_id: String,
    pub status: String,
    pub required_action: Option<RequiredAction>,
    pub last_error: Option<LastError>,
    pub expires_at: Option<i64>,
    pub started_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub instructions: String,
    pub tools: Vec<Tool>,
    pub metadata: Metadata,
    pub usage: Option<Usage>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_prompt_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub truncation_strategy: TruncationStrategy,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub response_format: Value,
    /// The run's or else its assistant's, sent to the model; present only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// A response's cap on code and search calls (Assistants runs have none; not shown then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u64>,
}

impl Run {
    /// A new `queued` run of `thread_id` with every setting at its default; callers set the
    /// ones their surface gives (`..Run::queued(...)`).
    pub fn queued(thread_id: &str, assistant_id: &str, model: &str) -> Run {
        Run {
            id: crate::ids::new_id(crate::ids::RUN),
            object: "thread.run".into(),
            created_at: crate::ids::now(),
            thread_id: thread_id.to_string(),
            assistant_id: assistant_id.to_string(),
            status: "queued".into(),
            required_action: None,
            last_error: None,
            expires_at: None,
            started_at: None,
            cancelled_at: None,
            failed_at: None,
            completed_at: None,
            incomplete_details: None,
            model: model.to_string(),
            instructions: String::new(),
            tools: vec![],
            metadata: Default::default(),
            usage: None,
            temperature: None,
            top_p: None,
            max_prompt_tokens: None,
            max_completion_tokens: None,
            truncation_strategy: TruncationStrategy::default(),
            tool_choice: Value::from("auto"),
            parallel_tool_calls: true,
            response_format: Value::from("auto"),
            reasoning_effort: None,
            max_tool_calls: None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        !ACTIVE_STATUSES.contains(&self.status.as_str())
    }

    pub fn has_code_interpreter(&self) -> bool {
        self.tools
            .iter()
            .any(|t| matches!(t, Tool::CodeInterpreter))
    }

    /// Whether the run has the `shell` tool, and whether it runs hosted (`Some(true)`).
    pub fn shell(&self) -> Option<bool> {
        self.tools.iter().find_map(|t| match t {
            Tool::Shell { shell } => Some(shell.hosted),
            _ => None,
        })
    }

    /// Whether the run's tools work in a sandbox: code_interpreter or the hosted shell.
    pub fn uses_sandbox(&self) -> bool {
        self.has_code_interpreter() || self.shell() == Some(true)
    }

    /// The run's file_search tool options, when it has the tool.
    pub fn file_search(&self) -> Option<Option<&Value>> {
        self.tools.iter().find_map(|t| match t {
            Tool::FileSearch { file_search } => Some(file_search.as_ref()),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TruncationStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub last_messages: Option<u64>,
}

impl Default for TruncationStrategy {
    fn default() -> Self {
        Self {
            kind: "auto".into(),
            last_messages: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunStep {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub run_id: String,
    pub assistant_id: String,
    pub thread_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub cancelled_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<LastError>,
    pub step_details: StepDetails,
    pub usage: Option<Usage>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepDetails {
    MessageCreation { message_creation: MessageCreation },
    ToolCalls { tool_calls: Vec<StepToolCall> },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MessageCreation {
    pub message_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepToolCall {
    CodeInterpreter {
        id: String,
        code_interpreter: CodeInterpreterCall,
    },
    Function {
        id: String,
        function: FunctionCallWithOutput,
    },
    FileSearch {
        id: String,
        file_search: FileSearchCall,
    },
    /// A Responses `shell` call (see `ShellCall`).
    Shell { id: String, shell: ShellCall },
}

impl StepToolCall {
    pub fn id(&self) -> &str {
        match self {
            StepToolCall::CodeInterpreter { id, .. }
            | StepToolCall::Function { id, .. }
            | StepToolCall::FileSearch { id, .. }
            | StepToolCall::Shell { id, .. } => id,
        }
    }
}

/// A `shell` call: the action the model asked for (`commands`, `timeout_ms`,
/// `max_output_length`), where it runs (`{type: container_reference, container_id}` or
/// `{type: local}`), and, once a hosted call ran, one output entry per command
/// (`{stdout, stderr, outcome}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShellCall {
    pub action: Value,
    pub environment: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileSearchCall {
    pub ranking_options: RankingOptions,
    pub results: Vec<FileSearchResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RankingOptions {
    pub ranker: String,
    pub score_threshold: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileSearchResult {
    pub file_id: String,
    pub file_name: String,
    pub score: f64,
    pub content: Vec<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CodeInterpreterCall {
    pub input: String,
    pub outputs: Vec<CodeOutput>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CodeOutput {
    Logs { logs: String },
    Image { image: ImageRef },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageRef {
    pub file_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionCallWithOutput {
    pub name: String,
    pub arguments: String,
    pub output: Option<String>,
}
