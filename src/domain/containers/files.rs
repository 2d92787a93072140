//! The files in a container's /mnt/data: uploaded (`source: user`, by multipart or by copying
//! a `/v1/files` file) or written by its code (`source: assistant`).
//!
//! Files the code writes are registered by the executor right after each execution in a
//! container's session ([`record_written`]): the execution already reports the files it
//! created or changed, so nothing has to list /mnt/data later, and the bytes are copied to the
//! blob store while the session is certainly live. Likewise the execution reports the files it
//! removed (deleted, or renamed away), and they leave the list ([`record_removed`]).
//!
//! Uploads, deletes and content reads act on the live session wherever it is: on another
//! replica they are carried out by the one holding it (`Executor::put_file` and its siblings,
//! see `executor::session_files`). Content comes from the live session (the freshest bytes),
//! else, when no replica has the session live, from the blob store.

use bytes::Bytes;
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;

use super::{expired_error, Containers};
use crate::auth::Project;
use crate::blobs::{BlobStore, Key};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::container::{SOURCE_ASSISTANT, SOURCE_USER};
use crate::objects::{Container, ContainerFile};
use crate::pagination::{ListPage, ListParams};
use crate::sandbox::{ChangedFile, SandboxError, SandboxManager};
use crate::store::{self, Kind};

/// Files larger than this that the code writes are listed, but their bytes are not copied to
/// the blob store: their content is served only while the session is live here.
const MAX_COPIED_BYTES: u64 = 64 * 1024 * 1024;
/// The most a content read takes from the sandbox (its /mnt/data is smaller).
const MAX_READ_BYTES: u64 = 4 * 1024 * 1024 * 1024;

impl Containers {
    /// Writes an upload to `/mnt/data/<filename>` (numbered when the name is taken).
    pub async fn add_upload(
        &self,
        project: &Project,
        container_id: &str,
        filename: &str,
        bytes: Bytes,
    ) -> ApiResult<ContainerFile> {
        let container = self.require_usable(project, container_id).await?;
        self.put(project, &container, filename, bytes).await
    }

    /// Copies a `/v1/files` file of the project into the container's /mnt/data.
    pub async fn add_file_id(
        &self,
        project: &Project,
        container_id: &str,
        file_id: &str,
    ) -> ApiResult<ContainerFile> {
        let container = self.require_usable(project, container_id).await?;
        self.copy_file_in(project, &container, file_id).await
    }

    pub(super) async fn copy_file_in(
        &self,
        project: &Project,
        container: &Container,
        file_id: &str,
    ) -> ApiResult<ContainerFile> {
        let file = crate::domain::files::get_live(&self.db, project, file_id).await?;
        let bytes = self
            .blobs
            .read(&Key::file(file_id))
            .await
            .map_err(|e| ApiError::Internal(anyhow::Error::from(e)))?;
        self.put(project, container, &file.filename, bytes).await
    }

    async fn put(
        &self,
        project: &Project,
        container: &Container,
        filename: &str,
        bytes: Bytes,
    ) -> ApiResult<ContainerFile> {
        self.open_session(container).await?;
        let path = self
            .executor
            .put_file(&container.id, filename, bytes.clone())
            .await
            .map_err(unavailable)?;
        let file = upsert(
            &self.db,
            project,
            &container.id,
            &path,
            bytes.len() as u64,
            SOURCE_USER,
        )
        .await?;
        store_bytes(&self.db, &self.blobs, &file.id, bytes).await?;
        Ok(file)
    }

    pub async fn list_files(
        &self,
        project: &Project,
        container_id: &str,
        params: &ListParams,
    ) -> ApiResult<ListPage<ContainerFile>> {
        self.retrieve(project, container_id).await?;
        store::list(
            &self.db,
            Kind::ContainerFile,
            project,
            &[("container_id", container_id)],
            params,
        )
        .await
    }

    /// A file's metadata, readable also after the container expired.
    pub async fn retrieve_file(
        &self,
        project: &Project,
        container_id: &str,
        file_id: &str,
    ) -> ApiResult<ContainerFile> {
        self.retrieve(project, container_id).await?;
        self.file(project, container_id, file_id).await
    }

    /// Deletes the file from /mnt/data and from the list.
    pub async fn delete_file(
        &self,
        project: &Project,
        container_id: &str,
        file_id: &str,
    ) -> ApiResult<()> {
        let container = self.require_usable(project, container_id).await?;
        let file = self.file(project, container_id, file_id).await?;
        self.open_session(&container).await?;
        self.executor
            .remove_file(container_id, &file.path)
            .await
            .map_err(unavailable)?;
        store::delete(
            &self.db,
            Kind::ContainerFile,
            project,
            file_id,
            &[("container_id", container_id)],
        )
        .await?;
        remove_bytes(&self.blobs, file_id).await;
        Ok(())
    }

    /// The file and its bytes: from the live session if this replica holds it, else as last
    /// uploaded or written.
    pub async fn content(
        &self,
        project: &Project,
        container_id: &str,
        file_id: &str,
    ) -> ApiResult<(ContainerFile, Bytes)> {
        self.require_usable(project, container_id).await?;
        let file = self.file(project, container_id, file_id).await?;
        let live = self
            .executor
            .read_file(container_id, &file.path, MAX_READ_BYTES)
            .await
            .map_err(unavailable)?;
        if let Some(bytes) = live {
            return Ok((file, Bytes::from(bytes)));
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT blob_key FROM container_files WHERE id = $1")
                .bind(file_id)
                .fetch_optional(&self.db)
                .await?
                .flatten();
        if stored.is_none() {
            return Err(ApiError::NotFound(format!(
                "The content of file '{file_id}' is not available: it is too large to keep \
                 outside the container's session."
            )));
        }
        let bytes = self
            .blobs
            .read(&Key::container_file(file_id))
            .await
            .map_err(|e| ApiError::Internal(anyhow::Error::from(e)))?;
        Ok((file, bytes))
    }

    async fn file(
        &self,
        project: &Project,
        container_id: &str,
        file_id: &str,
    ) -> ApiResult<ContainerFile> {
        store::get(
            &self.db,
            Kind::ContainerFile,
            project,
            file_id,
            &[("container_id", container_id)],
        )
        .await
    }

    /// The session takes the container's memory limit and skills (it may start on this
    /// replica now).
    async fn open_session(&self, container: &Container) -> ApiResult<()> {
        if container.is_expired() {
            return Err(expired_error(&container.id));
        }
        if let Ok(memory) = container.memory_limit.parse::<super::MemoryLimit>() {
            self.sandbox.set_memory_mb(&container.id, memory.mib());
        }
        if !self.sandbox.has_skills(&container.id) {
            let skills =
                crate::domain::skills::attach::of_container(&self.db, &container.id).await?;
            crate::domain::skills::attach::mount(
                &self.blobs,
                &self.sandbox,
                &container.id,
                &skills,
            )
            .await?;
        }
        Ok(())
    }
}

/// For the executor, after an execution in a container's session: lists the files it created
/// or changed under /mnt/data as the container's (`source: assistant` when new; an uploaded
/// file the code rewrote stays `user`), copying their bytes to the blob store.
pub async fn record_written(
    db: &PgPool,
    blobs: &BlobStore,
    sandbox: &SandboxManager,
    project: &Project,
    container_id: &str,
    written: &[ChangedFile],
) -> anyhow::Result<Vec<ContainerFile>> {
    let mut files = Vec::with_capacity(written.len());
    for changed in written {
        let file = upsert(
            db,
            project,
            container_id,
            &changed.path,
            changed.size,
            SOURCE_ASSISTANT,
        )
        .await?;
        if changed.size <= MAX_COPIED_BYTES {
            if let Some(bytes) = sandbox
                .read_file(container_id, &changed.path, MAX_COPIED_BYTES)
                .await?
            {
                store_bytes(db, blobs, &file.id, Bytes::from(bytes)).await?;
            }
        }
        files.push(file);
    }
    Ok(files)
}

/// For the executor, after an execution in a container's session: the files it removed from
/// /mnt/data leave the container's list, and their kept bytes go.
pub async fn record_removed(
    db: &PgPool,
    blobs: &BlobStore,
    container_id: &str,
    removed: &[String],
) -> anyhow::Result<()> {
    let gone: Vec<String> = sqlx::query_scalar(
        "DELETE FROM container_files WHERE container_id = $1 AND path = ANY($2) RETURNING id",
    )
    .bind(container_id)
    .bind(removed)
    .fetch_all(db)
    .await?;
    for file_id in gone {
        remove_bytes(blobs, &file_id).await;
    }
    Ok(())
}

/// The container's file at `path` (absolute, under /mnt/data), if it is listed: e.g. to cite a
/// file the code wrote (`container_file_citation` needs its `cfile_` id).
pub async fn by_path(
    db: &PgPool,
    container_id: &str,
    path: &str,
) -> sqlx::Result<Option<ContainerFile>> {
    let found: Option<SqlJson<ContainerFile>> = sqlx::query_scalar(
        "SELECT data FROM container_files WHERE container_id = $1 AND path = $2",
    )
    .bind(container_id)
    .bind(path)
    .fetch_optional(db)
    .await?;
    Ok(found.map(|SqlJson(file)| file))
}

/// Records the file at `path` (a new row, or the existing one's new size).
async fn upsert(
    db: &PgPool,
    project: &Project,
    container_id: &str,
    path: &str,
    bytes: u64,
    source: &str,
) -> ApiResult<ContainerFile> {
    let file = ContainerFile {
        id: ids::new_id(ids::CONTAINER_FILE),
        object: "container.file".into(),
        container_id: container_id.to_string(),
        created_at: ids::now(),
        bytes,
        path: path.to_string(),
        source: source.to_string(),
    };
    let SqlJson(stored): SqlJson<ContainerFile> = sqlx::query_scalar(
        "INSERT INTO container_files (id, container_id, project, path, bytes, source, created_at, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (container_id, path) DO UPDATE SET bytes = excluded.bytes,
             data = container_files.data || jsonb_build_object('bytes', excluded.bytes)
         RETURNING data",
    )
    .bind(&file.id)
    .bind(container_id)
    .bind(&project.0)
    .bind(path)
    .bind(bytes as i64)
    .bind(source)
    .bind(file.created_at)
    .bind(SqlJson(&file))
    .fetch_one(db)
    .await?;
    Ok(stored)
}

async fn store_bytes(db: &PgPool, blobs: &BlobStore, file_id: &str, bytes: Bytes) -> ApiResult<()> {
    let key = Key::container_file(file_id);
    blobs
        .put(&key, bytes)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::from(e)))?;
    sqlx::query("UPDATE container_files SET blob_key = $2 WHERE id = $1")
        .bind(file_id)
        .bind(key.to_string())
        .execute(db)
        .await?;
    Ok(())
}

async fn remove_bytes(blobs: &BlobStore, file_id: &str) {
    if let Err(e) = blobs.remove(&Key::container_file(file_id)).await {
        tracing::warn!(file_id, error = %e, "removing a container file's bytes");
    }
}

fn unavailable(e: SandboxError) -> ApiError {
    match e {
        SandboxError::InvalidPath(m) => ApiError::invalid(m),
        other => ApiError::Internal(anyhow::Error::from(other)),
    }
}
