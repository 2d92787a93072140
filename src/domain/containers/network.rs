//! `network_policy` on containers (`POST /v1/containers`, code_interpreter's and the shell's
//! `auto` containers, E2B sandboxes): parsed into the sandbox's [`EgressPolicy`] and held to
//! the operator's ceiling. Secrets stay in this process's memory (the sandbox manager), never
//! in the database, the container object or the sandbox's environment.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::objects::container::NetworkPolicy;
use crate::sandbox::egress::{Ceiling, DomainPattern, DomainSecret, EgressPolicy};

/// Most `allowed_domains` and `domain_secrets` entries.
const MAX_ENTRIES: usize = 100;
/// Longest secret value (OpenAI's limit).
const MAX_SECRET: usize = 10 * 1024 * 1024;

/// Parses `value` (the request's `network_policy`, named `param` in errors); absent or null is
/// `disabled`, as on OpenAI. A policy wider than `ceiling` is a 400 saying why.
pub fn parse(param: &str, value: Option<&Value>, ceiling: &Ceiling) -> ApiResult<EgressPolicy> {
    let policy = match value {
        None | Some(Value::Null) => return Ok(EgressPolicy::Disabled),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("disabled") => {
                if let Some(k) = o.keys().find(|k| *k != "type") {
                    return Err(unknown(param, k));
                }
                EgressPolicy::Disabled
            }
            Some("allowlist") => allowlist(param, o)?,
            Some(other) => {
                return Err(ApiError::invalid_code(
                    format!("{param}.type"),
                    "invalid_value",
                    format!(
                    "Invalid value: '{other}'. Supported values are: 'disabled' and 'allowlist'."
                ),
                ))
            }
            None => {
                return Err(ApiError::invalid_code(
                    format!("{param}.type"),
                    "missing_required_parameter",
                    format!("Missing required parameter: '{param}.type'."),
                ))
            }
        },
        Some(_) => {
            return Err(ApiError::invalid_param(
                param,
                format!("Invalid '{param}': expected an object."),
            ))
        }
    };
    ceiling.admits(&policy).map_err(|reason| {
        ApiError::invalid_code(
            format!("{param}.allowed_domains"),
            "network_policy_not_allowed",
            format!("Invalid '{param}': {reason}."),
        )
    })?;
    Ok(policy)
}

fn unknown(param: &str, key: &str) -> ApiError {
    ApiError::invalid_code(
        format!("{param}.{key}"),
        "unknown_parameter",
        format!("Unknown parameter: '{param}.{key}'."),
    )
}

fn allowlist(param: &str, o: &serde_json::Map<String, Value>) -> ApiResult<EgressPolicy> {
    if let Some(k) = o
        .keys()
        .find(|k| !["type", "allowed_domains", "domain_secrets"].contains(&k.as_str()))
    {
        return Err(unknown(param, k));
    }
    let p = format!("{param}.allowed_domains");
    let entries = o.get("allowed_domains").and_then(Value::as_array);
    let Some(entries) = entries.filter(|e| !e.is_empty()) else {
        return Err(ApiError::invalid_code(
            &p,
            "missing_required_parameter",
            format!("Invalid '{p}': an allowlist needs at least one domain."),
        ));
    };
    if entries.len() > MAX_ENTRIES {
        return Err(ApiError::invalid_param(
            &p,
            format!("Invalid '{p}': at most {MAX_ENTRIES} domains."),
        ));
    }
    let mut domains = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let parsed = entry
            .as_str()
            .ok_or_else(|| "expected a string".to_string())
            .and_then(|s| DomainPattern::parse(s, false));
        match parsed {
            Ok(d) if !domains.contains(&d) => domains.push(d),
            Ok(_) => {}
            Err(reason) => {
                return Err(ApiError::invalid_param(
                    format!("{p}[{i}]"),
                    format!("Invalid '{p}[{i}]': {reason}."),
                ))
            }
        }
    }
    let secrets = match o.get("domain_secrets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) if list.len() <= MAX_ENTRIES => list
            .iter()
            .enumerate()
            .map(|(i, s)| secret(&format!("{param}.domain_secrets[{i}]"), s, &domains))
            .collect::<ApiResult<Vec<_>>>()?,
        Some(_) => {
            return Err(ApiError::invalid_param(
                format!("{param}.domain_secrets"),
                format!(
                    "Invalid '{param}.domain_secrets': expected a list of at most {MAX_ENTRIES} secrets."
                ),
            ))
        }
    };
    Ok(EgressPolicy::Allowlist { domains, secrets })
}

fn secret(p: &str, value: &Value, domains: &[DomainPattern]) -> ApiResult<DomainSecret> {
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_code(
                    format!("{p}.{k}"),
                    "missing_required_parameter",
                    format!("Missing required parameter: '{p}.{k}'."),
                )
            })
    };
    let (domain, name, secret) = (field("domain")?, field("name")?, field("value")?);
    let domain = DomainPattern::parse(domain, false).map_err(|reason| {
        ApiError::invalid_param(
            format!("{p}.domain"),
            format!("Invalid '{p}.domain': {reason}."),
        )
    })?;
    if !domains.iter().any(|d| d.covers(&domain)) {
        return Err(ApiError::invalid_param(
            format!("{p}.domain"),
            format!("Invalid '{p}.domain': '{domain}' is not in the allowed_domains."),
        ));
    }
    let name_ok = name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok {
        return Err(ApiError::invalid_param(
            format!("{p}.name"),
            format!(
                "Invalid '{p}.name': expected an environment variable name (letters, digits, '_')."
            ),
        ));
    }
    if secret.len() > MAX_SECRET {
        return Err(ApiError::invalid_param(
            format!("{p}.value"),
            format!("Invalid '{p}.value': at most {MAX_SECRET} bytes."),
        ));
    }
    Ok(DomainSecret {
        domain,
        name: name.to_string(),
        value: secret.to_string(),
    })
}

/// How the container object shows `policy`: its type and domains, never its secrets.
pub fn shown(policy: &EgressPolicy) -> NetworkPolicy {
    NetworkPolicy {
        kind: policy.kind().into(),
        allowed_domains: match policy {
            EgressPolicy::Disabled => None,
            EgressPolicy::Allowlist { .. } => Some(policy.domain_entries()),
        },
    }
}

/// The policy a stored container object describes (without its secrets, which the database
/// never holds). Unreadable entries are dropped: the result is never wider than what was stored.
pub fn from_shown(shown: &NetworkPolicy) -> EgressPolicy {
    match (shown.kind.as_str(), &shown.allowed_domains) {
        ("allowlist", Some(entries)) => {
            let domains: Vec<_> = entries
                .iter()
                .filter_map(|d| DomainPattern::parse(d, true).ok())
                .collect();
            if domains.is_empty() {
                EgressPolicy::Disabled
            } else {
                EgressPolicy::Allowlist {
                    domains,
                    secrets: Vec::new(),
                }
            }
        }
        _ => EgressPolicy::Disabled,
    }
}

/// The assistant metadata key whose value (a JSON string) is the network policy of the
/// sessions its runs use on threads (OpenAI's assistants have no such field).
pub const ASSISTANT_METADATA_KEY: &str = "network_policy";

/// The policy an assistant's metadata asks for its threads' sessions: None when it names none
/// (the operator's widest applies). Secrets are refused here: metadata is stored and shown.
pub fn from_assistant_metadata(
    metadata: &std::collections::BTreeMap<String, String>,
    ceiling: &Ceiling,
) -> ApiResult<Option<EgressPolicy>> {
    let Some(text) = metadata.get(ASSISTANT_METADATA_KEY) else {
        return Ok(None);
    };
    let param = format!("metadata.{ASSISTANT_METADATA_KEY}");
    let value: Value = serde_json::from_str(text).map_err(|_| {
        ApiError::invalid_param(
            &param,
            format!(
                "Invalid '{param}': expected a JSON network policy such as \
                 {{\"type\": \"allowlist\", \"allowed_domains\": [\"example.com\"]}}."
            ),
        )
    })?;
    if value.get("domain_secrets").is_some() {
        return Err(ApiError::invalid_param(
            format!("{param}.domain_secrets"),
            format!("Invalid '{param}': an assistant's metadata is stored and shown, so it cannot carry domain_secrets."),
        ));
    }
    parse(&param, Some(&value), ceiling).map(Some)
}
