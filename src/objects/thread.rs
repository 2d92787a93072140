use serde::{Deserialize, Serialize};

use super::tools::ToolResources;
use crate::validate::Metadata;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Thread {
    pub id: String,
    pub object: String,
    pub created_at: i64,
    pub tool_resources: ToolResources,
    pub metadata: Metadata,
}
