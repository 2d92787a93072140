//! Vector stores: lookups, stores made for a thread's or message's files, and adding files
//! (indexed before these return). The `/v1/vector_stores` handlers are in `api`.

use sqlx::types::Json as SqlJson;
use sqlx::{PgExecutor, PgPool};

use super::files::{get_live, require_files, FileRef};
use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::vector_store::{Attributes, FileCounts, LastError};
use crate::objects::{VectorStore, VectorStoreFile};
use crate::retrieval::{Chunking, Retrieval};
use crate::store::{self, Kind};
use crate::validate::Metadata;

/// A store of this project, with its status as of now.
pub async fn load<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    id: &str,
) -> ApiResult<VectorStore> {
    let mut vs: VectorStore = store::get(db, Kind::VectorStore, project, id, &[]).await?;
    vs.observe(ids::now());
    Ok(vs)
}

/// Every id must name a store of this project; `refs` are (param, id) pairs, so the error
/// names the field that listed the unknown one.
pub async fn require_stores<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    refs: &[(String, String)],
) -> ApiResult<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = refs.iter().map(|(_, id)| id.as_str()).collect();
    let found: Vec<String> =
        sqlx::query_scalar("SELECT id FROM vector_stores WHERE project = $1 AND id = ANY($2)")
            .bind(&project.0)
            .bind(&ids)
            .fetch_all(db)
            .await?;
    match refs.iter().find(|(_, id)| !found.contains(id)) {
        Some((param, id)) => Err(ApiError::invalid_code(
            param.clone(),
            "invalid_value",
            format!("Invalid '{param}': no vector store found with id '{id}'."),
        )),
        None => Ok(()),
    }
}

/// Creates a store holding `file_ids`, indexed before this returns (for a thread's
/// `tool_resources.file_search.vector_stores` and message attachments). Callers check the
/// ids first with `require_files`, so that errors name their own parameters.
pub async fn create_for_files(
    db: &PgPool,
    retrieval: &Retrieval,
    project: &Project,
    name: Option<String>,
    file_ids: &[String],
    chunking: Option<Chunking>,
) -> ApiResult<VectorStore> {
    require_files(db, project, &FileRef::each("file_ids", file_ids)).await?;
    let vs = VectorStore::new(
        ids::new_id(ids::VECTOR_STORE),
        name,
        None,
        None,
        Metadata::new(),
        ids::now(),
    );
    insert(db, project, &vs).await?;
    let files = new_files(file_ids, chunking.unwrap_or_default(), &Attributes::new());
    attach(db, retrieval, project, &vs.id, None, files).await?;
    refresh(db, &vs.id, true).await
}

/// Adds files to a store of this project and indexes them, with the `auto` chunking.
pub async fn add_files(
    db: &PgPool,
    retrieval: &Retrieval,
    project: &Project,
    vector_store_id: &str,
    file_ids: &[String],
) -> ApiResult<()> {
    load(db, project, vector_store_id).await?;
    require_files(db, project, &FileRef::each("file_ids", file_ids)).await?;
    let files = new_files(file_ids, Chunking::default(), &Attributes::new());
    attach(db, retrieval, project, vector_store_id, None, files).await?;
    refresh(db, vector_store_id, true).await?;
    Ok(())
}

pub fn new_files(file_ids: &[String], chunking: Chunking, attributes: &Attributes) -> Vec<NewFile> {
    file_ids
        .iter()
        .map(|id| NewFile {
            file_id: id.clone(),
            chunking,
            attributes: attributes.clone(),
        })
        .collect()
}

pub async fn insert<'e>(
    db: impl PgExecutor<'e>,
    project: &Project,
    vs: &VectorStore,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO vector_stores (id, project, created_at, data) VALUES ($1, $2, $3, $4)",
    )
    .bind(&vs.id)
    .bind(&project.0)
    .bind(vs.created_at)
    .bind(SqlJson(vs))
    .execute(db)
    .await?;
    Ok(())
}

/// Recounts a store's files and bytes from its file rows, and with `touch` records it as
/// used now. Call after any change to its files.
pub async fn refresh(db: &PgPool, id: &str, touch: bool) -> ApiResult<VectorStore> {
    let mut tx = db.begin().await?;
    let SqlJson(mut vs): SqlJson<VectorStore> =
        sqlx::query_scalar("SELECT data FROM vector_stores WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Kind::VectorStore.not_found(id))?;
    let rows: Vec<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT data->>'status', count(*), coalesce(sum((data->>'usage_bytes')::bigint), 0)::bigint
         FROM vector_store_files WHERE vector_store_id = $1 GROUP BY 1",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let mut counts = FileCounts::default();
    let mut usage = 0;
    for (status, n, bytes) in rows {
        counts.add(status.as_deref().unwrap_or(""), n as u64);
        usage += bytes as u64;
    }
    vs.file_counts = counts;
    vs.usage_bytes = usage;
    let now = ids::now();
    if touch {
        vs.touch(now);
    } else {
        vs.observe(now);
    }
    store::put(&mut *tx, Kind::VectorStore, id, &vs).await?;
    tx.commit().await?;
    Ok(vs)
}
/// A file to add to a store, with how to chunk it and its attributes.
pub struct NewFile {
    pub file_id: String,
    pub chunking: Chunking,
    pub attributes: Attributes,
}

/// Adds files to a store and indexes them, one after the other; a file already in the store
/// is replaced. The store and files must exist (callers check first, naming their params).
/// A batch's files carry its id in a column-like `batch_id` key of their row, not shown in
/// the API object. Callers refresh the store's counts afterwards.
pub async fn attach(
    db: &PgPool,
    retrieval: &Retrieval,
    project: &Project,
    vector_store_id: &str,
    batch_id: Option<&str>,
    files: Vec<NewFile>,
) -> ApiResult<Vec<VectorStoreFile>> {
    let mut added = Vec::with_capacity(files.len());
    for new in files {
        let file = get_live(db, project, &new.file_id).await?;
        let mut vsf = VectorStoreFile {
            id: file.id.clone(),
            object: "vector_store.file".into(),
            usage_bytes: 0,
            created_at: ids::now(),
            vector_store_id: vector_store_id.to_string(),
            status: "in_progress".into(),
            last_error: None,
            chunking_strategy: new.chunking.into(),
            attributes: new.attributes,
        };
        // Committed before indexing: the chunks reference the row.
        let mut tx = db.begin().await?;
        sqlx::query("DELETE FROM vector_store_files WHERE vector_store_id = $1 AND id = $2")
            .bind(vector_store_id)
            .bind(&vsf.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO vector_store_files (id, vector_store_id, project, created_at, data)
             VALUES ($1, $2, $3, $4, $5 || jsonb_build_object('batch_id', $6::text))",
        )
        .bind(&vsf.id)
        .bind(vector_store_id)
        .bind(&project.0)
        .bind(vsf.created_at)
        .bind(SqlJson(&vsf))
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        let indexed = retrieval
            .index_file(vector_store_id, &file, &new.chunking)
            .await;
        match &indexed {
            Ok(Ok(bytes)) => {
                vsf.status = "completed".into();
                vsf.usage_bytes = *bytes;
            }
            Ok(Err(failure)) => {
                vsf.status = "failed".into();
                vsf.last_error = Some(LastError {
                    code: failure.code.to_string(),
                    message: failure.message.clone(),
                });
            }
            Err(_) => {
                vsf.status = "failed".into();
                vsf.last_error = Some(LastError {
                    code: "server_error".into(),
                    message: "The file could not be indexed.".into(),
                });
            }
        }
        save(db, &vsf).await?;
        if let Err(e) = indexed {
            return Err(e.into());
        }
        added.push(vsf);
    }
    Ok(added)
}

/// Writes a store file's object, keeping the row's hidden keys (`batch_id`).
pub async fn save(db: &PgPool, vsf: &VectorStoreFile) -> ApiResult<()> {
    sqlx::query(
        "UPDATE vector_store_files SET data = data || $3 WHERE vector_store_id = $1 AND id = $2",
    )
    .bind(&vsf.vector_store_id)
    .bind(&vsf.id)
    .bind(SqlJson(vsf))
    .execute(db)
    .await?;
    Ok(())
}
