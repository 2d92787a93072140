use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tools::{Tool, ToolResources};
use crate::validate::Metadata;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Assistant {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub name: Option<String>,
    pub description: Option<String>,
    pub model: String,
    pub instructions: Option<String>,
    pub tools: Vec<Tool>,
    pub tool_resources: ToolResources,
    pub metadata: Metadata,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub response_format: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}
