//! `shell_call` and `shell_call_output` items given as input: checked and completed (an id
//! from the call id when the client sent none). They are context for the model, never run
//! again; a `shell_call_output` answering a local call of the previous response is that
//! call's result (see the responses `create`).

use serde_json::{json, Value};

use super::items::call_item_id;
use crate::error::{ApiError, ApiResult};

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

fn call_id(item: &Value, param: &str) -> ApiResult<String> {
    match item.get("call_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        None | Some(Value::Null) => Err(missing(&format!("{param}.call_id"))),
        Some(_) => Err(invalid_type(
            &format!("{param}.call_id"),
            "a non-empty string",
        )),
    }
}

fn id_or(item: &Value, prefix: &str, call_id: &str, param: &str) -> ApiResult<String> {
    match item.get("id") {
        Some(Value::String(id)) => Ok(id.clone()),
        None | Some(Value::Null) => Ok(call_item_id(prefix, call_id)),
        Some(_) => Err(invalid_type(&format!("{param}.id"), "a string")),
    }
}

fn optional_count(value: Option<&Value>, param: &str) -> ApiResult<Value> {
    match value {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(v) if v.as_u64().is_some() => Ok(v.clone()),
        Some(_) => Err(invalid_type(param, "a non-negative integer or null")),
    }
}

/// A `shell_call`: `call_id` and `action.commands` required.
pub fn call(item: &Value, param: &str) -> ApiResult<Value> {
    let call_id = call_id(item, param)?;
    let action = item
        .get("action")
        .filter(|a| a.is_object())
        .ok_or_else(|| missing(&format!("{param}.action")))?;
    let commands = match action.get("commands") {
        Some(Value::Array(c)) if c.iter().all(Value::is_string) => c.clone(),
        None | Some(Value::Null) => return Err(missing(&format!("{param}.action.commands"))),
        Some(_) => {
            return Err(invalid_type(
                &format!("{param}.action.commands"),
                "an array of strings",
            ))
        }
    };
    let environment = match item.get("environment") {
        None | Some(Value::Null) => Value::Null,
        Some(e) if matches!(e["type"].as_str(), Some("local" | "container_reference")) => e.clone(),
        Some(_) => {
            return Err(ApiError::invalid_code(
                format!("{param}.environment.type"),
                "invalid_value",
                format!("Invalid '{param}.environment': expected {{\"type\": \"local\"}} or {{\"type\": \"container_reference\", \"container_id\": ...}}."),
            ))
        }
    };
    Ok(json!({
        "type": "shell_call",
        "id": id_or(item, "sh", &call_id, param)?,
        "call_id": call_id,
        "action": {
            "commands": commands,
            "timeout_ms": optional_count(action.get("timeout_ms"), &format!("{param}.action.timeout_ms"))?,
            "max_output_length": optional_count(action.get("max_output_length"), &format!("{param}.action.max_output_length"))?,
        },
        "status": status(item),
        "environment": environment,
    }))
}

/// A `shell_call_output`: `call_id` and `output[]` of `{stdout, stderr, outcome}` required.
pub fn output(item: &Value, param: &str) -> ApiResult<Value> {
    let call_id = call_id(item, param)?;
    let entries = match item.get("output") {
        Some(Value::Array(o)) => o,
        None | Some(Value::Null) => return Err(missing(&format!("{param}.output"))),
        Some(_) => return Err(invalid_type(&format!("{param}.output"), "an array")),
    };
    let mut output = Vec::with_capacity(entries.len());
    for (j, e) in entries.iter().enumerate() {
        let at = format!("{param}.output[{j}]");
        let text = |k: &str| match e.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(missing(&format!("{at}.{k}"))),
            Some(_) => Err(invalid_type(&format!("{at}.{k}"), "a string")),
        };
        let (stdout, stderr) = (text("stdout")?, text("stderr")?);
        let outcome = match e.get("outcome") {
            Some(o) if o["type"] == "timeout" => json!({"type": "timeout"}),
            Some(o) if o["type"] == "exit" && o["exit_code"].is_i64() => {
                json!({"type": "exit", "exit_code": o["exit_code"]})
            }
            None | Some(Value::Null) => return Err(missing(&format!("{at}.outcome"))),
            Some(_) => {
                return Err(invalid_type(
                    &format!("{at}.outcome"),
                    "{type: 'exit', exit_code} or {type: 'timeout'}",
                ))
            }
        };
        output.push(json!({"stdout": stdout, "stderr": stderr, "outcome": outcome}));
    }
    Ok(json!({
        "type": "shell_call_output",
        "id": id_or(item, "sho", &call_id, param)?,
        "call_id": call_id,
        "status": status(item),
        "max_output_length": optional_count(item.get("max_output_length"), &format!("{param}.max_output_length"))?,
        "output": output,
    }))
}

fn status(item: &Value) -> Value {
    match item.get("status").and_then(Value::as_str) {
        Some(s @ ("in_progress" | "completed" | "incomplete")) => Value::from(s),
        _ => Value::from("completed"),
    }
}
