//! The Python driver inside a sandbox (an IPython shell run in-process by the sandbox/driver package):
//! one long-lived attached `docker exec` speaking newline-delimited JSON (requests on its stdin,
//! replies on its stdout).
//!
//! Protocol (shared with sandbox/driver/): the driver first writes `{"type":"ready","pid":N}`;
//! each `{"type":"exec","id","code","timeout","max_output"}` is answered by one
//! `{"type":"result","id",...}`. The driver interrupts code that outlives `timeout` itself;
//! when it does not answer at all, the caller kills it and starts another.
//! `{"type":"checkpoint","id","path"}` pickles the namespace into a file and is answered by
//! `{"type":"checkpointed",...}` (as is `{..., "discard": true}`, which removes that file);
//! `{"type":"restore","id","path"}` loads one (and removes it), answered by
//! `{"type":"restored",...}` (see `checkpoint.rs`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use bytes::BytesMut;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::container::{Container, DATA_DIR, SANDBOX_USER};
use super::output::ChangedFile;
use super::SandboxError;

const DRIVER_CMD: [&str; 2] = ["python3", "/opt/assistd/driver"];
/// A reply carries at most max_output bytes of text plus a few capped PNGs; a line far
/// beyond that is a broken driver, not something to buffer.
const MAX_LINE: usize = 64 * 1024 * 1024;
/// How much of the driver's own stderr is kept to explain a failed start.
const STDERR_TAIL: usize = 4096;

#[derive(Serialize)]
struct ExecRequest<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    code: &'a str,
    timeout: f64,
    max_output: u64,
    /// Output is sent as written (`Incoming::Output`), not only in the result.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// `javascript` runs the code in the session's Node.js context; absent, Python.
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
}

/// Output of a streamed execution, as the driver sends it while the code runs: text written
/// to `stdout` / `stderr`, or a displayed MIME bundle (`result`; `main` for the value of the
/// cell's trailing expression). Bytes in a bundle (PNG, JPEG, PDF) are base64.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Streamed {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub bundle: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub main: bool,
}

/// An execution's limits: the time the driver gives the code, the output it keeps, and how
/// long the host waits for the reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_output: u64,
    pub wait: Duration,
}

/// Where a streamed execution's output goes.
pub type StreamSink = mpsc::UnboundedSender<Streamed>;

#[derive(Serialize)]
struct NamespaceRequest<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    discard: bool,
}

/// A variable a checkpoint does not carry, and why (the type name of what did not pickle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotKept {
    pub name: String,
    #[serde(rename = "type", default)]
    pub type_name: String,
    #[serde(default)]
    pub reason: String,
}

/// The driver's account of a namespace it pickled.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NamespaceSaved {
    #[serde(default, skip_serializing)]
    pub id: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub kept: Vec<String>,
    /// Variable name -> module name, re-imported at restore.
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    #[serde(default)]
    pub skipped: Vec<NotKept>,
}

/// The driver's account of a namespace it loaded.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct NamespaceRestored {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub restored: Vec<String>,
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    #[serde(default)]
    pub failed: Vec<NotKept>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    Ready {
        pid: u32,
    },
    Result(Box<Reply>),
    Output(Box<Streamed>),
    Checkpointed(Box<NamespaceSaved>),
    Restored(Box<NamespaceRestored>),
    /// The driver could not handle a request (a malformed one, or a bug of its own); it keeps
    /// serving.
    Error {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        message: String,
    },
    /// Messages a newer driver may add; ignored.
    #[serde(other)]
    Other,
}

/// The driver's answer to one execution, as sent.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Reply {
    pub id: String,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub output_truncated: bool,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub error: Option<ReplyError>,
    /// Base64 PNGs.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub files: Vec<ChangedFile>,
    /// Paths under /mnt/data the cell removed (a driver older than this field sends none).
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub timed_out: bool,
    /// Other live processes of the sandbox user after the cell.
    #[serde(default)]
    pub processes_left: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReplyError {
    #[serde(default)]
    pub ename: String,
    #[serde(default)]
    pub evalue: String,
    #[serde(default)]
    pub traceback: String,
}

/// Why an execution got no reply.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing came back in time: the code is stuck somewhere the driver cannot interrupt.
    NoAnswer,
    /// The driver's stream ended: it was killed (out of memory, or by the code itself).
    Died,
    /// The driver sent something unreadable.
    Protocol(String),
    /// The caller's cancellation token fired first.
    Cancelled,
}

type Message = Result<Incoming, String>;

/// A running driver and the stream attached to it. Dropping it closes the driver's stdin
/// (it then exits) and stops the reader task.
pub(crate) struct Driver {
    input: Pin<Box<dyn AsyncWrite + Send>>,
    messages: mpsc::Receiver<Message>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Driver {
    /// Starts the driver in `container` and waits until it reports ready (its IPython shell built;
    /// numpy, pandas and pyplot follow in the background while nobody uses it).
    pub async fn start(
        docker: &Docker,
        container: &Container,
        ready_timeout: Duration,
    ) -> Result<Driver, SandboxError> {
        let exec = docker
            .create_exec(
                &container.name,
                CreateExecOptions {
                    cmd: Some(DRIVER_CMD.to_vec()),
                    user: Some(SANDBOX_USER),
                    working_dir: Some(DATA_DIR),
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
            output_capacity: Some(256 * 1024),
        };
        let StartExecResults::Attached { output, input } =
            docker.start_exec(&exec.id, Some(options)).await?
        else {
            return Err(SandboxError::Protocol(
                "driver exec started detached".into(),
            ));
        };

        let (tx, mut messages) = mpsc::channel(16);
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let reader = tokio::spawn(read_messages(
            output,
            tx,
            stderr_tail.clone(),
            container.name.clone(),
        ));

        let ready = tokio::time::timeout(ready_timeout, async {
            loop {
                match messages.recv().await {
                    Some(Ok(Incoming::Ready { pid })) => return Ok(pid),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(SandboxError::Protocol(e)),
                    None => {
                        let tail = stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
                        return Err(SandboxError::Unavailable(format!(
                            "the sandbox driver exited while starting: {}",
                            tail.trim()
                        )));
                    }
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(pid)) => {
                tracing::debug!(container = %container.name, pid, "sandbox driver ready");
                Ok(Driver {
                    input,
                    messages,
                    reader,
                })
            }
            Ok(Err(e)) => {
                reader.abort();
                Err(e)
            }
            Err(_) => {
                reader.abort();
                Err(SandboxError::Unavailable(format!(
                    "the sandbox driver was not ready within {ready_timeout:?}"
                )))
            }
        }
    }

    /// Whether the driver's stream has ended (checked before handing a pooled sandbox out).
    pub fn is_alive(&self) -> bool {
        !self.reader.is_finished()
    }

    /// Sends one execution and waits up to `limits.wait` for its reply.
    pub async fn exec(
        &mut self,
        id: &str,
        code: &str,
        limits: Limits,
        cancel: &CancellationToken,
        sink: Option<&StreamSink>,
        language: Option<&str>,
    ) -> Result<Reply, Failure> {
        let Limits {
            timeout,
            max_output,
            wait,
        } = limits;
        let request = ExecRequest {
            kind: "exec",
            id,
            code,
            timeout: timeout.as_secs_f64(),
            max_output,
            stream: sink.is_some(),
            language,
        };
        let mut line =
            serde_json::to_vec(&request).map_err(|e| Failure::Protocol(e.to_string()))?;
        line.push(b'\n');
        if self.input.write_all(&line).await.is_err() || self.input.flush().await.is_err() {
            return Err(Failure::Died);
        }
        tokio::select! {
            reply = self.reply_streaming(id, wait, sink) => reply,
            _ = cancel.cancelled() => Err(Failure::Cancelled),
        }
    }

    /// Waits up to `wait` for the reply to execution `id`, skipping replies to earlier ones.
    pub async fn reply(&mut self, id: &str, wait: Duration) -> Result<Reply, Failure> {
        self.reply_streaming(id, wait, None).await
    }

    /// [`Driver::reply`], passing the execution's streamed output to `sink` meanwhile.
    async fn reply_streaming(
        &mut self,
        id: &str,
        wait: Duration,
        sink: Option<&StreamSink>,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .map_err(|_| Failure::NoAnswer)?;
            match message {
                None => return Err(Failure::Died),
                Some(Err(e)) => return Err(Failure::Protocol(e)),
                Some(Ok(Incoming::Result(reply))) if reply.id == id => return Ok(*reply),
                Some(Ok(Incoming::Output(output))) if output.id == id => {
                    if let Some(sink) = sink {
                        let _ = sink.send(*output);
                    }
                }
                Some(Ok(Incoming::Error {
                    id: for_id,
                    message,
                })) if for_id.as_deref().is_none_or(|for_id| for_id == id) => {
                    tracing::warn!(message, "sandbox driver reported an error");
                    return Ok(Reply {
                        id: id.to_owned(),
                        error: Some(ReplyError {
                            ename: "SandboxError".into(),
                            traceback: format!("SandboxError: {message}"),
                            evalue: message,
                        }),
                        ..Default::default()
                    });
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl Driver {
    /// Pickles the namespace into `path` inside the container (see `checkpoint.rs`).
    pub async fn checkpoint(
        &mut self,
        path: &str,
        wait: Duration,
    ) -> Result<NamespaceSaved, String> {
        match self
            .namespace_request("checkpoint", path, false, wait)
            .await?
        {
            Incoming::Checkpointed(saved) => Ok(*saved),
            _ => Err("unexpected reply to checkpoint".into()),
        }
    }

    /// Removes the pickle at `path` (if any) once it was copied out.
    pub async fn discard(&mut self, path: &str, wait: Duration) -> Result<(), String> {
        match self
            .namespace_request("checkpoint", path, true, wait)
            .await?
        {
            Incoming::Checkpointed(_) => Ok(()),
            _ => Err("unexpected reply to discard".into()),
        }
    }

    /// Loads a pickle written by [`Driver::checkpoint`] from `path` into the namespace.
    pub async fn restore(
        &mut self,
        path: &str,
        wait: Duration,
    ) -> Result<NamespaceRestored, String> {
        match self.namespace_request("restore", path, false, wait).await? {
            Incoming::Restored(restored) => Ok(*restored),
            _ => Err("unexpected reply to restore".into()),
        }
    }

    async fn namespace_request(
        &mut self,
        kind: &'static str,
        path: &str,
        discard: bool,
        wait: Duration,
    ) -> Result<Incoming, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut line = serde_json::to_vec(&NamespaceRequest {
            kind,
            id: &id,
            path,
            discard,
        })
        .map_err(|e| e.to_string())?;
        line.push(b'\n');
        if self.input.write_all(&line).await.is_err() || self.input.flush().await.is_err() {
            return Err("the driver is gone".into());
        }
        let deadline = Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .map_err(|_| format!("no answer to {kind} within {wait:?}"))?;
            match message {
                None => return Err("the driver is gone".into()),
                Some(Err(e)) => return Err(e),
                Some(Ok(Incoming::Checkpointed(saved))) if saved.id == id => {
                    return Ok(Incoming::Checkpointed(saved))
                }
                Some(Ok(Incoming::Restored(restored))) if restored.id == id => {
                    return Ok(Incoming::Restored(restored))
                }
                Some(Ok(Incoming::Error {
                    id: for_id,
                    message,
                })) if for_id.as_deref().is_none_or(|for_id| for_id == id) => return Err(message),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// Splits the driver's stdout into JSON lines and forwards them; keeps a tail of its stderr.
/// Returning (dropping `tx`) tells the other side the driver is gone.
async fn read_messages(
    mut output: Pin<
        Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    tx: mpsc::Sender<Message>,
    stderr_tail: Arc<Mutex<String>>,
    container: String,
) {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = output.next().await {
        let bytes = match chunk {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => message,
            Ok(LogOutput::StdErr { message }) => {
                let text = String::from_utf8_lossy(&message);
                tracing::debug!(container, stderr = %text, "sandbox driver");
                if let Ok(mut tail) = stderr_tail.lock() {
                    tail.push_str(&text);
                    if tail.len() > STDERR_TAIL {
                        let mut cut = tail.len() - STDERR_TAIL;
                        while !tail.is_char_boundary(cut) {
                            cut += 1;
                        }
                        tail.drain(..cut);
                    }
                }
                continue;
            }
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                tracing::debug!(container, error = %e, "sandbox driver stream ended");
                return;
            }
        };
        buffer.extend_from_slice(&bytes);
        while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
            let line = buffer.split_to(newline + 1);
            let line = &line[..newline];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let message = serde_json::from_slice::<Incoming>(line).map_err(|e| {
                let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                format!("unreadable driver message ({e}): {shown}")
            });
            let fatal = message.is_err();
            if tx.send(message).await.is_err() || fatal {
                return;
            }
        }
        if buffer.len() > MAX_LINE {
            let _ = tx
                .send(Err(format!("driver message longer than {MAX_LINE} bytes")))
                .await;
            return;
        }
    }
}
