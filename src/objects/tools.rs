//! Tools and tool resources, shared by assistants, threads and runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::validate;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "Value")]
pub enum Tool {
    CodeInterpreter,
    /// Accepted and kept so apps that list it keep working; assistd has no vector stores.
    FileSearch {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_search: Option<Value>,
    },
    Function {
        function: FunctionDef,
    },
    /// The Responses API's hosted or local `shell` tool (never on an assistant or a run the
    /// Assistants API makes).
    Shell {
        shell: ShellTool,
    },
}

/// How a run's `shell` tool runs its commands.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShellTool {
    /// In the run's container; else the client runs them (`local`).
    pub hosted: bool,
}

/// The same shape as [`Tool`], used to parse one after its fields were checked.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToolShape {
    CodeInterpreter,
    FileSearch {
        #[serde(default)]
        file_search: Option<Value>,
    },
    Function {
        function: FunctionDef,
    },
    Shell {
        shell: ShellTool,
    },
}

/// Internally tagged enums ignore unknown fields; the API refuses them.
impl TryFrom<Value> for Tool {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        let allowed: &[&str] = match value.get("type").and_then(Value::as_str) {
            Some("code_interpreter") => &["type"],
            Some("file_search") => &["type", "file_search"],
            Some("function") => &["type", "function"],
            Some("shell") => &["type", "shell"],
            _ => &[],
        };
        if let (Value::Object(fields), false) = (&value, allowed.is_empty()) {
            if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!("unknown field `{extra}`"));
            }
        }
        match serde_json::from_value::<ToolShape>(value).map_err(|e| e.to_string())? {
            ToolShape::CodeInterpreter => Ok(Tool::CodeInterpreter),
            ToolShape::FileSearch { file_search } => Ok(Tool::FileSearch { file_search }),
            ToolShape::Function { function } => Ok(Tool::Function { function }),
            ToolShape::Shell { shell } => Ok(Tool::Shell { shell }),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

pub fn validate_tools(param: &str, tools: &[Tool]) -> ApiResult<()> {
    validate::max_items(param, tools, 128)?;
    for (i, tool) in tools.iter().enumerate() {
        if let Tool::Shell { .. } = tool {
            return Err(ApiError::invalid_code(
                format!("{param}[{i}].type"),
                "invalid_value",
                format!("Invalid value for '{param}[{i}].type': the shell tool is served by the Responses API only."),
            ));
        }
        if let Tool::Function { function } = tool {
            let p = format!("{param}[{i}].function.name");
            let valid = !function.name.is_empty()
                && function.name.len() <= 64
                && function
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ApiError::invalid_code(
                    p,
                    "invalid_value",
                    format!("Invalid '{param}[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."),
                ));
            }
            if let Some(params) = &function.parameters {
                if !params.is_object() {
                    return Err(ApiError::invalid_code(
                        format!("{param}[{i}].function.parameters"),
                        "invalid_type",
                        format!("Invalid type for '{param}[{i}].function.parameters': expected an object."),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_interpreter: Option<CodeInterpreterResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_search: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodeInterpreterResources {
    #[serde(default)]
    pub file_ids: Vec<String>,
}

/// How OpenAI fills in a file_search tool given without options.
fn default_file_search() -> Value {
    serde_json::json!({"ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0}})
}

/// Fills in what OpenAI fills in on an assistant: a file_search tool's ranking options, and an
/// empty resource entry for each enabled tool that has resources.
pub fn complete(tools: &mut [Tool], resources: &mut ToolResources) {
    for tool in tools.iter_mut() {
        match tool {
            Tool::CodeInterpreter => {
                resources
                    .code_interpreter
                    .get_or_insert_with(Default::default);
            }
            Tool::FileSearch { file_search } => {
                file_search.get_or_insert_with(default_file_search);
                resources
                    .file_search
                    .get_or_insert_with(|| serde_json::json!({"vector_store_ids": []}));
            }
            Tool::Function { .. } | Tool::Shell { .. } => {}
        }
    }
}

impl ToolResources {
    pub fn code_interpreter_file_ids(&self) -> &[String] {
        self.code_interpreter
            .as_ref()
            .map(|c| c.file_ids.as_slice())
            .unwrap_or_default()
    }

    /// The vector store ids `file_search` names.
    pub fn store_ids(&self) -> Vec<String> {
        self.file_search
            .as_ref()
            .and_then(|f| f.get("vector_store_ids"))
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `auto`, or `{"type": "text" | "json_object" | "json_schema", ...}`; a `json_schema` format
/// needs its `json_schema` object with a `name`.
pub fn validate_response_format(param: &str, value: &Value) -> ApiResult<()> {
    if value.get("type").and_then(Value::as_str) == Some("json_schema") {
        let missing = |field: String| {
            ApiError::invalid_code(
                field.clone(),
                "missing_required_parameter",
                format!("Missing required parameter: '{field}'."),
            )
        };
        let schema = value
            .get("json_schema")
            .ok_or_else(|| missing(format!("{param}.json_schema")))?;
        if !schema.get("name").is_some_and(Value::is_string) {
            return Err(missing(format!("{param}.json_schema.name")));
        }
    }
    let ok = match value {
        Value::String(s) => s == "auto",
        Value::Object(o) => matches!(
            o.get("type").and_then(Value::as_str),
            Some("text" | "json_object" | "json_schema")
        ),
        Value::Null => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_code(
            param,
            "invalid_value",
            format!("Invalid '{param}': expected 'auto' or an object with type 'text', 'json_object' or 'json_schema'."),
        ))
    }
}
