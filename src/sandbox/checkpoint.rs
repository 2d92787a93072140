//! Checkpoints: a session's /mnt/data and its Python namespace (as far as it pickles), saved
//! to the blob store when the session ends for a routine reason (idle, evicted, graceful
//! shutdown) and now and then while it is used, and put back into the next session of the
//! same thread, on whichever replica that is.
//!
//! A checkpoint is one blob, `checkpoints/<thread_id>`: the archive API's tar of /mnt/data's
//! contents (entries `./...`), streamed from the daemon into the blob store as it comes and
//! back into the next sandbox the same way, never whole in memory. The namespace pickle
//! travels inside it: the driver writes it into /mnt/data under a hidden name just before the
//! archive is taken and removes it right after (and again once it is loaded), so it never
//! shows while code runs. One archive call each way is the cheapest route (an exec to `cat`
//! a file costs more than the archive takes to carry it); the archive API cannot see into the
//! /tmp tmpfs mount (moby#22020), but it can into the tmpfs-backed /mnt/data volume. What was
//! kept and what was not (the manifest) is the row's metadata in `sandbox_checkpoints` (see
//! `store`). Checkpoints of the first format (see `v1`) are still restored.

mod layer;
mod store;
mod v1;
mod whole_box;

pub use store::Checkpoints;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::container::{Container, DATA_DIR};
use super::driver::{Driver, NamespaceRestored, NamespaceSaved, NotKept};
use super::tar_scan::TarScan;
use super::SandboxError;
use crate::blobs::{self, BlobWriter};

/// The pickle's place while it is in /mnt/data, and its entry in the archive.
const PICKLE_PATH: &str = "/mnt/data/.assistd-namespace.pkl";
const PICKLE_ENTRY: &str = "./.assistd-namespace.pkl";
/// How long the driver may take to pickle or unpickle the namespace.
const NAMESPACE_WAIT: Duration = Duration::from_secs(60);
/// How long the driver may take to remove the pickle.
const DISCARD_WAIT: Duration = Duration::from_secs(5);
const FORMAT: u32 = 2;

/// A checkpoint's blob as it is read back.
pub(crate) type BlobStream = BoxStream<'static, blobs::Result<Bytes>>;

/// What a checkpoint holds, stored in the row's metadata.
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
    /// Taken as the session ended (idle, evicted, graceful shutdown), with nothing run after
    /// it. Cleared when a session restores it: from then on it may predate that session's cells.
    #[serde(default)]
    pub at_end: bool,
    /// The rest of the box (see `whole_box`), in the second blob; None: not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_box: Option<whole_box::BoxSaved>,
}

/// What came back into a new session, for the note the model reads.
#[derive(Debug, Clone)]
pub(crate) struct Restored {
    pub manifest: Manifest,
    pub namespace: Result<NamespaceRestored, String>,
}

/// Saves the sandbox's namespace and /mnt/data into `out` (not finished: the caller makes it
/// visible with the row); returns the manifest. A namespace that cannot be saved (no driver,
/// pickling failed, no room left in /mnt/data) leaves a checkpoint of the files alone, with
/// the reason. At most `max_data` bytes of archive. With `box_out`, the rest of the box goes
/// there (see `whole_box`), its root filesystem's changes at most the `u64` given with it.
pub(crate) async fn take(
    docker: &Docker,
    container: &Container,
    mut driver: Option<&mut Driver>,
    (out, box_out): (&mut BlobWriter, Option<(&mut BlobWriter, u64)>),
    max_data: u64,
    at_end: bool,
) -> anyhow::Result<Manifest> {
    let mut manifest = Manifest {
        format: FORMAT,
        created_at: unix_now(),
        at_end,
        ..Default::default()
    };
    let started = Instant::now();
    match driver.as_deref_mut() {
        Some(driver) => match driver.checkpoint(PICKLE_PATH, NAMESPACE_WAIT).await {
            Ok(saved) => manifest.namespace = Some(saved),
            Err(e) => manifest.namespace_error = Some(e),
        },
        None => manifest.namespace_error = Some("the Python process had stopped".into()),
    }
    let pickled = started.elapsed();
    let copied = copy_data(docker, container, out, max_data).await;
    let archived = started.elapsed();
    if let Some(driver) = driver {
        remove_pickle(docker, container, driver).await;
    }
    let scan = copied?;
    if let Some((box_out, max_layer)) = box_out {
        manifest.whole_box =
            Some(whole_box::take(docker, container, box_out, (max_data, max_layer)).await?);
    }
    if manifest.namespace.is_some() && !scan.saw_apart() {
        manifest.namespace = None;
        manifest.namespace_error = Some("the pickle was missing from /mnt/data's archive".into());
    }
    manifest.files = scan.files();
    manifest.data_bytes = scan.bytes();
    tracing::debug!(
        container = container.name,
        pickle_ms = pickled.as_millis() as u64,
        archive_ms = (archived - pickled).as_millis() as u64,
        discard_ms = (started.elapsed() - archived).as_millis() as u64,
        bytes = out.written(),
        "checkpoint taken"
    );
    Ok(manifest)
}

/// Streams the archive of /mnt/data into `out`, counting its files on the way.
async fn copy_data(
    docker: &Docker,
    container: &Container,
    out: &mut BlobWriter,
    max_data: u64,
) -> anyhow::Result<TarScan> {
    let mut scan = TarScan::new(PICKLE_ENTRY);
    let mut archive = std::pin::pin!(container.archive_of(docker, DATA_DIR));
    while let Some(chunk) = archive.next().await {
        let chunk = chunk.map_err(SandboxError::from)?;
        let size = out.written() + chunk.len() as u64;
        if size > max_data {
            return Err(SandboxError::FileTooLarge {
                path: DATA_DIR.into(),
                size,
                max: max_data,
            }
            .into());
        }
        scan.feed(&chunk)?;
        out.write(chunk).await?;
    }
    anyhow::ensure!(scan.ended(), "the archive of {DATA_DIR} ended early");
    Ok(scan)
}

/// Takes the pickle out of /mnt/data, through the driver, or if it is gone (it may have died
/// half-way through writing) with an exec.
async fn remove_pickle(docker: &Docker, container: &Container, driver: &mut Driver) {
    if driver.discard(PICKLE_PATH, DISCARD_WAIT).await.is_ok() {
        return;
    }
    let cmd = ["rm", "-f", PICKLE_PATH];
    if let Err(e) = container.exec_piped(docker, &cmd, None, 4096, 0).await {
        tracing::warn!(container = container.name, error = %e, "could not remove a namespace pickle");
    }
}

/// Puts a checkpoint back into a fresh sandbox: files (and the pickle, and the rest of the box
/// when it was kept) first, then the namespace.
pub(crate) async fn put_back(
    docker: &Docker,
    container: &Container,
    driver: &mut Driver,
    mut manifest: Manifest,
    (blob, box_blob): (BlobStream, Option<BlobStream>),
) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let tar = if manifest.format == v1::FORMAT {
        let blob: Vec<Bytes> = blob.try_collect().await?;
        let (tar, pickled) = v1::for_upload(&blob.concat(), PICKLE_ENTRY)?;
        if !pickled {
            manifest.namespace = None;
        }
        futures::stream::once(async move { Ok(Bytes::from(tar)) }).boxed()
    } else {
        blob.map_err(std::io::Error::other).boxed()
    };
    container.extract_into(docker, DATA_DIR, tar).await?;
    if let Some(box_blob) = box_blob {
        whole_box::put_back(docker, container, manifest.whole_box.as_ref(), box_blob).await?;
    }
    let extracted = started.elapsed();
    let namespace = match (&manifest.namespace, &manifest.namespace_error) {
        (Some(_), _) => driver.restore(PICKLE_PATH, NAMESPACE_WAIT).await,
        (None, Some(why)) => Err(format!("the variables were not saved: {why}")),
        (None, None) => Err("the checkpoint holds no variables".into()),
    };
    if namespace.is_err() {
        // The driver removes what it loads; what it did not load must not stay in sight.
        remove_pickle(docker, container, driver).await;
    }
    tracing::debug!(
        container = container.name,
        extract_ms = extracted.as_millis() as u64,
        namespace_ms = (started.elapsed() - extracted).as_millis() as u64,
        "checkpoint put back"
    );
    Ok(Restored {
        manifest,
        namespace,
    })
}

impl Restored {
    /// The note the model reads before the first output of the restored session; None when
    /// there is nothing true to tell: the checkpoint was taken as the session ended, nothing
    /// ran after it, and everything came back.
    pub fn note(&self) -> Option<String> {
        let m = &self.manifest;
        if m.at_end {
            return self.note_at_end();
        }
        let age = unix_now().saturating_sub(m.created_at);
        let mut note = format!(
            "[Sandbox restored: this thread's earlier Python session ended unexpectedly, and a new \
             one was started from its checkpoint of {age} s ago. Files in /mnt/data: {} restored.",
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
                    note.push_str(&format!(" {}.", not_restored(&ns.failed)));
                }
            }
            Err(why) => note.push_str(&format!(" Variables were NOT restored ({why}).")),
        }
        note.push_str(
            " Code may have run after that checkpoint: variables it set and files it wrote or \
             changed since then are lost.]",
        );
        Some(note)
    }

    /// A checkpoint of the session's end: only what did not come back is news.
    fn note_at_end(&self) -> Option<String> {
        let lost = match &self.namespace {
            Ok(ns) if ns.failed.is_empty() => return None,
            Ok(ns) => not_restored(&ns.failed),
            Err(why) => format!("Variables were NOT restored ({why})"),
        };
        Some(format!(
            "[Sandbox restored: this thread's Python session was saved when it ended and has been \
             started again. {lost}.]"
        ))
    }
}

fn not_restored(failed: &[NotKept]) -> String {
    let lost: Vec<String> = failed.iter().map(describe).collect();
    format!(
        "NOT restored (define them again if needed): {}",
        lost.join("; ")
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let note = restored
            .note()
            .expect("a note after a checkpoint that may be older");
        assert!(note.contains("Variables restored: df, n."), "{note}");
        assert!(note.contains("are lost"), "{note}");
        assert!(note.contains("np (numpy)"), "{note}");
        assert!(note.contains("fh (_io.TextIOWrapper: open file)"), "{note}");
        assert!(note.contains("Files in /mnt/data: 1 restored"), "{note}");

        let mut at_end = restored.clone();
        at_end.manifest.at_end = true;
        let note = at_end.note().expect("what did not come back is named");
        assert!(note.contains("fh (_io.TextIOWrapper: open file)"), "{note}");
        assert!(!note.contains("lost") && !note.contains("df, n"), "{note}");
        if let Ok(ns) = at_end.namespace.as_mut() {
            ns.failed.clear();
        }
        assert_eq!(
            at_end.note(),
            None,
            "all came back from the session's end: nothing to say"
        );
    }
}
