//! Skills in a sandbox: folders under /mnt/skills, read-only to the sandbox user, written when
//! a session takes its sandbox, before anything runs in it.
//!
//! Each bundle waits on the host, unpacked and as a tar ([`SkillCache`], one per skill
//! version). Two ways in, chosen at start:
//! - the Docker engine sees this host's files (it runs here; checked by [`probe_host_dir`]):
//!   every sandbox bind-mounts a directory of its own, read-only, at /mnt/skills, and mounting a
//!   skill hard-links the unpacked bundle's files into it: no bytes are copied, whatever the size;
//! - otherwise (an engine elsewhere): /mnt/skills is a root-owned tmpfs, and every warm sandbox
//!   already has a root `tar -x` waiting on its stdin ([`Installer`], started beside the driver),
//!   which the tars are streamed to. Root owns the files, so the sandbox user cannot change them.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::container::Container;
use super::{SandboxConfig, SandboxError};

/// Where skills are mounted, one folder each.
pub const SKILLS_DIR: &str = "/mnt/skills";
/// The tmpfs's size: a bound on the skills of one container.
pub(crate) const SKILLS_TMPFS_MB: u64 = 512;

/// A skill to mount: the folder's name under /mnt/skills and its bundle's cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillMount {
    pub dir: String,
    pub key: String,
}

/// Bundles as tars on the host, by key (immutable: a key's bytes never change).
pub struct SkillCache {
    dir: PathBuf,
    known: Mutex<HashSet<String>>,
}

impl SkillCache {
    pub fn new(dir: PathBuf) -> SkillCache {
        SkillCache {
            dir,
            known: Mutex::new(HashSet::new()),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.tar", safe(key)))
    }

    /// The unpacked bundle: `<its folder's name>/...`.
    fn unpacked(&self, key: &str) -> PathBuf {
        self.dir.join(safe(key))
    }

    pub fn has(&self, key: &str) -> bool {
        if self.known.lock().is_ok_and(|k| k.contains(key)) {
            return true;
        }
        let there = self.path(key).is_file();
        if there {
            if let Ok(mut known) = self.known.lock() {
                known.insert(key.to_owned());
            }
        }
        there
    }

    /// Keeps `tar` as the bundle `key`, unpacked beside it (each written aside, then renamed
    /// into place: the tar last, as the mark of a complete entry).
    pub fn put(&self, key: &str, tar: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let draft = uuid::Uuid::new_v4().simple().to_string();
        let unpacked = self.unpacked(key);
        if !unpacked.is_dir() {
            let dir = self.dir.join(format!(".{draft}"));
            tar::Archive::new(tar).unpack(&dir)?;
            if let Err(e) = std::fs::rename(&dir, &unpacked) {
                let _ = std::fs::remove_dir_all(&dir);
                if !unpacked.is_dir() {
                    return Err(e);
                }
            }
        }
        let path = self.path(key);
        let file = self.dir.join(format!(".{draft}.tar"));
        std::fs::write(&file, tar)?;
        std::fs::rename(&file, &path)?;
        if let Ok(mut known) = self.known.lock() {
            known.insert(key.to_owned());
        }
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, SandboxError> {
        tokio::fs::read(self.path(key)).await.map_err(|e| {
            SandboxError::Unavailable(format!("skill bundle {key} is not on this host: {e}"))
        })
    }
}

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A root `tar -x` into /mnt/skills waiting for its archive on stdin.
pub(crate) struct Installer {
    exec: String,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: Output,
}

impl Installer {
    pub async fn start(docker: &Docker, container: &Container) -> Result<Installer, SandboxError> {
        let exec = docker
            .create_exec(
                &container.name,
                CreateExecOptions {
                    // -i: the bundles' tars follow one another, each with its end marker.
                    cmd: Some(vec!["tar", "-x", "-i", "-C", SKILLS_DIR, "-f", "-"]),
                    user: Some("0:0"),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let options = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let StartExecResults::Attached { output, input } =
            docker.start_exec(&exec.id, Some(options)).await?
        else {
            return Err(SandboxError::Protocol("exec started detached".into()));
        };
        Ok(Installer {
            exec: exec.id,
            input,
            output,
        })
    }

    /// Streams `tar` in and waits for the extraction to finish.
    async fn install(mut self, docker: &Docker, tar: &[u8]) -> Result<(), SandboxError> {
        let feed = async {
            self.input.write_all(tar).await?;
            self.input.flush().await?;
            self.input.shutdown().await
        };
        let output = &mut self.output;
        let collect = async {
            let mut stderr = Vec::new();
            while let Some(chunk) = output.next().await {
                if let LogOutput::StdErr { message } = chunk? {
                    if stderr.len() < 4096 {
                        stderr.extend_from_slice(&message);
                    }
                }
            }
            Ok::<_, SandboxError>(stderr)
        };
        let (fed, stderr) = tokio::join!(feed, collect);
        let stderr = stderr?;
        fed.map_err(|e| SandboxError::Protocol(format!("writing skills into the sandbox: {e}")))?;
        let status = docker
            .inspect_exec(&self.exec)
            .await?
            .exit_code
            .unwrap_or(-1);
        if status != 0 {
            return Err(SandboxError::Protocol(format!(
                "mounting skills failed ({status}): {}",
                String::from_utf8_lossy(&stderr).trim()
            )));
        }
        Ok(())
    }
}

/// Writes the bundles of `mounts` into the sandbox's /mnt/skills: hard links into its own
/// host directory when it has one (`host_dir`), else the tars to its waiting installer (or one
/// started now).
pub(crate) async fn install(
    docker: &Docker,
    container: &Container,
    installer: Option<Installer>,
    cache: &SkillCache,
    host_dir: Option<&Path>,
    mounts: &[SkillMount],
) -> Result<(), SandboxError> {
    let started = std::time::Instant::now();
    if host_dir.is_some() {
        let target = sandbox_dir(&container.name);
        let sources: Vec<(PathBuf, PathBuf)> = mounts
            .iter()
            .map(|m| (cache.unpacked(&m.key).join(&m.dir), target.join(&m.dir)))
            .collect();
        tokio::task::spawn_blocking(move || {
            sources
                .iter()
                .try_for_each(|(from, to)| link_tree(from, to))
        })
        .await
        .map_err(|e| SandboxError::Unavailable(format!("mounting skills: {e}")))?
        .map_err(|e| SandboxError::Unavailable(format!("mounting skills: {e}")))?;
    } else {
        let mut tar = Vec::new();
        for mount in mounts {
            tar.extend_from_slice(&cache.read(&mount.key).await?);
        }
        let installer = match installer {
            Some(installer) => installer,
            None => Installer::start(docker, container).await?,
        };
        installer.install(docker, &tar).await?;
    }
    tracing::debug!(
        skills = mounts.len(),
        linked = host_dir.is_some(),
        ms = started.elapsed().as_millis() as u64,
        "mounted skills"
    );
    Ok(())
}

/// Hard-links the files of `from` into `to`, directories made as needed (copied where the two
/// are on different filesystems).
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            link_tree(&source, &target)?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

fn safe(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where this host keeps skills: `bundles/` (the cache) and `sandboxes/<container>/` (each
/// sandbox's /mnt/skills, when bind-mounted). Bundle keys are unique ids, so one directory
/// serves every instance on the host.
pub fn host_root() -> PathBuf {
    std::env::temp_dir().join("assistd-skills")
}

fn sandbox_dir(container: &str) -> PathBuf {
    host_root().join("sandboxes").join(safe(container))
}

/// The sandbox's mounts, with its /mnt/skills bind mount when the engine sees this host's
/// files (its directory made now).
pub(crate) fn with_mount(
    cfg: &SandboxConfig,
    container: &str,
    mut mounts: Vec<Mount>,
) -> Result<Vec<Mount>, SandboxError> {
    if cfg.skills_host_dir.is_some() {
        let dir = sandbox_dir(container);
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::Unavailable(format!("making {}: {e}", dir.display())))?;
        mounts.push(Mount {
            target: Some(SKILLS_DIR.into()),
            source: Some(dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// The sandbox's tmpfs mounts, with a root-owned /mnt/skills unless it is bind-mounted.
pub(crate) fn with_tmpfs(
    cfg: &SandboxConfig,
    mut tmpfs: HashMap<String, String>,
) -> HashMap<String, String> {
    if cfg.skills_host_dir.is_none() {
        tmpfs.insert(
            SKILLS_DIR.to_string(),
            format!("rw,exec,nosuid,nodev,size={SKILLS_TMPFS_MB}m,mode=0755"),
        );
    }
    tmpfs
}

/// Forgets a removed sandbox's skill directory (if it had one).
pub(crate) async fn remove_host_dir(container: &str) {
    let dir = sandbox_dir(container);
    if tokio::fs::metadata(&dir).await.is_ok() {
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(dir = %dir.display(), error = %e, "removing a sandbox's skill directory");
        }
    }
}

/// Whether the Docker engine sees this host's skill directory at the same path: a container
/// created (never started) with it bind-mounted must show a marker file written here. Some
/// with the directory if so; None (skills are then streamed in) if not.
pub(crate) async fn probe_host_dir(
    docker: &Docker,
    cfg: &SandboxConfig,
    labels: &HashMap<String, String>,
) -> Option<PathBuf> {
    let root = host_root().join("sandboxes");
    let marker = format!("probe-{}", uuid::Uuid::new_v4().simple());
    if std::fs::create_dir_all(&root).is_err()
        || std::fs::write(root.join(&marker), &marker).is_err()
    {
        return None;
    }
    let name = format!("assistd-skills-{marker}");
    let body = ContainerCreateBody {
        image: Some(cfg.image.clone()),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels.clone()),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(vec![Mount {
                target: Some("/probe".into()),
                source: Some(root.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let seen = match docker.create_container(Some(options), body).await {
        Ok(_) => {
            let options = DownloadFromContainerOptionsBuilder::default()
                .path(&format!("/probe/{marker}"))
                .build();
            let mut stream = docker.download_from_container(&name, Some(options));
            let mut tarball = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                tarball.extend_from_slice(&chunk);
            }
            let remove = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = docker.remove_container(&name, Some(remove)).await;
            tarball
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        }
        Err(e) => {
            tracing::debug!(error = %e, "the engine cannot bind-mount the skill directory");
            false
        }
    };
    let _ = std::fs::remove_file(root.join(&marker));
    tracing::info!(
        bind_mounted = seen,
        "skills reach sandboxes by {}",
        if seen { "bind mount" } else { "stream" }
    );
    seen.then(host_root)
}
