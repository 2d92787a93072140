//! The `shell` tool of a request: `environment` `container_auto` (a container made or
//! reused exactly as code_interpreter's `auto` makes it: the whole environment goes through
//! the same path), `container_reference` (a container of the project, shared with
//! code_interpreter), or `local` / none (the client runs the commands).

use serde_json::Value;

use super::request::{code_container, Container};
use crate::error::{ApiError, ApiResult};
use crate::objects::tools::{ShellTool, Tool};

/// The run's shell tool and, hosted, the container it asks for. `param` names `environment`.
pub fn tool(t: &Value, param: &str) -> ApiResult<(Tool, Option<Container>)> {
    let environment = t.get("environment").filter(|e| !e.is_null());
    let kind = environment.map(|e| e.get("type").and_then(Value::as_str));
    let local = Tool::Shell {
        shell: ShellTool { hosted: false },
    };
    let hosted = Tool::Shell {
        shell: ShellTool { hosted: true },
    };
    match kind {
        None | Some(Some("local")) => Ok((local, None)),
        Some(Some("container_auto")) => {
            let mut auto = environment.cloned().unwrap_or_default();
            auto["type"] = Value::from("auto");
            Ok((hosted, Some(code_container(Some(&auto), param)?)))
        }
        Some(Some("container_reference")) => {
            let environment = environment.cloned().unwrap_or_default();
            if let Some(extra) = environment
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .find(|k| !matches!(k.as_str(), "type" | "container_id"))
            {
                return Err(ApiError::invalid_code(
                    format!("{param}.{extra}"),
                    "unknown_parameter",
                    format!("Unknown parameter: '{param}.{extra}': a container_reference takes only 'container_id' (a container keeps the files, skills and network policy it was created with)."),
                ));
            }
            match environment.get("container_id") {
                Some(Value::String(id)) if !id.is_empty() => {
                    Ok((hosted, Some(Container::Id(id.clone()))))
                }
                None | Some(Value::Null) => Err(ApiError::invalid_code(
                    format!("{param}.container_id"),
                    "missing_required_parameter",
                    format!("Missing required parameter: '{param}.container_id'."),
                )),
                Some(_) => Err(ApiError::invalid_code(
                    format!("{param}.container_id"),
                    "invalid_type",
                    format!("Invalid type for '{param}.container_id': expected a container id."),
                )),
            }
        }
        Some(None) => Err(ApiError::invalid_code(
            format!("{param}.type"),
            "missing_required_parameter",
            format!("Missing required parameter: '{param}.type'."),
        )),
        Some(Some(other)) => Err(ApiError::invalid_code(
            format!("{param}.type"),
            "invalid_value",
            format!("Invalid value: '{other}'. Supported values are: 'container_auto', 'container_reference' and 'local'."),
        )),
    }
}

/// One shell tool per request, and no function of the same name beside it.
pub fn check_names(tools: &[Tool]) -> ApiResult<()> {
    let shells = tools
        .iter()
        .filter(|t| matches!(t, Tool::Shell { .. }))
        .count();
    if shells > 1 {
        return Err(ApiError::invalid_param(
            "tools",
            "Only one shell tool may be given.",
        ));
    }
    let clash = tools
        .iter()
        .any(|t| matches!(t, Tool::Function { function } if function.name == "shell"));
    if shells == 1 && clash {
        return Err(ApiError::invalid_param(
            "tools",
            "A function named 'shell' cannot be given beside the shell tool.",
        ));
    }
    Ok(())
}
