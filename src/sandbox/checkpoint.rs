//! Checkpoints: a session's /mnt/data and its Python namespace (as far as it pickles), saved
//! to the blob store when the session ends for a routine reason (idle, evicted, graceful
//! shutdown) and now and then while it is used, and put back into the next session of the
//! same thread, on whichever replica that is.
//!
//! A checkpoint is one blob, `checkpoints/<thread_id>`, holding a tar of three members:
//! `manifest.json` (what was kept and what was not), `namespace.pkl` (the driver's pickle,
//! absent when the namespace could not be saved) and `data.tar` (/mnt/data as the archive API
//! gives it, entries under `data/`). A row in `sandbox_checkpoints` says the blob exists and when the
//! thread last used it; rows older than `ASSISTD_SANDBOX_RETAIN_SECS` are swept with their
//! blobs, and deleting the thread deletes both. /mnt/data moves through the archive API (it
//! sees into the tmpfs-backed volume, and is several times faster than a `tar` exec's
//! stream); the pickle, on the /tmp tmpfs mount the archive API cannot see into (moby#22020),
//! through `cat` execs.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::container::{Container, DATA_DIR};
use super::driver::{Driver, NamespaceRestored, NamespaceSaved, NotKept};
use super::SandboxError;
use crate::blobs::{BlobStore, Key};

/// Where the driver writes and reads the pickle inside the container (a tmpfs, not /mnt/data).
const PICKLE_DIR: &str = "/tmp/assistd-checkpoint";
const PICKLE_PATH: &str = "/tmp/assistd-checkpoint/namespace.pkl";
/// How long the driver may take to pickle or unpickle the namespace.
const NAMESPACE_WAIT: Duration = Duration::from_secs(60);
/// Largest namespace pickle taken out of a container.
const MAX_PICKLE: usize = 2 << 30;
const FORMAT: u32 = 1;

/// What a checkpoint holds, stored in the blob and in the row's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    /// Unix seconds.
    pub created_at: u64,
    /// None when the namespace could not be saved (see `namespace_error`).
    pub namespace: Option<NamespaceSaved>,
    pub namespace_error: Option<String>,
    pub files: usize,
    pub data_bytes: u64,
}

/// What came back into a new session, for the note the model reads.
#[derive(Debug, Clone)]
pub(crate) struct Restored {
    pub manifest: Manifest,
    pub namespace: Result<NamespaceRestored, String>,
}

/// Saves the sandbox's /mnt/data and namespace; returns the blob and its manifest. A
/// namespace that cannot be saved (no driver, pickling failed) leaves a checkpoint of the
/// files alone, with the reason.
pub(crate) async fn take(
    docker: &Docker,
    container: &Container,
    driver: Option<&mut Driver>,
    max_data: usize,
) -> Result<(Vec<u8>, Manifest), SandboxError> {
    let mut manifest = Manifest {
        format: FORMAT,
        created_at: unix_now(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let mut pickle = None;
    match driver {
        Some(driver) => match driver.checkpoint(PICKLE_PATH, NAMESPACE_WAIT).await {
            Ok(saved) => {
                let cmd = ["sh", "-c", "cat \"$0\" && rm -f \"$0\"", PICKLE_PATH];
                match container
                    .exec_piped(docker, &cmd, None, MAX_PICKLE, 0)
                    .await
                {
                    Ok(bytes) => {
                        pickle = Some(bytes);
                        manifest.namespace = Some(saved);
                    }
                    Err(e) => manifest.namespace_error = Some(e.to_string()),
                }
            }
            Err(e) => manifest.namespace_error = Some(e),
        },
        None => manifest.namespace_error = Some("the Python process had stopped".into()),
    }
    let pickled = started.elapsed();
    let data = container.download_dir(docker, DATA_DIR, max_data).await?;
    let tarred = started.elapsed();
    let (files, data_bytes) = count_files(&data)
        .map_err(|e| SandboxError::Protocol(format!("reading the /mnt/data archive: {e}")))?;
    manifest.files = files;
    manifest.data_bytes = data_bytes;
    let blob = pack(&manifest, pickle.as_deref(), &data)
        .map_err(|e| SandboxError::Protocol(format!("building the checkpoint: {e}")))?;
    tracing::debug!(
        container = container.name,
        pickle_ms = pickled.as_millis() as u64,
        tar_ms = (tarred - pickled).as_millis() as u64,
        pack_ms = (started.elapsed() - tarred).as_millis() as u64,
        "checkpoint taken"
    );
    Ok((blob, manifest))
}

/// Puts a checkpoint back into a fresh sandbox: files first, then the namespace.
pub(crate) async fn put_back(
    docker: &Docker,
    container: &Container,
    driver: &mut Driver,
    blob: &[u8],
) -> Result<Restored, SandboxError> {
    let started = std::time::Instant::now();
    let (manifest, pickle, data) =
        unpack(blob).map_err(|e| SandboxError::Protocol(format!("unreadable checkpoint: {e}")))?;
    let unpacked = started.elapsed();
    let data = reroot(&data)
        .map_err(|e| SandboxError::Protocol(format!("unreadable /mnt/data archive: {e}")))?;
    container.upload_dir(docker, DATA_DIR, data).await?;
    let untarred = started.elapsed();
    let namespace = match (pickle, &manifest.namespace_error) {
        (Some(pickle), _) => {
            let cmd = [
                "sh",
                "-c",
                "mkdir -p \"$0\" && umask 077 && cat > \"$1\"",
                PICKLE_DIR,
                PICKLE_PATH,
            ];
            match container
                .exec_piped(docker, &cmd, Some(&pickle), 64 * 1024, 0)
                .await
            {
                Ok(_) => driver.restore(PICKLE_PATH, NAMESPACE_WAIT).await,
                Err(e) => Err(e.to_string()),
            }
        }
        (None, Some(why)) => Err(format!("the variables were not saved: {why}")),
        (None, None) => Err("the checkpoint holds no variables".into()),
    };
    tracing::debug!(
        container = container.name,
        unpack_ms = unpacked.as_millis() as u64,
        untar_ms = (untarred - unpacked).as_millis() as u64,
        namespace_ms = (started.elapsed() - untarred).as_millis() as u64,
        "checkpoint put back"
    );
    Ok(Restored {
        manifest,
        namespace,
    })
}

impl Restored {
    /// The note the model reads before the first output of the restored session.
    pub fn note(&self) -> String {
        let m = &self.manifest;
        let age = unix_now().saturating_sub(m.created_at);
        let mut note = format!(
            "[Sandbox restored: this thread's earlier Python session ended, and a new one was \
             started from its checkpoint of {age} s ago. Files in /mnt/data: {} restored.",
            m.files
        );
        match &self.namespace {
            Ok(ns) => {
                if ns.restored.is_empty() {
                    note.push_str(" Variables restored: none.");
                } else {
                    note.push_str(&format!(" Variables restored: {}.", ns.restored.join(", ")));
                }
                if !ns.modules.is_empty() {
                    note.push_str(&format!(" Modules re-imported: {}.", modules(&ns.modules)));
                }
                if !ns.failed.is_empty() {
                    let lost: Vec<String> = ns.failed.iter().map(describe).collect();
                    note.push_str(&format!(
                        " NOT restored (define them again if needed): {}.",
                        lost.join("; ")
                    ));
                }
            }
            Err(why) => note.push_str(&format!(" Variables were NOT restored ({why}).")),
        }
        note.push_str(" Changes made after the checkpoint are lost.]");
        note
    }
}

/// The note when a checkpoint existed but could not be put back.
pub(crate) fn failed_note(why: &str) -> String {
    format!(
        "[Sandbox reset: this thread's earlier Python session ended and its checkpoint could \
         not be restored ({why}); variables and files in /mnt/data from before are gone.]"
    )
}

fn modules(modules: &BTreeMap<String, String>) -> String {
    modules
        .iter()
        .map(|(name, module)| {
            if name == module {
                name.clone()
            } else {
                format!("{name} ({module})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(lost: &NotKept) -> String {
    match (lost.type_name.is_empty(), lost.reason.is_empty()) {
        (false, false) => format!("{} ({}: {})", lost.name, lost.type_name, lost.reason),
        (false, true) => format!("{} ({})", lost.name, lost.type_name),
        (true, false) => format!("{} ({})", lost.name, lost.reason),
        (true, true) => lost.name.clone(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn count_files(data_tar: &[u8]) -> std::io::Result<(usize, u64)> {
    let mut archive = tar::Archive::new(data_tar);
    let (mut files, mut bytes) = (0, 0);
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            files += 1;
            bytes += entry.size();
        }
    }
    Ok((files, bytes))
}

/// The archive API gives /mnt/data as `data/...`; uploading into /mnt/data wants `./...`.
fn reroot(data_tar: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Archive::new(data_tar);
    let mut out = tar::Builder::new(Vec::with_capacity(data_tar.len()));
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.into_owned();
        let Ok(inner) = path.strip_prefix("data") else {
            continue;
        };
        if inner.as_os_str().is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        out.append_data(&mut header, inner, entry)?;
    }
    out.into_inner()
}

fn pack(manifest: &Manifest, pickle: Option<&[u8]>, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let manifest = serde_json::to_vec(manifest)?;
    let size = manifest.len() + pickle.map_or(0, <[u8]>::len) + data.len() + 8 * 1024;
    let mut archive = tar::Builder::new(Vec::with_capacity(size));
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(unix_now());
        archive.append_data(&mut header, name, bytes)
    };
    add("manifest.json", &manifest)?;
    if let Some(pickle) = pickle {
        add("namespace.pkl", pickle)?;
    }
    add("data.tar", data)?;
    archive.into_inner()
}

type Unpacked = (Manifest, Option<Vec<u8>>, Vec<u8>);

fn unpack(blob: &[u8]) -> std::io::Result<Unpacked> {
    let mut archive = tar::Archive::new(blob);
    let (mut manifest, mut pickle, mut data) = (None, None, None);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        let name = entry.path()?.to_string_lossy().into_owned();
        entry.read_to_end(&mut bytes)?;
        match name.as_str() {
            "manifest.json" => manifest = Some(serde_json::from_slice::<Manifest>(&bytes)?),
            "namespace.pkl" => pickle = Some(bytes),
            "data.tar" => data = Some(bytes),
            _ => {}
        }
    }
    let invalid = |what| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let manifest = manifest.ok_or_else(|| invalid("no manifest"))?;
    if manifest.format != FORMAT {
        return Err(invalid("unknown checkpoint format"));
    }
    Ok((
        manifest,
        pickle,
        data.ok_or_else(|| invalid("no data.tar"))?,
    ))
}

/// Where checkpoints are kept: the blob under a key per thread, the row in Postgres. Shared by
/// every replica, so a thread's next session restores wherever it starts.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    db: PgPool,
    blobs: BlobStore,
    retain: Duration,
}

impl Checkpoints {
    /// `retain`: how long after its last use a checkpoint is kept.
    pub fn new(db: PgPool, blobs: BlobStore, retain: Duration) -> Checkpoints {
        Checkpoints { db, blobs, retain }
    }

    pub fn blob_key(thread_id: &str) -> String {
        format!("checkpoints/{thread_id}")
    }

    /// Stores (replaces) the session's checkpoint. A session whose thread or container was
    /// deleted meanwhile (or whose container expired) keeps none.
    pub(crate) async fn save(
        &self,
        thread_id: &str,
        blob: &[u8],
        manifest: &Manifest,
    ) -> anyhow::Result<()> {
        let key = Self::blob_key(thread_id);
        let blob_key = Key::checkpoint(thread_id);
        self.blobs
            .put(&blob_key, bytes::Bytes::copy_from_slice(blob))
            .await?;
        let saved = sqlx::query(
            "INSERT INTO sandbox_checkpoints (thread_id, blob_key, size, metadata) \
             SELECT $1, $2, $3, $4 \
             WHERE EXISTS (SELECT 1 FROM threads WHERE id = $1) \
                OR EXISTS (SELECT 1 FROM containers WHERE id = $1 AND status = 'running') \
             ON CONFLICT (thread_id) DO UPDATE SET blob_key = $2, size = $3, metadata = $4, \
             created_at = now(), last_used_at = now()",
        )
        .bind(thread_id)
        .bind(&key)
        .bind(blob.len() as i64)
        .bind(sqlx::types::Json(manifest))
        .execute(&self.db)
        .await?;
        if saved.rows_affected() == 0 {
            self.blobs.remove(&blob_key).await?;
        }
        Ok(())
    }

    /// The thread's checkpoint blob, if it has one; marks it used.
    pub async fn load(&self, thread_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let found: Option<String> = sqlx::query_scalar(
            "UPDATE sandbox_checkpoints SET last_used_at = now() WHERE thread_id = $1 \
             RETURNING thread_id",
        )
        .bind(thread_id)
        .fetch_optional(&self.db)
        .await?;
        if found.is_none() {
            return Ok(None);
        }
        let bytes = self.blobs.read(&Key::checkpoint(thread_id)).await?;
        Ok(Some(bytes.to_vec()))
    }

    /// Marks the thread's checkpoint (if any) as used now: retention counts from the end of
    /// the last session that could have used it.
    pub async fn touch(&self, thread_id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE sandbox_checkpoints SET last_used_at = now() WHERE thread_id = $1")
            .bind(thread_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes the thread's checkpoint (the thread is being deleted; its row may already be
    /// gone with it, the blob key does not depend on the row).
    pub async fn forget(&self, thread_id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sandbox_checkpoints WHERE thread_id = $1")
            .bind(thread_id)
            .execute(&self.db)
            .await?;
        self.blobs.remove(&Key::checkpoint(thread_id)).await?;
        Ok(())
    }

    /// Deletes the checkpoints not used within the retention period; returns how many.
    pub async fn sweep(&self) -> anyhow::Result<usize> {
        let threads: Vec<String> = sqlx::query_scalar(
            "DELETE FROM sandbox_checkpoints \
             WHERE last_used_at < now() - make_interval(secs => $1) RETURNING thread_id",
        )
        .bind(self.retain.as_secs_f64())
        .fetch_all(&self.db)
        .await?;
        for thread_id in &threads {
            self.blobs.remove(&Key::checkpoint(thread_id)).await?;
        }
        Ok(threads.len())
    }

    pub fn retain(&self) -> Duration {
        self.retain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_checkpoint_unpacks_to_the_same_parts() {
        let manifest = Manifest {
            format: FORMAT,
            created_at: 1,
            files: 2,
            ..Default::default()
        };
        let blob = pack(&manifest, Some(b"pickle"), b"data").unwrap();
        let (back, pickle, data) = unpack(&blob).unwrap();
        assert_eq!(back.files, 2);
        assert_eq!(pickle.as_deref(), Some(&b"pickle"[..]));
        assert_eq!(data, b"data");
        let blob = pack(&manifest, None, b"").unwrap();
        assert!(unpack(&blob).unwrap().1.is_none());
    }

    #[test]
    fn the_note_names_what_came_back_and_what_did_not() {
        let restored = Restored {
            manifest: Manifest {
                format: FORMAT,
                created_at: unix_now(),
                files: 1,
                ..Default::default()
            },
            namespace: Ok(NamespaceRestored {
                restored: vec!["df".into(), "n".into()],
                modules: BTreeMap::from([("np".into(), "numpy".into())]),
                failed: vec![NotKept {
                    name: "fh".into(),
                    type_name: "_io.TextIOWrapper".into(),
                    reason: "open file".into(),
                }],
                ..Default::default()
            }),
        };
        let note = restored.note();
        assert!(note.contains("Variables restored: df, n."), "{note}");
        assert!(note.contains("np (numpy)"), "{note}");
        assert!(note.contains("fh (_io.TextIOWrapper: open file)"), "{note}");
        assert!(note.contains("Files in /mnt/data: 1 restored"), "{note}");
    }
}
