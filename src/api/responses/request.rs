//! The body of `POST /v1/responses`, checked, and what the run executing it is made of:
//! the Responses tool shapes mapped onto the run loop's, and the input as items.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::responses::compaction;
use crate::domain::responses::input::{self, Input};
use crate::error::{ApiError, ApiResult};
use crate::objects::tools::{FunctionDef, Tool};
use crate::retrieval::Filter;
use crate::validate::{self, Metadata};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResponse {
    pub model: String,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub max_tool_calls: Option<u64>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub text: Option<Value>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Accepted; deltas carry no obfuscation padding either way.
    #[serde(default)]
    #[allow(dead_code)]
    pub stream_options: Option<Value>,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub truncation: Option<String>,
    /// `[{"type": "compaction", "compact_threshold": N}]`: compact the context past N tokens.
    #[serde(default)]
    pub context_management: Option<Vec<Value>>,
    /// Set when the context was compacted before this response (see `create::compact`).
    #[serde(skip)]
    pub compacted: Option<Compacted>,
    /// The `store: false` responses this request may name as its previous one: those its
    /// WebSocket made.
    #[serde(skip)]
    pub held: Vec<String>,
    // Echoed only.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(default)]
    pub safety_identifier: Option<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
    /// Echoed only (Open Responses has them; the model is not sent them).
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
}

/// What a compaction made of a request: the item the response shows first in its output,
/// and the `previous_response_id` it was asked with (its context now is the item).
#[derive(Debug)]
pub struct Compacted {
    pub item: Value,
    pub previous_response_id: Option<String>,
}

/// Where a response's code runs, from its `code_interpreter` tool.
#[derive(Debug, Clone, PartialEq)]
pub enum Container {
    Auto {
        file_ids: Vec<String>,
        memory_limit: Option<String>,
        /// As the request gave it; checked against the operator's ceiling when used.
        network_policy: Option<Value>,
        /// `skill_reference` / `inline` skills as sent (checked when the container is chosen).
        skills: Vec<Value>,
    },
    Id(String),
}

const INCLUDES: &[&str] = &[
    "code_interpreter_call.outputs",
    "file_search_call.results",
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
    "message.input_image.image_url",
];

impl CreateResponse {
    pub fn check(&self) -> ApiResult<()> {
        validate::non_empty("model", &self.model)?;
        if let Some(t) = self.temperature {
            validate::range("temperature", t, 0.0, 2.0)?;
        }
        if let Some(p) = self.top_p {
            validate::range("top_p", p, 0.0, 1.0)?;
        }
        if let Some(m) = &self.metadata {
            validate::metadata("metadata", m)?;
        }
        if let Some(n) = self.max_output_tokens.filter(|n| *n < 16) {
            return Err(ApiError::invalid_code(
                "max_output_tokens",
                "integer_below_min_value",
                format!("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {n} instead."),
            ));
        }
        // Echoed on the response, where the schemas say objects.
        for (param, value) in [("reasoning", &self.reasoning), ("text", &self.text)] {
            if value.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(ApiError::invalid_code(
                    param,
                    "invalid_type",
                    format!("Invalid type for '{param}': expected an object."),
                ));
            }
        }
        if self.previous_response_id.is_some() && self.conversation.is_some() {
            return Err(ApiError::invalid_code(
                "conversation",
                "mutually_exclusive_parameters",
                "Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or 'conversation'.",
            ));
        }
        if let Some(c) = &self.conversation {
            if c.as_str().or_else(|| c["id"].as_str()).is_none() {
                return Err(ApiError::invalid_code(
                    "conversation",
                    "invalid_type",
                    "Invalid 'conversation': expected a conversation id or {\"id\": ...}.",
                ));
            }
        }
        if self.background == Some(true) && self.store == Some(false) {
            return Err(ApiError::invalid_param(
                "background",
                "Background responses require 'store' to be true.",
            ));
        }
        check_includes(self.include.as_deref().unwrap_or_default())?;
        if let Some(t) = self
            .truncation
            .as_deref()
            .filter(|t| !matches!(*t, "auto" | "disabled"))
        {
            return Err(ApiError::invalid_code(
                "truncation",
                "invalid_value",
                format!("Invalid value: '{t}'. Supported values are: 'auto' and 'disabled'."),
            ));
        }
        self.compact_threshold()?;
        Ok(())
    }

    /// The token count past which `context_management` compacts the context, if it asks to.
    pub fn compact_threshold(&self) -> ApiResult<Option<u64>> {
        let entries = self.context_management.as_deref().unwrap_or_default();
        if entries.len() > 1 {
            return Err(ApiError::invalid_param(
                "context_management",
                "Only one context_management entry is supported.",
            ));
        }
        let Some(entry) = entries.first() else {
            return Ok(None);
        };
        if entry["type"] != "compaction" {
            return Err(ApiError::invalid_code(
                "context_management[0].type",
                "invalid_value",
                "Invalid 'context_management[0].type': only 'compaction' is supported.",
            ));
        }
        if let Some(key) = entry
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .find(|k| !matches!(k.as_str(), "type" | "compact_threshold"))
        {
            return Err(ApiError::invalid_code(
                format!("context_management[0].{key}"),
                "unknown_parameter",
                format!("Unknown parameter: 'context_management[0].{key}'."),
            ));
        }
        if self.conversation.is_some() {
            return Err(ApiError::invalid_param(
                "context_management",
                "This server does not compact a conversation's context: use previous_response_id or pass the input yourself.",
            ));
        }
        let param = "context_management[0].compact_threshold";
        match &entry["compact_threshold"] {
            Value::Null => Err(missing(param)),
            v => match v.as_u64() {
                Some(n) if n >= compaction::MIN_THRESHOLD => Ok(Some(n)),
                Some(n) => Err(ApiError::invalid_code(
                    param,
                    "integer_below_min_value",
                    format!("Invalid '{param}': integer below minimum value. Expected a value >= {}, but got {n} instead.", compaction::MIN_THRESHOLD),
                )),
                None => Err(ApiError::invalid_code(
                    param,
                    "invalid_type",
                    format!("Invalid type for '{param}': expected an integer."),
                )),
            },
        }
    }

    /// The run loop's tools, the code container asked for, and the vector stores searched.
    pub fn tools(&self) -> ApiResult<(Vec<Tool>, Option<Container>, Vec<String>)> {
        let mut tools = vec![];
        let mut container = None;
        let mut stores = vec![];
        for (i, t) in self.tools.iter().flatten().enumerate() {
            let at = |f: &str| format!("tools[{i}].{f}");
            let kind = t.get("type").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "function" => {
                    let name = t.get("name").and_then(Value::as_str).ok_or_else(|| missing(&at("name")))?;
                    tools.push(Tool::Function {
                        function: FunctionDef {
                            name: name.to_string(),
                            description: t.get("description").and_then(Value::as_str).map(str::to_string),
                            parameters: t.get("parameters").filter(|p| !p.is_null()).cloned(),
                            strict: t.get("strict").and_then(Value::as_bool),
                        },
                    });
                }
                "code_interpreter" => {
                    let asked = code_container(t.get("container"), &at("container"))?;
                    container = Some(one_container(container, asked, &at("container"))?);
                    tools.push(Tool::CodeInterpreter);
                }
                "shell" => {
                    let (shell, asked) = super::shell::tool(t, &at("environment"))?;
                    if let Some(asked) = asked {
                        container = Some(one_container(container, asked, &at("environment"))?);
                    }
                    tools.push(shell);
                }
                "file_search" => {
                    let ids = t.get("vector_store_ids").and_then(Value::as_array).ok_or_else(|| missing(&at("vector_store_ids")))?;
                    stores.extend(ids.iter().filter_map(Value::as_str).map(str::to_string));
                    let mut options = json!({});
                    if let Some(n) = t.get("max_num_results") {
                        options["max_num_results"] = n.clone();
                    }
                    if let Some(r) = t.get("ranking_options") {
                        options["ranking_options"] = r.clone();
                    }
                    if let Some(f) = t.get("filters").filter(|f| !f.is_null()) {
                        let param = at("filters");
                        let filter: Filter = serde_json::from_value(f.clone()).map_err(|e| {
                            ApiError::invalid_code(
                                param.clone(),
                                "invalid_value",
                                format!("Invalid '{param}': {e}."),
                            )
                        })?;
                        filter.validate(&param)?;
                        options["filters"] = f.clone();
                    }
                    tools.push(Tool::FileSearch { file_search: Some(options) });
                }
                "" => return Err(missing(&at("type"))),
                other => {
                    return Err(ApiError::invalid_code(
                        at("type"),
                        "unsupported_tool",
                        format!("Tool type '{other}' is not supported by this server: it serves 'function', 'code_interpreter', 'file_search' and 'shell'."),
                    ))
                }
            }
        }
        super::shell::check_names(&tools)?;
        Ok((tools, container, stores))
    }

    /// `text.format` as the run loop's `response_format`.
    pub fn response_format(&self) -> ApiResult<Value> {
        let Some(format) = self.text.as_ref().and_then(|t| t.get("format")) else {
            return Ok(json!("auto"));
        };
        match format.get("type").and_then(Value::as_str) {
            Some("text") => Ok(json!({"type": "text"})),
            Some("json_object") => Ok(json!({"type": "json_object"})),
            Some("json_schema") => {
                let name = format
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing("text.format.name"))?;
                let schema = format
                    .get("schema")
                    .ok_or_else(|| missing("text.format.schema"))?;
                let mut spec = json!({"name": name, "schema": schema});
                for k in ["strict", "description"] {
                    if let Some(v) = format.get(k) {
                        spec[k] = v.clone();
                    }
                }
                Ok(json!({"type": "json_schema", "json_schema": spec}))
            }
            _ => Err(ApiError::invalid_code(
                "text.format.type",
                "invalid_value",
                "Invalid 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
            )),
        }
    }

    /// `tool_choice` in the run loop's form.
    pub fn tool_choice(&self) -> ApiResult<Value> {
        let Some(choice) = &self.tool_choice else {
            return Ok(json!("auto"));
        };
        match choice {
            Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => {
                Ok(choice.clone())
            }
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("function") => match o.get("name").and_then(Value::as_str) {
                    Some(name) => Ok(json!({"type": "function", "function": {"name": name}})),
                    None => Err(missing("tool_choice.name")),
                },
                Some(t @ ("code_interpreter" | "file_search" | "shell")) => Ok(json!({"type": t})),
                _ => Err(bad_choice()),
            },
            _ => Err(bad_choice()),
        }
    }

    /// The input as items: a string is one user message.
    pub fn input(&self) -> ApiResult<Vec<Input>> {
        match &self.input {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::String(s)) => Ok(vec![Input::Message {
                role: "user".into(),
                parts: vec![json!({"type": "input_text", "text": s})],
            }]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| input::parse(item, &format!("input[{i}]")))
                .collect(),
            Some(_) => Err(ApiError::invalid_code(
                "input",
                "invalid_type",
                "Invalid type for 'input': expected a string or an array of input items.",
            )),
        }
    }

    /// The request fields the object echoes.
    pub fn echo(&self) -> Value {
        let mut echo = json!({
            "model": self.model,
            "instructions": self.instructions,
            "previous_response_id": self.previous_response_id,
            "tools": self.tools.iter().flatten().map(echo_tool).collect::<Vec<_>>(),
            "tool_choice": self.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            "parallel_tool_calls": self.parallel_tool_calls.unwrap_or(true),
            "max_output_tokens": self.max_output_tokens,
            "max_tool_calls": self.max_tool_calls,
            "metadata": self.metadata.clone().unwrap_or_default(),
            "temperature": self.temperature.unwrap_or(1.0),
            "top_p": self.top_p.unwrap_or(1.0),
            "text": self.text.clone().unwrap_or_else(|| json!({"format": {"type": "text"}})),
            "reasoning": self.reasoning.clone().unwrap_or_else(|| json!({"effort": null, "summary": null})),
            "store": self.store.unwrap_or(true),
            "background": self.background.unwrap_or(false),
            "stream": self.stream.unwrap_or(false),
            "truncation": self.truncation.clone().unwrap_or_else(|| "disabled".into()),
            "include": self.include.clone().unwrap_or_default(),
            "user": self.user,
        });
        if let Some(c) = &self.compacted {
            echo["previous_response_id"] = json!(c.previous_response_id);
            echo["compaction"] = c.item.clone();
        }
        if let Some(tier) = &self.service_tier {
            echo["service_tier"] = json!(tier);
        }
        for (key, value) in [
            ("safety_identifier", json!(self.safety_identifier)),
            ("prompt_cache_key", json!(self.prompt_cache_key)),
            ("top_logprobs", json!(self.top_logprobs)),
            ("presence_penalty", json!(self.presence_penalty)),
            ("frequency_penalty", json!(self.frequency_penalty)),
        ] {
            if !value.is_null() {
                echo[key] = value;
            }
        }
        echo
    }
}

/// A tool as the response shows it: a function tool with every field its schema requires
/// (`strict` a boolean, `description` and `parameters` present).
fn echo_tool(tool: &Value) -> Value {
    let mut tool = tool.clone();
    if tool["type"] == "function" {
        if !tool["strict"].is_boolean() {
            tool["strict"] = json!(false);
        }
        for key in ["description", "parameters"] {
            if tool.get(key).is_none() {
                tool[key] = Value::Null;
            }
        }
    }
    tool
}

/// `include` values: each one the API knows.
pub fn check_includes(include: &[String]) -> ApiResult<()> {
    for (i, inc) in include.iter().enumerate() {
        if !INCLUDES.contains(&inc.as_str()) {
            return Err(ApiError::invalid_code(
                format!("include[{i}]"),
                "invalid_value",
                format!(
                    "Invalid value: '{inc}'. Supported values are: {}.",
                    INCLUDES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_code(
        param,
        "missing_required_parameter",
        format!("Missing required parameter: '{param}'."),
    )
}

fn bad_choice() -> ApiError {
    ApiError::invalid_code(
        "tool_choice",
        "invalid_value",
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a named tool.",
    )
}

/// The one container a response's code_interpreter and hosted shell share: a named one wins
/// over `auto`; two different named ones are refused.
fn one_container(have: Option<Container>, asked: Container, param: &str) -> ApiResult<Container> {
    match (have, asked) {
        (None, asked) => Ok(asked),
        (Some(Container::Id(a)), Container::Id(b)) if a != b => Err(ApiError::invalid_param(
            param,
            format!("This response's tools name two containers ('{a}' and '{b}'): code_interpreter and shell share one container."),
        )),
        (Some(have @ Container::Id(_)), _) => Ok(have),
        (Some(Container::Auto { file_ids: first, .. }), mut asked @ Container::Auto { .. }) => {
            if let Container::Auto { file_ids, .. } = &mut asked {
                for id in first {
                    if !file_ids.contains(&id) {
                        file_ids.push(id);
                    }
                }
            }
            Ok(asked)
        }
        (Some(_), asked) => Ok(asked),
    }
}

pub(super) fn code_container(value: Option<&Value>, param: &str) -> ApiResult<Container> {
    match value {
        Some(Value::String(id)) => Ok(Container::Id(id.clone())),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("auto") => {
            let file_ids = o
                .get("file_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let memory_limit = o
                .get("memory_limit")
                .and_then(Value::as_str)
                .map(str::to_string);
            let skills = match o.get("skills") {
                None | Some(Value::Null) => vec![],
                Some(Value::Array(skills)) => skills.clone(),
                Some(_) => {
                    return Err(ApiError::invalid_code(
                        format!("{param}.skills"),
                        "invalid_type",
                        format!("Invalid '{param}.skills': expected an array."),
                    ))
                }
            };
            Ok(Container::Auto {
                file_ids,
                memory_limit,
                network_policy: o.get("network_policy").cloned(),
                skills,
            })
        }
        None => Err(missing(param)),
        Some(_) => Err(ApiError::invalid_code(
            param,
            "invalid_value",
            format!("Invalid '{param}': expected a container id or {{\"type\": \"auto\"}}."),
        )),
    }
}
