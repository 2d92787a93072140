//! The box's own layer: what was written (or removed) anywhere else in a writable box's root
//! filesystem — files a `user: "root"` command put under /opt, /usr/local or /etc, an image
//! file it deleted. These changes against the image (the `docker diff` of the container) are
//! read from the overlay2 layer itself when this process can (Docker's own list compares the
//! whole file system with the image: seconds); a checkpoint keeps each changed subtree through
//! the archive API (the daemon
//! reads them with owners and modes, whoever may read them in the box) and the deleted paths
//! by name. Put back into a fresh box: the deleted paths are removed again, then each subtree
//! is extracted where it was.
//!
//! Left to the rest of the whole-box checkpoint: the paths it keeps (see `whole_box::PATHS`)
//! and the session's volume. Never kept: mount points and what is under them (the volume,
//! skills, the egress socket, the files Docker mounts into /etc), /dev, /proc and /sys. A
//! directory whose own mode or owner alone changed keeps its image's mode and owner.

use std::collections::HashSet;

use bollard::models::ChangeType;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, InspectContainerOptions, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::BlobStream;
use crate::blobs::BlobWriter;
use crate::sandbox::container::{exec_collect, Container, Exec};
use crate::sandbox::SandboxError;

/// Most changed subtrees a checkpoint keeps one by one (each is one archive call).
const MAX_ROOTS: usize = 5000;
/// Paths never kept, with everything under them.
const NEVER: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
];

/// What a checkpoint kept of the layer, in the order its archives follow each other in the
/// blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LayerSaved {
    /// Each changed subtree and the bytes of its archive.
    pub roots: Vec<Root>,
    /// Paths of the image that were removed.
    pub deleted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Root {
    pub path: String,
    pub bytes: u64,
}

/// What to keep, from Docker's list of changes: the subtrees added (the topmost added path
/// of each), the files changed (changed paths that hold no other change), and the topmost
/// removed paths; minus what `skip` says is kept elsewhere or never.
fn plan(
    changes: &[(String, ChangeType)],
    skip: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let added: HashSet<&str> = changes
        .iter()
        .filter(|(_, k)| *k == ChangeType::_1)
        .map(|(p, _)| p.as_str())
        .collect();
    let deleted: HashSet<&str> = changes
        .iter()
        .filter(|(_, k)| *k == ChangeType::_2)
        .map(|(p, _)| p.as_str())
        .collect();
    let mut holders: HashSet<&str> = HashSet::new();
    for (path, _) in changes {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() || !holders.insert(parent) {
                break;
            }
            p = parent;
        }
    }
    let under = |set: &HashSet<&str>, path: &str| {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if set.contains(parent) {
                return true;
            }
            p = parent;
        }
        false
    };
    let mut keep = Vec::new();
    let mut removed = Vec::new();
    for (path, kind) in changes {
        if skip(path) {
            continue;
        }
        match kind {
            ChangeType::_1 if !under(&added, path) => keep.push(path.clone()),
            ChangeType::_0 if !holders.contains(path.as_str()) && !under(&added, path) => {
                keep.push(path.clone())
            }
            ChangeType::_2 if !under(&deleted, path) && !under(&added, path) => {
                removed.push(path.clone())
            }
            _ => {}
        }
    }
    keep.sort();
    removed.sort();
    (keep, removed)
}

/// Whether `path` is `base` or under it.
fn within(path: &str, base: &str) -> bool {
    path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
        || base == "/"
}

/// Streams the layer's changes into `out` (at most `max` bytes in all).
pub(crate) async fn take(
    docker: &Docker,
    container: &Container,
    kept_elsewhere: &[&str],
    out: &mut BlobWriter,
    max: u64,
) -> anyhow::Result<LayerSaved> {
    let inspect = docker
        .inspect_container(&container.name, None::<InspectContainerOptions>)
        .await
        .map_err(SandboxError::from)?;
    let changes = match overlay_dirs(inspect.graph_driver.as_ref()) {
        Some((upper, lowers)) => {
            tokio::task::spawn_blocking(move || overlay_changes(&upper, &lowers)).await??
        }
        // Docker's own list, where this process cannot read the layer (it took 13 s on this
        // machine's 5 GB image: it compares the whole file system with the image's).
        None => docker
            .container_changes(&container.name)
            .await
            .map_err(SandboxError::from)?
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect(),
    };
    let mounts: Vec<String> = inspect
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.destination)
        .collect();
    let skip = |path: &str| {
        path == "/"
            || NEVER.iter().any(|n| within(path, n))
            || kept_elsewhere.iter().any(|k| within(path, k))
            // A mount point, what is under one, or a directory holding one.
            || mounts.iter().any(|m| within(path, m) || within(m, path))
    };
    let (keep, deleted) = plan(&changes, skip);
    let keep = without_directories_changed_alone(docker, container, &changes, keep).await?;
    anyhow::ensure!(
        keep.len() <= MAX_ROOTS,
        "{} changed paths outside the kept directories; at most {MAX_ROOTS} are kept",
        keep.len()
    );
    let mut roots = Vec::with_capacity(keep.len());
    for path in keep {
        let before = out.written();
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(&path)
            .build();
        let mut archive =
            std::pin::pin!(docker.download_from_container(&container.name, Some(options)));
        while let Some(chunk) = archive.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // Gone since Docker listed it (a running command removed it): nothing to keep.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) if out.written() == before => break,
                Err(e) => return Err(SandboxError::from(e).into()),
            };
            let size = out.written() + chunk.len() as u64;
            if size > max {
                return Err(SandboxError::FileTooLarge {
                    path: "the box's root filesystem".into(),
                    size,
                    max,
                }
                .into());
            }
            out.write(chunk).await?;
        }
        if out.written() > before {
            roots.push(Root {
                path,
                bytes: out.written() - before,
            });
        }
    }
    Ok(LayerSaved { roots, deleted })
}

/// The container's own layer and the image's layers beneath it, when its storage is overlay2
/// and this process can read them (a server on the Docker host, as root).
fn overlay_dirs(
    driver: Option<&bollard::models::DriverData>,
) -> Option<(std::path::PathBuf, Vec<std::path::PathBuf>)> {
    let driver = driver.filter(|d| d.name == "overlay2")?;
    let upper = std::path::PathBuf::from(driver.data.get("UpperDir")?);
    let lowers: Vec<_> = driver
        .data
        .get("LowerDir")?
        .split(':')
        .map(std::path::PathBuf::from)
        .collect();
    (std::fs::read_dir(&upper).is_ok() && lowers.iter().all(|l| l.is_dir()))
        .then_some((upper, lowers))
}

/// What `docker diff` lists, read from the layer itself as Docker's overlay2 driver does: every
/// path in the upper layer is added (absent from the image's layers) or changed, and a
/// whiteout (a character device 0:0) is a removed path. A directory made opaque (removed and
/// made again) counts as changed: what the image had in it is not listed as removed.
fn overlay_changes(
    upper: &std::path::Path,
    lowers: &[std::path::PathBuf],
) -> anyhow::Result<Vec<(String, ChangeType)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut todo = vec![std::path::PathBuf::new()];
    while let Some(relative) = todo.pop() {
        for entry in std::fs::read_dir(upper.join(&relative))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let rel = relative.join(entry.file_name());
            let path = format!("/{}", rel.to_string_lossy());
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                out.push((path, ChangeType::_2));
                continue;
            }
            let in_image = lowers
                .iter()
                .any(|l| l.join(&rel).symlink_metadata().is_ok());
            out.push((
                path,
                if in_image {
                    ChangeType::_0
                } else {
                    ChangeType::_1
                },
            ));
            if meta.is_dir() {
                todo.push(rel);
            }
        }
    }
    Ok(out)
}

/// Drops, from changed paths that hold no other change, the directories: only their own mode,
/// owner or times changed (archiving one would copy the image's whole subtree).
async fn without_directories_changed_alone(
    docker: &Docker,
    container: &Container,
    changes: &[(String, ChangeType)],
    keep: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let changed: HashSet<&str> = changes
        .iter()
        .filter(|(_, k)| *k == ChangeType::_0)
        .map(|(p, _)| p.as_str())
        .collect();
    let candidates: Vec<&str> = keep
        .iter()
        .map(String::as_str)
        .filter(|p| changed.contains(p))
        .collect();
    if candidates.is_empty() {
        return Ok(keep);
    }
    let script = r#"for p; do if [ -d "$p" ] && [ ! -L "$p" ]; then printf '%s\0' "$p"; fi; done"#;
    let mut cmd = vec!["sh", "-c", script, "dirs"];
    cmd.extend(candidates.iter().copied());
    let ran = exec_collect(
        docker,
        &container.name,
        Exec {
            cmd: &cmd,
            stdin: None,
            max_stdout: 16 * 1024 * 1024,
            user: "0:0",
            working_dir: "/",
        },
    )
    .await?;
    let dirs: HashSet<&[u8]> = ran.stdout.split(|b| *b == 0).collect();
    Ok(keep
        .into_iter()
        .filter(|p| !(changed.contains(p.as_str()) && dirs.contains(p.as_bytes())))
        .collect())
}

/// Puts the layer's changes back into a fresh box: removes the deleted paths, then extracts
/// each subtree's archive (the next `bytes` of `blob`) into its parent.
pub(crate) async fn put_back(
    docker: &Docker,
    container: &Container,
    saved: &LayerSaved,
    blob: &mut Parts,
) -> anyhow::Result<()> {
    for batch in saved.deleted.chunks(500) {
        let mut cmd = vec!["rm", "-rf", "--"];
        cmd.extend(batch.iter().map(String::as_str));
        let ran = exec_collect(
            docker,
            &container.name,
            Exec {
                cmd: &cmd,
                stdin: None,
                max_stdout: 4096,
                user: "0:0",
                working_dir: "/",
            },
        )
        .await?;
        if ran.status != 0 {
            tracing::warn!(
                container = container.name,
                stderr = %String::from_utf8_lossy(&ran.stderr).trim(),
                "removing paths a checkpoint recorded as deleted"
            );
        }
    }
    for root in &saved.roots {
        let parent = match root.path.rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((parent, _)) => parent,
        };
        let (tx, rx) = mpsc::channel(4);
        let options = UploadToContainerOptionsBuilder::default()
            .path(parent)
            .build();
        let upload = docker.upload_to_container(
            &container.name,
            Some(options),
            bollard::body_try_stream(ReceiverStream::new(rx)),
        );
        let feed = blob.send(root.bytes, tx);
        let (uploaded, fed) = tokio::join!(upload, feed);
        fed?;
        uploaded.map_err(|e| anyhow::anyhow!("restoring {}: {e}", root.path))?;
    }
    Ok(())
}

/// A blob read part by part: each part is its next so many bytes.
pub(crate) struct Parts {
    blob: BlobStream,
    pending: Option<Bytes>,
}

impl Parts {
    pub fn new(blob: BlobStream) -> Parts {
        Parts {
            blob,
            pending: None,
        }
    }

    /// The next chunk of at most `max` bytes (None at the blob's end).
    pub async fn next(&mut self, max: u64) -> anyhow::Result<Option<Bytes>> {
        let mut chunk = match self.pending.take() {
            Some(chunk) => chunk,
            None => match self.blob.next().await {
                Some(chunk) => chunk?,
                None => return Ok(None),
            },
        };
        if chunk.len() as u64 > max {
            self.pending = Some(chunk.split_off(max as usize));
        }
        Ok(Some(chunk))
    }

    /// Sends the next `n` bytes into `tx` (which is then dropped).
    async fn send(
        &mut self,
        mut n: u64,
        tx: mpsc::Sender<std::io::Result<Bytes>>,
    ) -> anyhow::Result<()> {
        while n > 0 {
            let chunk = self
                .next(n)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the box's checkpoint ended early"))?;
            n -= chunk.len() as u64;
            if tx.send(Ok(chunk)).await.is_err() {
                anyhow::bail!("the daemon stopped reading a checkpoint's archive");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(list: &[(&str, u8)]) -> Vec<(String, ChangeType)> {
        list.iter()
            .map(|(p, k)| {
                let kind = match k {
                    0 => ChangeType::_0,
                    1 => ChangeType::_1,
                    _ => ChangeType::_2,
                };
                (p.to_string(), kind)
            })
            .collect()
    }

    #[test]
    fn only_the_topmost_added_changed_files_and_topmost_removed_paths_are_kept() {
        let list = changes(&[
            ("/etc", 0),
            ("/etc/motd", 2),
            ("/etc/app.conf", 0),
            ("/opt", 0),
            ("/opt/tool", 1),
            ("/opt/tool/bin", 1),
            ("/opt/tool/bin/run", 1),
            ("/usr", 0),
            ("/usr/share", 0),
            ("/usr/share/doc", 2),
            ("/usr/share/doc/x", 2),
            ("/workspace", 1),
            ("/workspace/a", 1),
            ("/mnt", 0),
            ("/mnt/skills", 1),
        ]);
        let skip = |p: &str| {
            within(p, "/workspace") || within(p, "/mnt/skills") || within("/mnt/skills", p)
        };
        let (keep, removed) = plan(&list, skip);
        assert_eq!(keep, vec!["/etc/app.conf", "/opt/tool"]);
        assert_eq!(removed, vec!["/etc/motd", "/usr/share/doc"]);
    }

    #[test]
    fn the_upper_layer_s_paths_are_added_or_changed_by_whether_the_image_has_them() {
        let dir = std::env::temp_dir().join(format!("assistd-layer-{}", std::process::id()));
        let (upper, lower) = (dir.join("upper"), dir.join("lower"));
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("opt/tool")).unwrap();
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/app.conf"), "old").unwrap();
        std::fs::write(upper.join("etc/app.conf"), "new").unwrap();
        std::fs::write(upper.join("opt/tool/run"), "x").unwrap();
        let mut found = overlay_changes(&upper, &[lower]).unwrap();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        std::fs::remove_dir_all(&dir).unwrap();
        let expected = changes(&[
            ("/etc", 0),
            ("/etc/app.conf", 0),
            ("/opt", 1),
            ("/opt/tool", 1),
            ("/opt/tool/run", 1),
        ]);
        assert_eq!(found, expected);
    }

    #[test]
    fn within_means_the_path_or_below_it() {
        assert!(within("/etc/hosts", "/etc/hosts"));
        assert!(within("/etc/hosts/x", "/etc/hosts"));
        assert!(!within("/etc/hostsx", "/etc/hosts"));
        assert!(within("/anything", "/"));
    }
}
