//! E2B's network options on `POST /sandboxes` (`allow_internet_access`, `network.allowOut` /
//! `denyOut`) as a container network policy. Every SDK sends `allow_internet_access: true` by
//! default, so that asks for no more than the operator allows and gets exactly that; only an
//! explicit request this server cannot meet at all is refused.

use serde_json::{json, Value};

use super::{E2bError, E2bResult};
use crate::domain::containers::Containers;
use crate::sandbox::egress::EgressPolicy;

/// E2B's "all traffic" range in `denyOut`.
const ALL_TRAFFIC: &str = "0.0.0.0/0";

pub(super) fn policy(
    containers: &Containers,
    allow_internet_access: Option<bool>,
    network: Option<&Value>,
) -> E2bResult<EgressPolicy> {
    let list = |key: &str| -> E2bResult<Vec<String>> {
        match network.and_then(|n| n.get(key)) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        E2bError::bad_request(format!("network.{key} must list strings"))
                    })
                })
                .collect(),
            Some(_) => Err(E2bError::bad_request(format!(
                "network.{key} must be a list"
            ))),
        }
    };
    let (allow_out, deny_out) = (list("allowOut")?, list("denyOut")?);
    let deny_all =
        allow_internet_access == Some(false) || deny_out.iter().any(|d| d == ALL_TRAFFIC);
    if let Some(d) = deny_out.iter().find(|d| *d != ALL_TRAFFIC) {
        return Err(E2bError::bad_request(format!(
            "network.denyOut '{d}': this server denies single ranges only as part of \
             denying all traffic ('{ALL_TRAFFIC}'); sandboxes reach allowed domain names only"
        )));
    }
    if !deny_all {
        // Everything is asked for; what the operator allows is what there is.
        return Ok(containers.widest_network());
    }
    if allow_out.is_empty() {
        return Ok(EgressPolicy::Disabled);
    }
    if let Some(ip) = allow_out.iter().find(|a| {
        a.split('/')
            .next()
            .is_some_and(|h| h.parse::<std::net::IpAddr>().is_ok())
    }) {
        return Err(E2bError::bad_request(format!(
            "network.allowOut '{ip}': this server allows domain names only, not addresses"
        )));
    }
    let asked = json!({"type": "allowlist", "allowed_domains": allow_out});
    containers
        .network_policy("network.allowOut", Some(&asked))
        .map_err(|e| E2bError::bad_request(e.to_string()))
}

/// What `GET /sandboxes/{id}` reports under `network`: E2B's shape of what the sandbox got.
pub(super) fn shown(policy: &EgressPolicy) -> Value {
    match policy {
        EgressPolicy::Disabled => json!({"allowOut": [], "denyOut": [ALL_TRAFFIC]}),
        EgressPolicy::Allowlist { .. } => {
            json!({"allowOut": policy.domain_entries(), "denyOut": [ALL_TRAFFIC]})
        }
    }
}
