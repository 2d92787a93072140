//! The Responses API's hosted `shell` tool inside a session's sandbox: each command in a
//! fresh `bash -lc`, as the sandbox user, in /mnt/data, stdin closed and no TTY, in its own
//! process group (killed whole when it outlives its time). The commands are started by the
//! session's running driver rather than by a `docker exec` each (which costs ~60 ms): the
//! driver already reports the files under /mnt/data the call wrote or removed, and a
//! command's processes still go when the call ends, as a cell's do.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{ChangedFile, SandboxError, SandboxManager};

/// What one command gave back: `{stdout, stderr, outcome: {type: exit, exit_code} | {type:
/// timeout}}`, already cut to the call's output limit.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub outcome: Value,
}

/// A shell call's outcome: one output per command, and what it did to /mnt/data.
#[derive(Debug, Clone, Default)]
pub struct ShellOutput {
    pub commands: Vec<CommandOutput>,
    pub files: Vec<ChangedFile>,
    pub removed: Vec<String>,
}

/// One call to run.
pub struct ShellRequest<'a> {
    pub commands: &'a [String],
    /// Per command; `None`: as long as the call may take.
    pub timeout: Option<Duration>,
    /// Characters of stdout and stderr together each command keeps (head and tail).
    pub max_chars: usize,
}

/// Defines `run_call(request)`, which prints one marked line of JSON. Compiled once per
/// interpreter into a namespace of its own kept on `sys` (the user's variables are not
/// touched; compiling it each call would cost about a millisecond).
const RUNNER: &str = r#"
import json, os, selectors, signal, subprocess, time
MARK = "@@assistd-shell@@"

class Keep:
    """The first and last `cap` bytes of a stream, and how many there were."""
    def __init__(self, cap):
        self.cap, self.head, self.tail, self.total = cap, bytearray(), bytearray(), 0
    def add(self, chunk):
        self.total += len(chunk)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.cap:
                del self.tail[:len(self.tail) - self.cap]
    def text(self):
        data = bytes(self.head)
        if self.tail:
            gap = self.total - len(self.head) - len(self.tail)
            data += (b"\n...[%d bytes not kept]...\n" % gap if gap > 0 else b"") + bytes(self.tail)
        return data.decode("utf-8", "replace")

def cut(text, limit):
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    gone = len(text) - limit
    return text[:head] + "\n...[%d characters truncated]...\n" % gone + (text[-tail:] if tail else "")

def run(command, wait, cap):
    started = time.monotonic()
    try:
        p = subprocess.Popen(["bash", "-lc", command], cwd="/mnt/data", stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return "", str(exc), {"type": "exit", "exit_code": 127}
    fo, fe = p.stdout.fileno(), p.stderr.fileno()
    keep = {fo: Keep(cap), fe: Keep(cap)}
    sel = selectors.DefaultSelector()
    for fd in keep:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    deadline = None if wait is None else started + wait
    timed_out = False
    def drain(limit):
        for key, _ in sel.select(limit):
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if chunk:
                keep[key.fd].add(chunk)
            else:
                sel.unregister(key.fd)
    exited_at = None
    while sel.get_map():
        now = time.monotonic()
        left = None if deadline is None else deadline - now
        if left is not None and left <= 0:
            timed_out = True
            break
        # The shell may end while something it started in the background keeps the pipes
        # open (a server): once it has exited, what is already written is read, then it ends.
        if exited_at is None and p.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 0.1:
            break
        drain(0.1 if left is None else min(left, 0.1))
    code = None
    if not timed_out:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            code = p.wait(left)
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        end = time.monotonic() + 0.2
        while sel.get_map() and time.monotonic() < end:
            drain(0.05)
        try:
            p.wait(1)
        except subprocess.TimeoutExpired:
            pass
    sel.close()
    p.stdout.close()
    p.stderr.close()
    out, err = keep[fo].text(), keep[fe].text()
    outcome = {"type": "timeout"} if timed_out else {"type": "exit", "exit_code": code if code >= 0 else 128 - code}
    return out, err, outcome

def run_call(request):
    req = json.loads(request)
    results = []
    begun = time.monotonic()
    for command in req["commands"]:
        left = req["budget"] - (time.monotonic() - begun)
        wait = left if req["timeout"] is None else min(req["timeout"], left)
        if wait <= 0:
            results.append({"stdout": "", "stderr": "", "outcome": {"type": "timeout"}})
            continue
        out, err, outcome = run(command, wait, req["cap"])
        results.append({"stdout": out, "stderr": err, "outcome": outcome})

    def shaped(results, limit):
        shown = []
        for r in results:
            out, err = r["stdout"], r["stderr"]
            if len(out) + len(err) > limit:
                err_room = min(len(err), max(limit // 2, limit - len(out)))
                out, err = cut(out, limit - err_room), cut(err, err_room)
            shown.append({"stdout": out, "stderr": err, "outcome": r["outcome"]})
        return json.dumps(shown)

    limit = req["limit"]
    answer = shaped(results, limit)
    while len(answer) > req["room"] and limit > 16:
        limit = limit * req["room"] // len(answer) * 9 // 10
        answer = shaped(results, limit)
    print(MARK + answer)
"#;

const MARK: &str = "@@assistd-shell@@";

impl SandboxManager {
    /// Runs a shell call's commands one after another in the session's sandbox. `Err` means
    /// the sandbox could not be used; a failing or timed-out command is an output.
    pub async fn run_shell(
        &self,
        session: &str,
        request: ShellRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<ShellOutput, SandboxError> {
        // The whole call stays inside the driver's own limit for an execution.
        let budget = self.exec_timeout().saturating_sub(Duration::from_secs(2));
        let max_chars = request.max_chars.max(1);
        let params = json!({
            "commands": request.commands,
            "timeout": request.timeout.map(|t| t.as_secs_f64()),
            "budget": budget.as_secs_f64().max(1.0),
            "limit": max_chars,
            // Bytes of each stream kept while a command runs (UTF-8: up to 4 per character).
            "cap": max_chars.saturating_mul(4).max(1024),
            // The printed answer must fit the driver's output limit, with room to spare.
            "room": self.max_output().saturating_sub(4096).max(1024),
        });
        let code = format!(
            "__import__('sys').__dict__.setdefault('_assistd_shell', {{}}) or exec({}, __import__('sys')._assistd_shell)\n\
             __import__('sys')._assistd_shell['run_call']({})",
            json!(RUNNER),
            json!(params.to_string())
        );
        let out = self.exec(session, &code, cancel).await?;
        let answer = out
            .stdout
            .rsplit_once(MARK)
            .map(|(_, a)| a.trim_end())
            .ok_or_else(|| {
                let why = out
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.ename, e.evalue))
                    .unwrap_or_else(|| out.logs());
                SandboxError::Protocol(format!("the shell runner gave no answer: {why}"))
            })?;
        let commands: Vec<CommandOutput> = serde_json::from_str(answer)
            .map_err(|e| SandboxError::Protocol(format!("the shell runner's answer: {e}")))?;
        Ok(ShellOutput {
            commands,
            files: out.files,
            removed: out.removed,
        })
    }
}
