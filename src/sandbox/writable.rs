//! The writable box: what an E2B sandbox is, beside the code-interpreter sandbox of the
//! OpenAI surfaces. Agent harnesses (OpenAI's Agents SDK, coding agents) treat an E2B sandbox
//! as a whole Linux machine: they create `/workspace`, install helper scripts, run commands as
//! `/bin/bash -l -c`. So a box's root filesystem is writable (the container's own layer),
//! with `/workspace` made for the sandbox user; everything else is hardened as for the code
//! interpreter (no capabilities for user code, no-new-privileges, the same memory, CPU and pid
//! limits and network policy).
//!
//! Docker's overlay2 on ext4 has no per-container disk quota (`--storage-opt size` needs xfs
//! with pquota), so a box's layer is measured every [`DISK_CHECK_EVERY`] (one `docker ps
//! --size` for all of this process's boxes); a box past `ASSISTD_SANDBOX_DISK_MB` has its
//! commands stopped (the Python process is spared). /home/user, /mnt/data and /tmp are
//! in-memory filesystems with sizes of their own.
//!
//! Users: commands run as the sandbox user (uid 10001) by default. E2B's `user: "root"` runs
//! them as uid 0 *without capabilities* (beyond the container's CAP_KILL, which the guardian
//! needs), under no-new-privileges: root may write the root filesystem (`pip install` into the
//! system, files under /etc and /usr), but not chown, mount, change users or bind low ports,
//! and `sudo` does not exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, UploadToContainerOptionsBuilder};
use bollard::Docker;
use tokio_util::sync::CancellationToken;

use super::commands::Processes;
use super::container::{exec_collect, Exec};
use super::SandboxError;

/// What a sandbox container is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The code interpreter of the OpenAI surfaces: a read-only root filesystem.
    Interpreter,
    /// An E2B sandbox: a writable root filesystem within the disk quota.
    Box,
}

/// The label that marks a box container (for the disk check).
pub(crate) const LABEL_BOX: &str = "assistd.box";
/// The agent harnesses' working directory, made in every box for the sandbox user.
pub const WORKSPACE_DIR: &str = "/workspace";
/// How often the boxes' disk use is measured.
pub(crate) const DISK_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Who a command or file operation runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecUser {
    /// The sandbox user, uid 10001 (E2B's `user`).
    #[default]
    Sandbox,
    /// uid 0 without capabilities (E2B's `root`, in a box only).
    Root,
}

impl ExecUser {
    /// E2B's user names: `user` (the default) and `root`.
    pub fn from_e2b(name: &str) -> Option<ExecUser> {
        match name {
            "" | "user" => Some(ExecUser::Sandbox),
            "root" => Some(ExecUser::Root),
            _ => None,
        }
    }

    /// Docker's `user` for an exec.
    pub(crate) fn docker_user(self) -> &'static str {
        match self {
            ExecUser::Sandbox => super::container::SANDBOX_USER,
            ExecUser::Root => "0:0",
        }
    }

    /// HOME and USER for a command.
    pub(crate) fn env(self) -> [String; 2] {
        match self {
            ExecUser::Sandbox => [
                format!("HOME={}", super::commands::HOME_DIR),
                "USER=user".into(),
            ],
            ExecUser::Root => ["HOME=/root".into(), "USER=root".into()],
        }
    }
}

/// Makes /workspace in a created (not yet started) box, owned by the sandbox user: the
/// daemon extracts the archive, so no capability is needed inside.
pub(crate) async fn make_workspace(docker: &Docker, container: &str) -> Result<(), SandboxError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_uid(10001);
    header.set_gid(10001);
    let mut archive = tar::Builder::new(Vec::new());
    archive
        .append_data(
            &mut header,
            WORKSPACE_DIR.trim_start_matches('/'),
            std::io::empty(),
        )
        .map_err(|e| SandboxError::Protocol(format!("building the workspace archive: {e}")))?;
    let tarball = archive
        .into_inner()
        .map_err(|e| SandboxError::Protocol(format!("building the workspace archive: {e}")))?;
    let options = UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(container, Some(options), bollard::body_full(tarball.into()))
        .await?;
    Ok(())
}

/// Every [`DISK_CHECK_EVERY`] until `stop`: the boxes carrying `worker`'s label whose layer
/// holds more than `disk_mb` get their commands stopped: the commands' own processes (killed
/// as root inside), then whatever they started (the guardian's SIGUSR2 sweep, which spares the
/// Python process).
pub(crate) async fn check_disks(
    docker: Docker,
    worker_label: (String, String),
    disk_mb: u64,
    processes: Arc<Processes>,
    stop: CancellationToken,
) {
    let limit = (disk_mb * 1024 * 1024) as i64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DISK_CHECK_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        match over_quota(&docker, &worker_label, limit).await {
            Ok(over) => {
                for (name, size) in over {
                    tracing::warn!(
                        container = name,
                        bytes = size,
                        limit,
                        "a sandbox is past its disk quota; stopping its commands"
                    );
                    let pids: Vec<String> = processes
                        .in_container(&name)
                        .iter()
                        .filter(|pid| **pid > 1)
                        .map(u32::to_string)
                        .collect();
                    if !pids.is_empty() {
                        let mut cmd = vec!["kill", "-s", "KILL", "--"];
                        cmd.extend(pids.iter().map(String::as_str));
                        let killed = exec_collect(
                            &docker,
                            &name,
                            Exec {
                                cmd: &cmd,
                                stdin: None,
                                max_stdout: 4096,
                                user: ExecUser::Root.docker_user(),
                                working_dir: "/",
                            },
                        )
                        .await;
                        if let Err(e) = killed {
                            tracing::warn!(container = name, error = %e, "stopping a box's commands");
                        }
                    }
                    let options = bollard::query_parameters::KillContainerOptionsBuilder::default()
                        .signal("SIGUSR2")
                        .build();
                    if let Err(e) = docker.kill_container(&name, Some(options)).await {
                        tracing::warn!(container = name, error = %e, "stopping a box's commands");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "measuring the boxes' disk use"),
        }
    }
}

/// This worker's boxes whose writable layer is larger than `limit` bytes, with their sizes.
async fn over_quota(
    docker: &Docker,
    (key, value): &(String, String),
    limit: i64,
) -> Result<Vec<(String, i64)>, SandboxError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_BOX}=true"), format!("{key}={value}")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .size(true)
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(options)).await?;
    Ok(containers
        .into_iter()
        .filter_map(|c| {
            let size = c.size_rw?;
            let name = c.names?.first()?.trim_start_matches('/').to_string();
            (size > limit).then_some((name, size))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2b_user_names_map_to_the_sandbox_user_or_capability_less_root() {
        assert_eq!(ExecUser::from_e2b("user"), Some(ExecUser::Sandbox));
        assert_eq!(ExecUser::from_e2b(""), Some(ExecUser::Sandbox));
        assert_eq!(ExecUser::from_e2b("root"), Some(ExecUser::Root));
        assert_eq!(ExecUser::from_e2b("admin"), None);
        assert_eq!(ExecUser::Root.docker_user(), "0:0");
    }
}
