//! Work in a session's container beside the driver: commands (a `docker exec` each, output
//! streamed as written, the exit code at the end, stdin and signals for ones still running)
//! and file operations at exact paths (a small Python helper run the same way). All of it
//! runs as the sandbox user (or, in an E2B sandbox's writable box, as capability-less root
//! when asked), so the container's own permissions decide what may be written: /home/user
//! (the session's data volume, the same files as /mnt/data), /mnt/data, /tmp and /workspace.

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::container::{exec_collect, Exec, SANDBOX_USER};
use super::manager::Held;
use super::writable::ExecUser;
use super::{SandboxError, SandboxManager};

/// The home directory E2B's SDKs expect: relative paths and commands start there.
pub const HOME_DIR: &str = "/home/user";

/// A command to start, as E2B's `process.Process/Start` gives it.
#[derive(Debug, Clone, Default)]
pub struct CommandSpec {
    pub cmd: String,
    pub args: Vec<String>,
    pub envs: HashMap<String, String>,
    pub cwd: Option<String>,
    /// Keep its stdin open for [`SandboxManager::send_input`].
    pub stdin: bool,
    /// Who runs it (root only in a writable box).
    pub user: ExecUser,
    /// Run it in a pseudo-terminal of this size: its output (stdout and stderr together, as
    /// the terminal shows them) arrives as [`CommandEvent::Pty`], its input is the keyboard.
    pub pty: Option<PtySize>,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtySize {
    pub rows: u16,
    pub cols: u16,
}

/// What a running command reports, in order: `Start` first, `End` last.
#[derive(Debug)]
pub enum CommandEvent {
    Start {
        pid: u32,
    },
    Stdout(Bytes),
    Stderr(Bytes),
    /// What a PTY process wrote to its terminal.
    Pty(Bytes),
    End {
        exit_code: i64,
    },
    /// The command could not be run (the sandbox failed, not the command).
    Failed(String),
}

type Stdin = std::pin::Pin<Box<dyn AsyncWrite + Send>>;
type SharedStdin = std::sync::Arc<tokio::sync::Mutex<Stdin>>;

/// Commands still running, by session and pid.
#[derive(Default)]
pub(crate) struct Processes {
    running: Mutex<HashMap<(String, u32), Process>>,
}

/// A running command: its exec (for a terminal's resize), its user (who may signal it) and
/// its stdin while open.
#[derive(Clone)]
struct Process {
    /// The container it runs in.
    container: String,
    exec: String,
    user: ExecUser,
    pty: bool,
    stdin: Option<SharedStdin>,
}

/// File operations, answered by [`FS_HELPER`] as one JSON object.
const FS_HELPER: &str = r#"
import json, os, shutil, stat, sys
def entry(path):
    st = os.lstat(path)
    kind = "FILE_TYPE_DIRECTORY" if stat.S_ISDIR(st.st_mode) else "FILE_TYPE_FILE"
    target = None
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                kind = "FILE_TYPE_DIRECTORY"
        except OSError:
            pass
    import pwd, grp, time
    def name(f, i):
        try:
            return f(i)[0]
        except KeyError:
            return str(i)
    out = {"name": os.path.basename(path) or "/", "type": kind, "path": path, "size": str(st.st_size),
           "mode": stat.S_IMODE(st.st_mode), "permissions": stat.filemode(st.st_mode),
           "owner": name(pwd.getpwuid, st.st_uid), "group": name(grp.getgrgid, st.st_gid),
           "modifiedTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.st_mtime)) + "Z"}
    if target is not None:
        out["symlinkTarget"] = target
    return out
def listing(path, depth):
    out = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        out.append(entry(full))
        if depth > 1 and os.path.isdir(full) and not os.path.islink(full):
            out.extend(listing(full, depth - 1))
    return out
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "stat":
        answer = {"entry": entry(path)}
    elif op == "list":
        if not os.path.isdir(path):
            os.lstat(path)
            raise NotADirectoryError(20, "not a directory", path)
        answer = {"entries": listing(path, max(1, int(sys.argv[3])))}
    elif op == "mkdir":
        if os.path.lexists(path):
            answer = {"error": "already_exists", "message": "path already exists: " + path}
        else:
            os.makedirs(path)
            answer = {"entry": entry(path)}
    elif op == "remove":
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        answer = {}
    elif op == "move":
        parent = os.path.dirname(sys.argv[3])
        if parent:
            os.makedirs(parent, exist_ok=True)
        os.rename(path, sys.argv[3])
        answer = {"entry": entry(sys.argv[3])}
    elif op == "write":
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        answer = {"entry": entry(path)}
    elif op == "read":
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > int(sys.argv[3]):
                answer = {"error": "too_large", "message": "file is larger than the limit: " + path}
            else:
                sys.stdout.buffer.write(b"\0")
                shutil.copyfileobj(f, sys.stdout.buffer)
                sys.exit(0)
    else:
        answer = {"error": "invalid_argument", "message": "unknown operation " + op}
except FileNotFoundError:
    answer = {"error": "not_found", "message": "no such file or directory: " + path}
except FileExistsError:
    answer = {"error": "already_exists", "message": "path already exists: " + path}
except NotADirectoryError:
    answer = {"error": "invalid_argument", "message": "not a directory: " + path}
except IsADirectoryError:
    answer = {"error": "invalid_argument", "message": "is a directory: " + path}
except PermissionError:
    answer = {"error": "permission_denied", "message": "permission denied: " + path + " (the sandbox user's writable places are /home/user, /workspace, /tmp and /mnt/data; an E2B sandbox's other paths need user root)"}
except OSError as exc:
    answer = {"error": "internal", "message": "%s: %s" % (exc.strerror or exc, path)}
sys.stdout.write(json.dumps(answer))
"#;

/// A file operation's failure, by the helper's `error` code (E2B's Connect codes:
/// `not_found`, `already_exists`, `permission_denied`, `invalid_argument`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct FsFailure {
    #[serde(rename = "error")]
    pub code: String,
    pub message: String,
}

/// The helper's answer: `Ok` with its JSON (`entry` / `entries`), or the failure.
pub type FsAnswer = Result<Value, FsFailure>;

/// A file operation.
#[derive(Debug, Clone)]
pub enum FsOp {
    Stat,
    List { depth: u32 },
    MakeDir,
    Remove,
    Move { to: String },
}

impl SandboxManager {
    /// Runs a file operation at `path` (absolute, already checked by the caller).
    pub async fn fs(&self, session: &str, path: &str, op: FsOp) -> Result<FsAnswer, SandboxError> {
        let held = self.hold(session).await?;
        let depth;
        let to;
        let args: Vec<&str> = match &op {
            FsOp::Stat => vec!["stat", path],
            FsOp::List { depth: d } => {
                depth = d.to_string();
                vec!["list", path, &depth]
            }
            FsOp::MakeDir => vec!["mkdir", path],
            FsOp::Remove => vec!["remove", path],
            FsOp::Move { to: dest } => {
                to = dest.clone();
                vec!["move", path, &to]
            }
        };
        let (_, stdout, stderr) = run_helper(&held, &args, None, 64 * 1024 * 1024).await?;
        parse_answer(&stdout, &stderr)
    }

    /// Writes `bytes` at `path` (parents created, an existing file replaced).
    pub async fn write_path(
        &self,
        session: &str,
        path: &str,
        bytes: &[u8],
    ) -> Result<FsAnswer, SandboxError> {
        let held = self.hold(session).await?;
        let (_, stdout, stderr) = run_helper(&held, &["write", path], Some(bytes), 1 << 20).await?;
        parse_answer(&stdout, &stderr)
    }

    /// The bytes of the file at `path`, at most `max_bytes`.
    pub async fn read_path(
        &self,
        session: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Result<Bytes, FsFailure>, SandboxError> {
        let held = self.hold(session).await?;
        let limit = max_bytes.to_string();
        let (_, stdout, stderr) = run_helper(
            &held,
            &["read", path, &limit],
            None,
            max_bytes as usize + 4096,
        )
        .await?;
        if stdout.first() == Some(&0) {
            return Ok(Ok(Bytes::from(stdout).slice(1..)));
        }
        Ok(parse_answer(&stdout, &stderr)?.map(|_| Bytes::new()))
    }

    /// Starts a command as `spec.user`; its events arrive on the receiver as they happen.
    /// The session counts as busy until the command ends.
    pub async fn start_command(
        &self,
        session: &str,
        spec: CommandSpec,
    ) -> Result<mpsc::Receiver<CommandEvent>, SandboxError> {
        let held = self.hold(session).await?;
        let cwd = spec.cwd.clone().unwrap_or_else(|| HOME_DIR.to_string());
        if spec.user == ExecUser::Root && !self.is_box(session) {
            return Err(SandboxError::InvalidPath(
                "commands run as root only in E2B sandboxes".into(),
            ));
        }
        let mut env: Vec<String> = spec.user.env().to_vec();
        if spec.pty.is_some() && !spec.envs.contains_key("TERM") {
            env.push("TERM=xterm-256color".into());
        }
        env.extend(spec.envs.iter().map(|(k, v)| format!("{k}={v}")));
        let pty = spec.pty;
        let keep_stdin = spec.stdin || pty.is_some();
        // The shell prints its pid (the command's, after exec) before anything else.
        let mut cmd = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "echo $$; exec \"$@\"".into(),
            "sh".into(),
            spec.cmd.clone(),
        ];
        cmd.extend(spec.args.iter().cloned());
        let exec = held
            .docker
            .create_exec(
                &held.container,
                CreateExecOptions {
                    cmd: Some(cmd),
                    user: Some(spec.user.docker_user().to_string()),
                    working_dir: Some(cwd),
                    env: Some(env),
                    attach_stdin: Some(keep_stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(pty.is_some()),
                    ..Default::default()
                },
            )
            .await?;
        let options = StartExecOptions {
            detach: false,
            tty: pty.is_some(),
            output_capacity: Some(256 * 1024),
        };
        let StartExecResults::Attached { output, input } =
            held.docker.start_exec(&exec.id, Some(options)).await?
        else {
            return Err(SandboxError::Protocol("exec started detached".into()));
        };
        if let Some(size) = pty {
            resize(&held.docker, &exec.id, size).await?;
        }
        let user = spec.user;
        let (tx, rx) = mpsc::channel(64);
        let processes = self.processes();
        let session = session.to_owned();
        tokio::spawn(async move {
            let mut output = output;
            let mut pid: Option<u32> = None;
            let mut head = Vec::new();
            let mut stdin = Some(input);
            while let Some(chunk) = output.next().await {
                let (stdout, message) = match chunk {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        (true, message)
                    }
                    Ok(LogOutput::StdErr { message }) => (false, message),
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        let _ = tx.send(CommandEvent::Failed(e.to_string())).await;
                        break;
                    }
                };
                let message = if stdout && pid.is_none() {
                    head.extend_from_slice(&message);
                    let Some(newline) = head.iter().position(|b| *b == b'\n') else {
                        continue;
                    };
                    let number = String::from_utf8_lossy(&head[..newline]).trim().parse();
                    let found = number.unwrap_or(0);
                    pid = Some(found);
                    let input = stdin.take().filter(|_| keep_stdin);
                    processes.insert(
                        &session,
                        found,
                        Process {
                            container: held.container.clone(),
                            exec: exec.id.clone(),
                            user,
                            pty: pty.is_some(),
                            stdin: input
                                .map(|i| std::sync::Arc::new(tokio::sync::Mutex::new(i as Stdin))),
                        },
                    );
                    if tx.send(CommandEvent::Start { pid: found }).await.is_err() {
                        break;
                    }
                    let rest = Bytes::copy_from_slice(&head[newline + 1..]);
                    head.clear();
                    if rest.is_empty() {
                        continue;
                    }
                    rest
                } else {
                    message
                };
                if pid.is_none() {
                    // Stderr before the pid line: the shell could not even start.
                    let _ = tx.send(CommandEvent::Start { pid: 0 }).await;
                    pid = Some(0);
                }
                let event = if pty.is_some() {
                    CommandEvent::Pty(message)
                } else if stdout {
                    CommandEvent::Stdout(message)
                } else {
                    CommandEvent::Stderr(message)
                };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
            if pid.is_none() {
                let _ = tx.send(CommandEvent::Start { pid: 0 }).await;
            }
            if let Some(pid) = pid {
                processes.remove(&session, pid);
            }
            let exit_code = match held.docker.inspect_exec(&exec.id).await {
                Ok(inspect) => inspect.exit_code.unwrap_or(-1),
                Err(_) => -1,
            };
            let _ = tx.send(CommandEvent::End { exit_code }).await;
            drop(held);
        });
        Ok(rx)
    }

    /// Sends `signal` (`SIGKILL`, `SIGTERM`, ...) to a process of the session.
    pub async fn signal_command(
        &self,
        session: &str,
        pid: u32,
        signal: &str,
    ) -> Result<bool, SandboxError> {
        let held = self.hold(session).await?;
        // As the user who started it: the sandbox user cannot signal root's processes.
        let user = self
            .processes()
            .get(session, pid)
            .map_or(ExecUser::Sandbox, |p| p.user);
        let pid = pid.to_string();
        let sig = signal.trim_start_matches("SIG");
        let (status, _, _) = run(
            &held,
            &["kill", "-s", sig, "--", &pid],
            None,
            4096,
            user.docker_user(),
        )
        .await?;
        Ok(status == 0)
    }

    /// Resizes the terminal of a PTY process; false when there is no such process.
    pub async fn resize_command(
        &self,
        session: &str,
        pid: u32,
        size: PtySize,
    ) -> Result<bool, SandboxError> {
        let Some(process) = self.processes().get(session, pid).filter(|p| p.pty) else {
            return Ok(false);
        };
        let held = self.hold(session).await?;
        resize(&held.docker, &process.exec, size).await?;
        Ok(true)
    }

    /// Writes to the stdin of a command started with `stdin`; false when there is none.
    pub async fn send_input(
        &self,
        session: &str,
        pid: u32,
        bytes: &[u8],
    ) -> Result<bool, SandboxError> {
        let Some(stdin) = self.processes().get(session, pid).and_then(|p| p.stdin) else {
            return Ok(false);
        };
        let mut stdin = stdin.lock().await;
        stdin
            .write_all(bytes)
            .await
            .map_err(|e| SandboxError::Protocol(format!("writing to stdin: {e}")))?;
        let _ = stdin.flush().await;
        Ok(true)
    }

    /// Closes the stdin of a command started with `stdin`; false when there is none.
    pub async fn close_input(&self, session: &str, pid: u32) -> bool {
        let Some(stdin) = self.processes().take_stdin(session, pid) else {
            return false;
        };
        let _ = stdin.lock().await.shutdown().await;
        true
    }
}

impl Processes {
    fn insert(&self, session: &str, pid: u32, process: Process) {
        if let Ok(mut map) = self.running.lock() {
            map.insert((session.to_owned(), pid), process);
        }
    }

    fn get(&self, session: &str, pid: u32) -> Option<Process> {
        self.running
            .lock()
            .ok()?
            .get(&(session.to_owned(), pid))
            .cloned()
    }

    /// Takes the process's stdin (closing it is up to the caller).
    fn take_stdin(&self, session: &str, pid: u32) -> Option<SharedStdin> {
        self.running
            .lock()
            .ok()?
            .get_mut(&(session.to_owned(), pid))?
            .stdin
            .take()
    }

    /// The pids of the commands running in `container`.
    pub(crate) fn in_container(&self, container: &str) -> Vec<u32> {
        self.running
            .lock()
            .map(|map| {
                map.iter()
                    .filter(|(_, p)| p.container == container)
                    .map(|((_, pid), _)| *pid)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn remove(&self, session: &str, pid: u32) {
        if let Ok(mut map) = self.running.lock() {
            map.remove(&(session.to_owned(), pid));
        }
    }
}

async fn resize(docker: &Docker, exec: &str, size: PtySize) -> Result<(), SandboxError> {
    let options = ResizeExecOptions {
        height: size.rows.max(1),
        width: size.cols.max(1),
    };
    docker.resize_exec(exec, options).await?;
    Ok(())
}

fn parse_answer(stdout: &[u8], stderr: &[u8]) -> Result<FsAnswer, SandboxError> {
    let value: Value = serde_json::from_slice(stdout).map_err(|_| {
        SandboxError::Protocol(format!(
            "the file helper failed: {}",
            String::from_utf8_lossy(&stderr[..stderr.len().min(500)]).trim()
        ))
    })?;
    if value.get("error").is_some() {
        let failure: FsFailure = serde_json::from_value(value)
            .map_err(|e| SandboxError::Protocol(format!("file helper answer: {e}")))?;
        return Ok(Err(failure));
    }
    Ok(Ok(value))
}

async fn run_helper(
    held: &Held,
    args: &[&str],
    stdin: Option<&[u8]>,
    max_stdout: usize,
) -> Result<(i64, Vec<u8>, Vec<u8>), SandboxError> {
    let mut cmd = vec!["python3", "-I", "-S", "-c", FS_HELPER];
    cmd.extend_from_slice(args);
    run(held, &cmd, stdin, max_stdout, SANDBOX_USER).await
}

/// Runs `cmd` to its end in `/home/user` with `stdin` piped in: (exit status, stdout,
/// stderr's first 4 KiB).
async fn run(
    held: &Held,
    cmd: &[&str],
    stdin: Option<&[u8]>,
    max_stdout: usize,
    user: &str,
) -> Result<(i64, Vec<u8>, Vec<u8>), SandboxError> {
    let ran = exec_collect(
        &held.docker,
        &held.container,
        Exec {
            cmd,
            stdin,
            max_stdout,
            user,
            working_dir: HOME_DIR,
        },
    )
    .await?;
    Ok((ran.status, ran.stdout, ran.stderr))
}
