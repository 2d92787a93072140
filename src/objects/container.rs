//! Containers (`/v1/containers`): a sandbox session of their own, and the files in its /mnt/data.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Container {
    pub id: String,
    pub object: String,
    pub name: String,
    pub created_at: i64,
    /// `running`, or `expired` once it sat unused past `expires_after`.
    pub status: String,
    pub last_active_at: i64,
    pub expires_after: ExpiresAfter,
    /// `1g`, `4g`, `16g` or `64g`.
    pub memory_limit: String,
    pub network_policy: NetworkPolicy,
    /// A fixed deadline (unix seconds) instead of the idle expiry: E2B sandboxes' `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExpiresAfter {
    /// Always `last_active_at`, the only anchor there is.
    pub anchor: String,
    pub minutes: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkPolicy {
    /// `disabled` or `allowlist`.
    #[serde(rename = "type")]
    pub kind: String,
    /// An allowlist's domains (its secrets are never shown or stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
}

pub const RUNNING: &str = "running";
pub const EXPIRED: &str = "expired";

impl Container {
    /// Whether it has sat unused past its expiry at `now` (unix seconds).
    pub fn is_due(&self, now: i64) -> bool {
        self.deadline() <= now
    }

    /// When it expires unless used (or, with `expires_at`, however it is used).
    pub fn deadline(&self) -> i64 {
        self.expires_at
            .unwrap_or(self.last_active_at + self.expires_after.minutes * 60)
    }

    /// The status a reader sees at `now`: `expired` as soon as it is due, even before the
    /// sweep that discards its data has come by.
    pub fn as_seen(mut self, now: i64) -> Self {
        if self.status == RUNNING && self.is_due(now) {
            self.status = EXPIRED.into();
        }
        self
    }

    pub fn is_expired(&self) -> bool {
        self.status == EXPIRED
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerFile {
    pub id: String,
    pub object: String,
    pub container_id: String,
    pub created_at: i64,
    pub bytes: u64,
    /// Its absolute path, under /mnt/data.
    pub path: String,
    /// `user` for uploads, `assistant` for files the code wrote.
    pub source: String,
}

pub const SOURCE_USER: &str = "user";
pub const SOURCE_ASSISTANT: &str = "assistant";
