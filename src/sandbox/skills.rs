//! Skills in a sandbox: folders under /mnt/skills, a tmpfs every sandbox has, owned by root
//! (mode 0755) with root-owned files, so the sandbox user can read and run them but not change
//! them. They are written when a session takes its sandbox, before anything runs in it.
//!
//! Speed: each bundle waits on the host as a ready tar ([`SkillCache`], one file per skill
//! version), and every warm sandbox already has a root `tar -x` waiting on its stdin
//! ([`Installer`], started beside the driver when the sandbox is launched): mounting is one
//! stream of the tars, with no exec to start and nothing to unpack on the host.

use std::collections::HashSet;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::container::Container;
use super::SandboxError;

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
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.tar"))
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

    /// Keeps `tar` as the bundle `key` (written aside, then renamed into place).
    pub fn put(&self, key: &str, tar: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(key);
        let draft = path.with_extension(format!("tar.{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&draft, tar)?;
        std::fs::rename(&draft, &path)?;
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

/// Writes the bundles of `mounts` into the sandbox's /mnt/skills, with the sandbox's waiting
/// installer when it has one (else one started now).
pub(crate) async fn install(
    docker: &Docker,
    container: &Container,
    installer: Option<Installer>,
    cache: &SkillCache,
    mounts: &[SkillMount],
) -> Result<(), SandboxError> {
    let started = std::time::Instant::now();
    let mut tar = Vec::new();
    for mount in mounts {
        tar.extend_from_slice(&cache.read(&mount.key).await?);
    }
    let installer = match installer {
        Some(installer) => installer,
        None => Installer::start(docker, container).await?,
    };
    installer.install(docker, &tar).await?;
    tracing::debug!(
        skills = mounts.len(),
        bytes = tar.len(),
        ms = started.elapsed().as_millis() as u64,
        "mounted skills"
    );
    Ok(())
}
