//! The rest of the box: what a sandbox user can write outside the session's volume (which
//! holds /mnt/data and /home/user and is the checkpoint's main archive). Sessions that are
//! whole machines to their users (E2B sandboxes: an agent installs helper scripts in /tmp and
//! works in /workspace) keep these paths too, as a second blob beside the main one.
//!
//! The archive API cannot be used here: it cannot see into a tmpfs mount under a read-only
//! root (moby#22020). So `tar` runs in the sandbox, as the sandbox user, its stdout streamed
//! into the blob and the blob streamed back into a `tar -x` the same way. The archive holds
//! each path's contents, not the path itself: the user may not change the mode of /tmp.
//!
//! Everything else the box's root filesystem holds that differs from the image (what root
//! wrote under /opt or /etc, image files removed) follows in the same blob (see `layer`).

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::layer::{self, LayerSaved, Parts};
use super::BlobStream;
use crate::blobs::BlobWriter;
use crate::sandbox::container::{Container, SANDBOX_USER};
use crate::sandbox::SandboxError;

/// Every path outside the session's volume a sandbox user can write, kept by a whole-box
/// checkpoint. Paths that do not exist in a sandbox are skipped; add new writable places here.
pub(crate) const PATHS: &[&str] = &["/workspace", "/tmp", "/var/tmp"];

/// Lists each path's direct children (relative to `/`) for `tar`, which archives them
/// recursively. Sockets are skipped by tar; files that vanish or cannot be read are warnings.
const ARCHIVE: &str = r#"cd / && for p in "$@"; do if [ -d "$p" ]; then find "$p" -mindepth 1 -maxdepth 1 -print0; fi; done | tar -c -f - --null -T - --ignore-failed-read"#;

/// What a whole-box archive held, for the manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct BoxSaved {
    pub paths: Vec<String>,
    /// The bytes of the archive of `paths` (the blob's start).
    pub bytes: u64,
    /// The rest of the root filesystem's changes, after that archive; None in checkpoints
    /// made before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerSaved>,
}

/// Streams the archive of [`PATHS`] into `out` (at most `max` bytes), then the layer's other
/// changes (at most `max_layer` bytes more).
pub(crate) async fn take(
    docker: &Docker,
    container: &Container,
    out: &mut BlobWriter,
    (max, max_layer): (u64, u64),
) -> anyhow::Result<BoxSaved> {
    let mut cmd = vec!["sh", "-c", ARCHIVE, "archive"];
    let relative: Vec<&str> = PATHS.iter().map(|p| p.trim_start_matches('/')).collect();
    cmd.extend(relative.iter().copied());
    let exec = start(docker, container, cmd, false).await?;
    let StartExecResults::Attached { mut output, .. } = exec.1 else {
        anyhow::bail!("the archive exec started detached");
    };
    let mut stderr = Vec::new();
    while let Some(chunk) = output.next().await {
        match chunk.map_err(SandboxError::from)? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let size = out.written() + message.len() as u64;
                if size > max {
                    return Err(SandboxError::FileTooLarge {
                        path: PATHS.join(", "),
                        size,
                        max,
                    }
                    .into());
                }
                out.write(message).await?;
            }
            LogOutput::StdErr { message } if stderr.len() < 4096 => {
                stderr.extend_from_slice(&message)
            }
            _ => {}
        }
    }
    finished(docker, &exec.0, "tar -c", &stderr).await?;
    let bytes = out.written();
    let layer = layer::take(docker, container, PATHS, out, bytes + max_layer).await?;
    Ok(BoxSaved {
        paths: PATHS.iter().map(|p| p.to_string()).collect(),
        bytes,
        layer: Some(layer),
    })
}

/// Extracts a whole-box archive into a fresh sandbox, then the layer's changes after it.
pub(crate) async fn put_back(
    docker: &Docker,
    container: &Container,
    saved: Option<&BoxSaved>,
    blob: BlobStream,
) -> anyhow::Result<()> {
    let mut blob = Parts::new(blob);
    // Checkpoints from before `bytes` was the archive's own length are the archive alone.
    let layer = saved.and_then(|s| s.layer.as_ref().map(|l| (s.bytes, l)));
    let archive_bytes = layer.map_or(u64::MAX, |(bytes, _)| bytes);
    let cmd = vec!["tar", "-x", "-f", "-", "-C", "/", "--no-overwrite-dir"];
    let exec = start(docker, container, cmd, true).await?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = exec.1
    else {
        anyhow::bail!("the extract exec started detached");
    };
    let feed = async {
        let mut left = archive_bytes;
        while let Some(chunk) = blob.next(left).await? {
            left -= chunk.len() as u64;
            let chunk: Bytes = chunk;
            input.write_all(&chunk).await?;
            if left == 0 {
                break;
            }
        }
        input.flush().await?;
        input.shutdown().await?;
        anyhow::Ok(())
    };
    let drain = async {
        let mut stderr = Vec::new();
        while let Some(chunk) = output.next().await {
            if let Ok(LogOutput::StdErr { message }) = chunk {
                if stderr.len() < 4096 {
                    stderr.extend_from_slice(&message);
                }
            }
        }
        stderr
    };
    let (fed, stderr) = tokio::join!(feed, drain);
    fed?;
    finished(docker, &exec.0, "tar -x", &stderr).await?;
    if let Some((_, layer)) = layer {
        layer::put_back(docker, container, layer, &mut blob).await?;
    }
    Ok(())
}

async fn start(
    docker: &Docker,
    container: &Container,
    cmd: Vec<&str>,
    stdin: bool,
) -> Result<(String, StartExecResults), SandboxError> {
    let exec = docker
        .create_exec(
            &container.name,
            CreateExecOptions {
                cmd: Some(cmd),
                user: Some(SANDBOX_USER),
                working_dir: Some("/"),
                attach_stdin: Some(stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let options = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: Some(1024 * 1024),
    };
    let started = docker.start_exec(&exec.id, Some(options)).await?;
    Ok((exec.id, started))
}

/// GNU tar exits 1 when a file changed while it was read: still a usable archive.
async fn finished(docker: &Docker, exec: &str, what: &str, stderr: &[u8]) -> anyhow::Result<()> {
    let status = docker
        .inspect_exec(exec)
        .await
        .map_err(SandboxError::from)?
        .exit_code
        .unwrap_or(-1);
    anyhow::ensure!(
        (0..=1).contains(&status),
        "`{what}` exited with {status}: {}",
        String::from_utf8_lossy(stderr).trim()
    );
    Ok(())
}
