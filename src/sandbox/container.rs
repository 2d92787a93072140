//! One sandbox container: creating it locked down, removing it, files in and out, signals.

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, HostConfig, HostConfigLogConfig, Mount, MountType,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    TopOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::writable::{self, Kind, LABEL_BOX};
use super::{SandboxConfig, SandboxError};

/// Where user files live inside the container.
pub(crate) const DATA_DIR: &str = "/mnt/data";
/// The session's data volume again, where E2B's SDKs work (see `commands.rs`).
pub(crate) const HOME_DIR: &str = super::commands::HOME_DIR;
/// The unprivileged user that runs the driver and therefore all user code.
pub(crate) const SANDBOX_USER: &str = "10001:10001";
/// The container's main process (under docker-init, which reaps orphans): a guardian that
/// idles until signalled, then acts on the sandbox user's processes from inside. Signals
/// reach it through the daemon (`docker kill -s`), with no exec: an exec has to start a new
/// process in a cgroup a fork bomb keeps full and busy, which took tens of seconds.
///   SIGUSR1: kill every process of the user (before a driver restart);
///   SIGUSR2: kill the user's processes except exec roots, i.e. except the driver: what a cell
///            left running. Exec'd processes are the only ones whose parent is outside the
///            container (PPid 0), which user code cannot arrange;
///   SIGINT:  interrupt the driver (a cancelled execution).
/// `kill -STOP -1` first freezes them all in one system call, so a fork bomb cannot outrun
/// the sweep. Only root may signal another user's processes, so the guardian runs as root
/// with CAP_KILL alone; the user's processes get no capabilities (no-new-privileges).
const GUARDIAN: &str = r#"
import os, signal
def user_processes():
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            if int(status["Uid"].split()[0]) == 10001 and status["State"].split()[0] != "Z":
                yield int(name), int(status["PPid"])
        except (OSError, KeyError, ValueError, IndexError):
            pass
def signal_all(sig):
    try:
        os.kill(-1, sig)
    except OSError:
        pass
def sweep(keep_exec_roots):
    signal_all(signal.SIGSTOP)
    for _ in range(100):
        victims = [p for p, ppid in user_processes() if not (keep_exec_roots and ppid == 0)]
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    signal_all(signal.SIGCONT)
def interrupt():
    for pid, ppid in user_processes():
        if ppid == 0:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass
def guarded(action):
    def handler(*_):
        try:
            action()
        except Exception:
            pass
    return handler
signal.signal(signal.SIGUSR1, guarded(lambda: sweep(False)))
signal.signal(signal.SIGUSR2, guarded(lambda: sweep(True)))
signal.signal(signal.SIGINT, guarded(interrupt))
while True:
    signal.pause()
"#;

/// How long a guardian sweep may take before the sandbox is given up.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(15);

const LABEL_MANAGED: &str = "assistd.managed";

/// A started sandbox container and its /mnt/data volume (both share one name).
#[derive(Debug)]
pub(crate) struct Container {
    pub name: String,
}

impl Container {
    /// Creates the /mnt/data volume and a locked-down container using it, and starts it;
    /// both carry `labels` (the owner's, see `owner.rs`). A [`Kind::Box`] gets a writable root
    /// filesystem and /workspace (see `writable.rs`).
    pub async fn create(
        docker: &Docker,
        cfg: &SandboxConfig,
        labels: &HashMap<String, String>,
        kind: Kind,
    ) -> Result<Container, SandboxError> {
        let name = format!(
            "assistd-{}-{}",
            name_safe(&cfg.instance),
            uuid::Uuid::new_v4().simple()
        );
        let mut labels = labels.clone();
        if kind == Kind::Box {
            labels.insert(LABEL_BOX.into(), "true".into());
        }

        // A tmpfs-backed named volume rather than a tmpfs mount: with a read-only rootfs the
        // archive API cannot see into a tmpfs mount (moby#22020), but it can into a volume.
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                driver: Some("local".into()),
                driver_opts: Some(HashMap::from([
                    ("type".to_string(), "tmpfs".to_string()),
                    ("device".to_string(), "tmpfs".to_string()),
                    (
                        "o".to_string(),
                        format!(
                            "size={}m,uid=10001,gid=10001,mode=0755,nosuid,nodev",
                            cfg.data_size_mb
                        ),
                    ),
                ])),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await?;

        let container = Container { name };
        if let Err(e) = container.create_and_start(docker, cfg, labels, kind).await {
            container.remove(docker).await;
            return Err(e);
        }
        Ok(container)
    }

    async fn create_and_start(
        &self,
        docker: &Docker,
        cfg: &SandboxConfig,
        labels: HashMap<String, String>,
        kind: Kind,
    ) -> Result<(), SandboxError> {
        let memory = (cfg.memory_mb * 1024 * 1024) as i64;
        let host_config = HostConfig {
            // docker-init as pid 1 reaps the orphans user code leaves behind.
            init: Some(true),
            readonly_rootfs: Some(kind == Kind::Interpreter),
            // The same volume at /home/user too: the working directory E2B's SDKs expect, its
            // files the session's (checkpointed, listed as a container's) like /mnt/data.
            mounts: Some(super::skills::with_mount(
                cfg,
                &self.name,
                [DATA_DIR, HOME_DIR]
                    .map(|target| Mount {
                        target: Some(target.into()),
                        source: Some(self.name.clone()),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    })
                    .to_vec(),
            )?),
            tmpfs: Some(super::skills::with_tmpfs(
                cfg,
                HashMap::from([(
                    "/tmp".to_string(),
                    // exec stays allowed so `pip install --user` (HOME=/tmp) works where networking is on.
                    format!("rw,exec,nosuid,nodev,size={}m,mode=1777", cfg.tmp_size_mb),
                )]),
            )),
            cap_drop: Some(vec!["ALL".into()]),
            // For the guardian only (see GUARDIAN); exec'd user processes get none.
            cap_add: Some(vec!["KILL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(cfg.pids_limit),
            memory: Some(memory),
            // Equal to memory: no swap on top of the limit.
            memory_swap: Some(memory),
            nano_cpus: Some((cfg.cpus * 1e9) as i64),
            network_mode: Some(if cfg.proxied() {
                "none".into()
            } else {
                cfg.network.clone()
            }),
            // Behind the proxy: the directory of this sandbox's socket only (see `egress`).
            binds: cfg.proxied().then(|| {
                let dir = std::path::Path::new(&cfg.egress_dir).join(&self.name);
                vec![format!("{}:{}:ro", dir.display(), super::egress::MOUNT)]
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            runtime: cfg.runtime.clone(),
            ..Default::default()
        };
        if cfg.proxied() {
            // Made here (owned by this process's user) rather than by Docker for the bind
            // mount (owned by root), so the proxy can put the socket in it.
            let dir = std::path::Path::new(&cfg.egress_dir).join(&self.name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| SandboxError::Unavailable(format!("egress socket directory: {e}")))?;
            super::egress::provide_trust(&dir)
                .map_err(|e| SandboxError::Unavailable(format!("egress trust files: {e}")))?;
        }
        let mut env: Vec<String> = [
            "HOME=/tmp",
            "MPLCONFIGDIR=/tmp/mpl",
            "MPLBACKEND=Agg",
            "PYTHONUNBUFFERED=1",
        ]
        .map(String::from)
        .to_vec();
        let mut guardian = GUARDIAN.to_string();
        if cfg.proxied() {
            env.extend(super::egress::proxy_env());
            guardian = format!("{}\n{GUARDIAN}", super::egress::RELAY);
        }
        let body = ContainerCreateBody {
            image: Some(cfg.image.clone()),
            cmd: Some(vec!["python3".into(), "-c".into(), guardian]),
            user: Some("0:0".into()),
            working_dir: Some(DATA_DIR.into()),
            hostname: Some("sandbox".into()),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&self.name)
            .build();
        docker.create_container(Some(options), body).await?;
        if kind == Kind::Box {
            writable::make_workspace(docker, &self.name).await?;
        }
        docker.start_container(&self.name, None).await?;
        Ok(())
    }

    /// Changes the running container's memory limit (no swap beyond it, as at creation).
    pub async fn set_memory_mb(&self, docker: &Docker, mb: u64) -> Result<(), SandboxError> {
        let memory = (mb * 1024 * 1024) as i64;
        let update = ContainerUpdateBody {
            memory: Some(memory),
            memory_swap: Some(memory),
            ..Default::default()
        };
        docker.update_container(&self.name, update).await?;
        Ok(())
    }

    /// Removes the container and its volume; failures are logged, not returned, because the
    /// orphan sweep at the next start catches whatever is left.
    pub async fn remove(&self, docker: &Docker) {
        remove_by_name(docker, &self.name).await;
    }

    /// Kills every process of the sandbox user: the driver, whatever it started, a fork bomb.
    pub async fn kill_user_processes(&self, docker: &Docker) -> Result<(), SandboxError> {
        self.sweep(docker, "SIGUSR1", 0).await
    }

    /// Kills what a cell left running, sparing the driver.
    pub async fn kill_leftovers(&self, docker: &Docker) -> Result<(), SandboxError> {
        self.sweep(docker, "SIGUSR2", 1).await
    }

    /// Interrupts the code the driver is running (KeyboardInterrupt).
    pub async fn interrupt(&self, docker: &Docker) -> Result<(), SandboxError> {
        self.signal_guardian(docker, "SIGINT").await
    }

    async fn signal_guardian(&self, docker: &Docker, signal: &str) -> Result<(), SandboxError> {
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        docker.kill_container(&self.name, Some(options)).await?;
        Ok(())
    }

    /// Signals the guardian, then waits until at most `survivors` user processes are left.
    async fn sweep(
        &self,
        docker: &Docker,
        signal: &str,
        survivors: usize,
    ) -> Result<(), SandboxError> {
        self.signal_guardian(docker, signal).await?;
        let deadline = tokio::time::Instant::now() + SWEEP_TIMEOUT;
        loop {
            match self.user_process_count(docker).await {
                Ok(count) if count <= survivors => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    // A runtime whose processes the daemon cannot list: give the guardian a
                    // moment and trust it.
                    tracing::debug!(container = %self.name, error = %e, "cannot list sandbox processes");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SandboxError::Unavailable(
                    "processes in the sandbox could not be stopped".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many live processes the sandbox user has, asked of the daemon (which runs `ps` on
    /// its side: much cheaper than an exec in the container).
    pub async fn user_process_count(&self, docker: &Docker) -> Result<usize, SandboxError> {
        let options = TopOptionsBuilder::default()
            .ps_args("-o uid,pid,stat")
            .build();
        let top = docker.top_processes(&self.name, Some(options)).await?;
        let titles = top.titles.unwrap_or_default();
        let column = |name: &str| titles.iter().position(|t| t == name);
        let (Some(uid), Some(stat)) = (column("UID"), column("STAT")) else {
            return Err(SandboxError::Protocol(format!(
                "unexpected ps columns {titles:?}"
            )));
        };
        Ok(top
            .processes
            .unwrap_or_default()
            .iter()
            .filter(|row| row.get(uid).is_some_and(|u| u == "10001"))
            .filter(|row| row.get(stat).is_some_and(|s| !s.starts_with('Z')))
            .count())
    }

    /// Whether `path` exists; used to pick a free upload name.
    pub async fn exists(&self, docker: &Docker, path: &str) -> Result<bool, SandboxError> {
        Ok(self.stat(docker, path).await?.is_some())
    }

    /// Size of `path` if it is a regular file, or None if it is missing or something else.
    pub async fn regular_file_size(
        &self,
        docker: &Docker,
        path: &str,
    ) -> Result<Option<u64>, SandboxError> {
        // Go's os.FileMode type bits: dir, symlink, device, named pipe, socket, char device,
        // irregular.
        const GO_MODE_TYPE: u32 =
            (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
        Ok(self
            .stat(docker, path)
            .await?
            .filter(|(_, mode)| mode & GO_MODE_TYPE == 0)
            .map(|(size, _)| size))
    }

    async fn stat(&self, docker: &Docker, path: &str) -> Result<Option<(u64, u32)>, SandboxError> {
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(path)
            .build();
        match docker
            .get_container_archive_info(&self.name, Some(options))
            .await
        {
            Ok(stat) => Ok(Some((
                u64::try_from(stat.size).unwrap_or(0),
                stat.file_mode,
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one file into /mnt/data, owned by the sandbox user.
    pub async fn put(&self, docker: &Docker, name: &str, bytes: &[u8]) -> Result<(), SandboxError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(10001);
        header.set_gid(10001);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let mut archive = tar::Builder::new(Vec::with_capacity(bytes.len() + 2048));
        archive
            .append_data(&mut header, name, bytes)
            .map_err(|e| SandboxError::InvalidPath(format!("{name}: {e}")))?;
        let tarball = archive
            .into_inner()
            .map_err(|e| SandboxError::Protocol(format!("building upload archive: {e}")))?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(DATA_DIR)
            .build();
        docker
            .upload_to_container(
                &self.name,
                Some(options),
                bollard::body_full(tarball.into()),
            )
            .await?;
        Ok(())
    }

    /// Reads a regular file of at most `max_bytes`; None if it is missing or not a file.
    pub async fn get(
        &self,
        docker: &Docker,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, SandboxError> {
        let Some(size) = self.regular_file_size(docker, path).await? else {
            return Ok(None);
        };
        if size > max_bytes {
            return Err(SandboxError::FileTooLarge {
                path: path.into(),
                size,
                max: max_bytes,
            });
        }
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = docker.download_from_container(&self.name, Some(options));
        // The tar around one file adds headers and padding; anything much beyond means the
        // file grew meanwhile, and is cut off rather than buffered without bound.
        let limit = max_bytes.saturating_add(64 * 1024) as usize;
        let mut tarball = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if tarball.len() + chunk.len() > limit {
                return Err(SandboxError::FileTooLarge {
                    path: path.into(),
                    size: (tarball.len() + chunk.len()) as u64,
                    max: max_bytes,
                });
            }
            tarball.extend_from_slice(&chunk);
        }
        first_regular_file(&tarball, max_bytes)
            .map_err(|e| SandboxError::Protocol(format!("reading archive of {path}: {e}")))
    }
}

impl Container {
    /// A directory's contents as a tar stream (entries `./...`), as the archive API sends it.
    pub fn archive_of(
        &self,
        docker: &Docker,
        dir: &str,
    ) -> impl futures::Stream<Item = Result<bytes::Bytes, bollard::errors::Error>> {
        // `dir/.`: the directory's contents, so the archive extracts into `dir` again as is.
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(&format!("{}/.", dir.trim_end_matches('/')))
            .build();
        docker.download_from_container(&self.name, Some(options))
    }

    /// Extracts a tar stream into `dir` (owners as the archive says).
    pub async fn extract_into(
        &self,
        docker: &Docker,
        dir: &str,
        tar: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    ) -> Result<(), SandboxError> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        docker
            .upload_to_container(&self.name, Some(options), bollard::body_try_stream(tar))
            .await?;
        Ok(())
    }
}

impl Container {
    /// Runs `cmd` as the sandbox user with `stdin` piped in (then closed), and returns its
    /// stdout (a checkpoint removes its pickle this way when the driver is gone). Fails on an exit status above
    /// `ok_status` (GNU tar exits 1 when a file changed while it was read) or more than
    /// `max_stdout` bytes of output.
    pub async fn exec_piped(
        &self,
        docker: &Docker,
        cmd: &[&str],
        stdin: Option<&[u8]>,
        max_stdout: usize,
        ok_status: i64,
    ) -> Result<Vec<u8>, SandboxError> {
        let ran = exec_collect(
            docker,
            &self.name,
            Exec {
                cmd,
                stdin,
                max_stdout,
                user: SANDBOX_USER,
                working_dir: DATA_DIR,
            },
        )
        .await?;
        if ran.status > ok_status {
            return Err(SandboxError::Protocol(format!(
                "`{}` exited with {}: {}",
                cmd.join(" "),
                ran.status,
                String::from_utf8_lossy(&ran.stderr).trim()
            )));
        }
        if let Some(e) = ran.stdin_error {
            return Err(SandboxError::Protocol(format!(
                "writing to `{}`: {e}",
                cmd.join(" ")
            )));
        }
        Ok(ran.stdout)
    }
}

/// A command to run to its end in a container (see [`exec_collect`]).
pub(crate) struct Exec<'a> {
    pub cmd: &'a [&'a str],
    /// Piped in, then closed; None: no stdin at all.
    pub stdin: Option<&'a [u8]>,
    /// More stdout than this fails the run with [`SandboxError::FileTooLarge`].
    pub max_stdout: usize,
    /// `uid:gid` or a name.
    pub user: &'a str,
    pub working_dir: &'a str,
}

/// What [`exec_collect`] gathered.
pub(crate) struct Collected {
    pub status: i64,
    pub stdout: Vec<u8>,
    /// The first 4 KiB of stderr.
    pub stderr: Vec<u8>,
    /// Writing stdin failed (the command may have ended without reading it all).
    pub stdin_error: Option<std::io::Error>,
}

/// Runs a command to its end in container `name` (a `docker exec`), collecting its output.
pub(crate) async fn exec_collect(
    docker: &Docker,
    name: &str,
    exec: Exec<'_>,
) -> Result<Collected, SandboxError> {
    let Exec {
        cmd,
        stdin,
        max_stdout,
        user,
        working_dir,
    } = exec;
    let created = docker
        .create_exec(
            name,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                user: Some(user),
                working_dir: Some(working_dir),
                attach_stdin: Some(stdin.is_some()),
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
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = docker.start_exec(&created.id, Some(options)).await?
    else {
        return Err(SandboxError::Protocol("exec started detached".into()));
    };
    let feed = async {
        if let Some(bytes) = stdin {
            input.write_all(bytes).await?;
            input.flush().await?;
        }
        input.shutdown().await
    };
    let collect = async {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(chunk) = output.next().await {
            match chunk? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    if stdout.len() + message.len() > max_stdout {
                        return Err(SandboxError::FileTooLarge {
                            path: cmd.last().unwrap_or(&"").to_string(),
                            size: (stdout.len() + message.len()) as u64,
                            max: max_stdout as u64,
                        });
                    }
                    stdout.extend_from_slice(&message);
                }
                LogOutput::StdErr { message } if stderr.len() < 4096 => {
                    stderr.extend_from_slice(&message)
                }
                _ => {}
            }
        }
        Ok::<_, SandboxError>((stdout, stderr))
    };
    let (fed, collected) = tokio::join!(feed, collect);
    let (stdout, stderr) = collected?;
    let status = docker
        .inspect_exec(&created.id)
        .await?
        .exit_code
        .unwrap_or(-1);
    Ok(Collected {
        status,
        stdout,
        stderr,
        stdin_error: fed.err(),
    })
}

fn first_regular_file(tarball: &[u8], max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(tarball);
    let Some(entry) = archive.entries()?.next() else {
        return Ok(None);
    };
    let entry = entry?;
    if !entry.header().entry_type().is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    entry.take(max_bytes).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; the instance label may hold anything.
fn name_safe(instance: &str) -> String {
    instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub(crate) async fn remove_by_name(docker: &Docker, name: &str) {
    super::egress::detach(name);
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(name, Some(options)).await {
        if !is_not_found(&e) {
            tracing::warn!(container = name, error = %e, "removing sandbox container");
        }
    }
    super::skills::remove_host_dir(name).await;
    let options = RemoveVolumeOptionsBuilder::default().force(true).build();
    if let Err(e) = docker.remove_volume(name, Some(options)).await {
        if !is_not_found(&e) {
            tracing::warn!(volume = name, error = %e, "removing sandbox volume");
        }
    }
}

/// A sandbox container or volume on the engine, by name, with its labels.
pub(crate) struct Labelled {
    pub name: String,
    pub labels: HashMap<String, String>,
    /// A volume (whose container may never have been made), not a container.
    pub volume: bool,
}

/// Every assistd sandbox container, then every such volume without a container of its name.
pub(crate) async fn list_managed(docker: &Docker) -> Result<Vec<Labelled>, SandboxError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_MANAGED}=true")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut found: Vec<Labelled> = containers
        .into_iter()
        .filter_map(|c| {
            let name = c
                .names
                .as_ref()?
                .first()?
                .trim_start_matches('/')
                .to_string();
            Some(Labelled {
                name,
                labels: c.labels.unwrap_or_default(),
                volume: false,
            })
        })
        .collect();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    for volume in volumes.volumes.unwrap_or_default() {
        if !found.iter().any(|c| c.name == volume.name) {
            found.push(Labelled {
                name: volume.name,
                labels: volume.labels,
                volume: true,
            });
        }
    }
    Ok(found)
}

/// Removes every container and volume carrying label `key=value` (at shutdown: this
/// worker's, with whatever a cancelled launch left half-made). Returns how many containers.
pub(crate) async fn remove_labelled(
    docker: &Docker,
    key: &str,
    value: &str,
) -> Result<usize, SandboxError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_MANAGED}=true"), format!("{key}={value}")],
    )]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let names: Vec<String> = containers
        .iter()
        .filter_map(|c| c.names.as_ref()?.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    futures::future::join_all(names.iter().map(|n| remove_by_name(docker, n))).await;

    // Volumes whose container never got created.
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let options = RemoveVolumeOptionsBuilder::default().force(true).build();
    for volume in volumes.volumes.unwrap_or_default() {
        if let Err(e) = docker
            .remove_volume(&volume.name, Some(options.clone()))
            .await
        {
            if !is_not_found(&e) {
                tracing::warn!(volume = volume.name, error = %e, "removing sandbox volume");
            }
        }
    }
    Ok(names.len())
}
