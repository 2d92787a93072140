//! `tool_resources` as assistants and threads are given them: code_interpreter's files, which
//! must exist, and file_search's stores: the ids of existing vector stores, or (the
//! `vector_stores` helper) files to make a new store of. Either way the object keeps only
//! `{"vector_store_ids": [...]}`.

use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::json::{from_value, param_path, reroot};
use super::AppState;
use crate::auth::Project;
use crate::domain::files::{require_files, FileRef};
use crate::domain::vector_stores::{create_for_files, require_stores};
use crate::error::{ApiError, ApiResult};
use crate::objects::tools::ToolResources;
use crate::objects::vector_store::ChunkingParam;
use crate::validate::{self, Metadata};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSearchResources {
    #[serde(default)]
    vector_store_ids: Option<Vec<String>>,
    #[serde(default)]
    vector_stores: Option<Vec<NewStore>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStore {
    #[serde(default)]
    file_ids: Vec<String>,
    #[serde(default)]
    chunking_strategy: Option<ChunkingParam>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// What the request asked for, checked: the stores it names, or the one it wants made.
pub struct Checked {
    ids: Vec<String>,
    new_store: Option<NewStore>,
}

/// Checks `resources` (`param` names them) without changing anything: at most 20
/// code_interpreter files, each existing; at most one file_search store id, of this project, or
/// at most one new store, whose files exist. What it returns is for [`settle`].
pub async fn check(
    db: &PgPool,
    project: &Project,
    param: &str,
    resources: &ToolResources,
) -> ApiResult<Checked> {
    let files = param_path(param, "code_interpreter.file_ids");
    let file_ids = resources.code_interpreter_file_ids();
    validate::max_items(&files, file_ids, 20)?;
    require_files(db, project, &FileRef::each(&files, file_ids)).await?;

    let param = param_path(param, "file_search");
    let Some(value) = resources.file_search.clone() else {
        return Ok(Checked {
            ids: vec![],
            new_store: None,
        });
    };
    let asked: FileSearchResources = from_value(value).map_err(|e| reroot(e, &param))?;
    let ids = asked.vector_store_ids.unwrap_or_default();
    let mut new_stores = asked.vector_stores.unwrap_or_default();
    let ids_param = param_path(&param, "vector_store_ids");
    let stores_param = param_path(&param, "vector_stores");
    validate::max_items(&ids_param, &ids, 1)?;
    validate::max_items(&stores_param, &new_stores, 1)?;
    if !ids.is_empty() && !new_stores.is_empty() {
        return Err(ApiError::invalid_code(
            param.clone(),
            "invalid_value",
            format!(
                "Invalid '{param}': give either 'vector_store_ids' or 'vector_stores', not both."
            ),
        ));
    }
    let refs: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("{ids_param}[{i}]"), id.clone()))
        .collect();
    require_stores(db, project, &refs).await?;
    if let Some(store) = new_stores.first() {
        let at = format!("{stores_param}[0]");
        validate::max_items(&param_path(&at, "file_ids"), &store.file_ids, 10_000)?;
        let files = FileRef::each(&param_path(&at, "file_ids"), &store.file_ids);
        require_files(db, project, &files).await?;
        if let Some(chunking) = &store.chunking_strategy {
            chunking.resolve(&param_path(&at, "chunking_strategy"))?;
        }
        if let Some(metadata) = &store.metadata {
            validate::metadata(&param_path(&at, "metadata"), metadata)?;
        }
    }
    Ok(Checked {
        ids,
        new_store: new_stores.pop(),
    })
}

/// Makes the store a checked request asked for, and leaves `resources.file_search` naming
/// its stores by id only. Call once everything else in the request has been checked.
pub async fn settle(
    state: &AppState,
    project: &Project,
    checked: Checked,
    resources: &mut ToolResources,
) -> ApiResult<()> {
    let db = &state.db;
    if resources.file_search.is_none() {
        return Ok(());
    }
    let mut ids = checked.ids;
    if let Some(new) = checked.new_store {
        let chunking = match &new.chunking_strategy {
            Some(c) => Some(c.resolve("chunking_strategy")?),
            None => None,
        };
        let store =
            create_for_files(db, &state.retrieval, project, None, &new.file_ids, chunking).await?;
        if let Some(metadata) = new.metadata.filter(|m| !m.is_empty()) {
            sqlx::query(
                "UPDATE vector_stores SET data = jsonb_set(data, '{metadata}', $2) WHERE id = $1",
            )
            .bind(&store.id)
            .bind(sqlx::types::Json(&metadata))
            .execute(db)
            .await?;
        }
        ids.push(store.id);
    }
    resources.file_search = Some(json!({ "vector_store_ids": ids }));
    Ok(())
}
