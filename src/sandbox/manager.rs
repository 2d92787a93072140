//! Which thread owns which sandbox, and the sandboxes' life cycle: assigned on first use,
//! reaped when idle, evicted when too many, removed at shutdown (and orphans at start).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use tokio::sync::{oneshot, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::container::{self, DATA_DIR};
use super::driver::Failure;
use super::output::ExecOutput;
use super::pool::{Pool, Sandbox};
use super::{SandboxConfig, SandboxError};

/// How long past its own time limit the driver gets to answer before it is killed. IPython
/// formats a traceback with source context, which on a busy host can take a second or two.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);
/// How long an interrupted (cancelled) execution gets to wind down.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Counters for metrics and /readyz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxStats {
    /// Sandboxes assigned to a thread.
    pub live: usize,
    /// Warm sandboxes waiting for a thread.
    pub pooled: usize,
    /// Sandboxes removed because more than max_sessions were alive.
    pub evicted_total: u64,
    /// Sandboxes removed because they sat idle too long.
    pub expired_total: u64,
}

/// Runs code for threads, each in its own long-lived sandbox. Cheap to clone.
#[derive(Clone)]
pub struct SandboxManager {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    cfg: Arc<SandboxConfig>,
    pool: Arc<Pool>,
    sessions: Mutex<HashMap<String, Entry>>,
    evicted_total: AtomicU64,
    expired_total: AtomicU64,
    closed: AtomicBool,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A thread's place in the table. The sandbox itself is made on first use, under the lock
/// that also keeps one execution at a time per thread.
struct Entry {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    last_used: Instant,
    /// Fired when the session is removed, so work queued on it gives up.
    removed: CancellationToken,
    /// Operations under way or waiting; a busy session is never idle-reaped or evicted.
    /// (The lock alone cannot tell: it is also held for the clean-up after a cell.)
    busy: Arc<AtomicUsize>,
}

/// Marks its session busy while alive.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Entry {
    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }
}

#[derive(Default)]
struct Slot {
    sandbox: Option<Sandbox>,
}

type Handle = (Arc<tokio::sync::Mutex<Slot>>, CancellationToken, Busy);

impl SandboxManager {
    /// Connects to Docker, removes what an earlier process of this instance left behind, and
    /// starts warming the pool and reaping idle sandboxes.
    pub async fn start(cfg: SandboxConfig) -> anyhow::Result<SandboxManager> {
        // Debian's daemon speaks API 1.41; without negotiating every call is refused.
        let docker = Docker::connect_with_socket_defaults()?
            .negotiate_version()
            .await?;
        let orphans = container::remove_instance(&docker, &cfg.instance).await?;
        if orphans > 0 {
            tracing::info!(
                orphans,
                instance = cfg.instance,
                "removed sandboxes left by an earlier process"
            );
        }
        let cfg = Arc::new(cfg);
        let pool = Arc::new(Pool::new(docker.clone(), cfg.clone()));
        let manager = SandboxManager {
            inner: Arc::new(Inner {
                docker,
                cfg,
                pool: pool.clone(),
                sessions: Mutex::new(HashMap::new()),
                evicted_total: AtomicU64::new(0),
                expired_total: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                stop: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let stop = manager.inner.stop.clone();
        let filler = tokio::spawn(pool.fill(stop.clone()));
        let reaper = tokio::spawn(manager.clone().reap_idle(stop));
        if let Ok(mut tasks) = manager.inner.tasks.lock() {
            tasks.extend([filler, reaper]);
        }
        Ok(manager)
    }

    /// Runs `code` in the thread's sandbox, creating it on first use. User errors, timeouts
    /// and a crashed interpreter are reported in the output; `Err` means the sandbox itself
    /// could not be used. Cancelling interrupts the code (SIGINT, as KeyboardInterrupt) and
    /// returns [`SandboxError::Cancelled`]; variables survive unless the code would not stop.
    /// Processes the code started are killed once it finishes.
    pub async fn exec(
        &self,
        session: &str,
        code: &str,
        cancel: &CancellationToken,
    ) -> Result<ExecOutput, SandboxError> {
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled);
        }
        let (slot, removed, busy) = self.handle(session, true)?;
        let inner = self.inner.clone();
        let code = code.to_owned();
        let cancel = cancel.clone();
        let (reply, output) = oneshot::channel();
        // A task of its own, so that a caller who stops waiting does not abandon the driver
        // mid-request: the execution still ends (by reply, timeout or restart) before the
        // next one on this thread starts.
        tokio::spawn(async move {
            let mut slot = match lock(slot, &removed).await {
                Ok(slot) => slot,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            };
            let result = tokio::select! {
                output = inner.exec_locked(&mut slot, &code, &cancel) => output,
                _ = removed.cancelled() => Err(removed_error()),
            };
            // The driver counts what the cell left behind; asking the daemon costs ~15 ms.
            let sweep = matches!(&result, Ok(output) if !output.state_reset && output.processes_left != Some(0));
            let _ = reply.send(result);
            drop(busy);
            // After answering, still holding the thread's lock: the next execution must not
            // see this one's leftovers.
            if sweep && !removed.is_cancelled() {
                inner.kill_leftovers(&mut slot).await;
            }
        });
        let output = output
            .await
            .map_err(|_| SandboxError::Unavailable("the sandbox task failed".into()))?;
        self.touch(session);
        output
    }

    /// Copies a file into the thread's /mnt/data under its own name (path separators
    /// removed); when taken, `name (1).ext`, `name (2).ext`, ... Returns the full path.
    pub async fn put_file(
        &self,
        session: &str,
        filename: &str,
        bytes: &[u8],
    ) -> Result<String, SandboxError> {
        let name = sanitize_filename(filename);
        let (slot, removed, _busy) = self.handle(session, true)?;
        let mut slot = lock(slot, &removed).await?;
        let inner = &self.inner;
        let sandbox = inner.sandbox(&mut slot).await?;
        let mut candidate = name.clone();
        let mut n = 0;
        while sandbox
            .container
            .exists(&inner.docker, &format!("{DATA_DIR}/{candidate}"))
            .await?
        {
            n += 1;
            if n > 10_000 {
                return Err(SandboxError::InvalidPath(format!(
                    "no free name for {name} in {DATA_DIR}"
                )));
            }
            candidate = numbered(&name, n);
        }
        sandbox
            .container
            .put(&inner.docker, &candidate, bytes)
            .await?;
        drop(slot);
        self.touch(session);
        Ok(format!("{DATA_DIR}/{candidate}"))
    }

    /// Reads a file under /mnt/data (absolute, relative to it, or as `sandbox:/mnt/data/...`).
    /// None when the thread has no sandbox or the file does not exist.
    pub async fn read_file(
        &self,
        session: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, SandboxError> {
        let path = data_path(path)?;
        let Ok((slot, removed, _busy)) = self.handle(session, false) else {
            return Ok(None);
        };
        let slot = lock(slot, &removed).await?;
        let Some(sandbox) = &slot.sandbox else {
            return Ok(None);
        };
        let bytes = sandbox
            .container
            .get(&self.inner.docker, &path, max_bytes)
            .await?;
        drop(slot);
        self.touch(session);
        Ok(bytes)
    }

    /// Removes the thread's sandbox (when the thread is deleted). A running execution is
    /// abandoned.
    pub async fn drop_session(&self, session: &str) {
        let entry = self
            .inner
            .sessions
            .lock()
            .ok()
            .and_then(|mut sessions| sessions.remove(session));
        if let Some(entry) = entry {
            destroy_entry(self.inner.docker.clone(), entry).await;
        }
    }

    /// The sessions alive in this process.
    pub fn sessions(&self) -> Vec<String> {
        self.inner
            .sessions
            .lock()
            .map(|sessions| sessions.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub async fn has_session(&self, session: &str) -> bool {
        self.inner
            .sessions
            .lock()
            .map(|sessions| sessions.contains_key(session))
            .unwrap_or(false)
    }

    /// Whether sandboxes can be made now: Docker answers and the image exists.
    pub async fn ready(&self) -> Result<(), SandboxError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(SandboxError::Unavailable("shutting down".into()));
        }
        self.inner.docker.ping().await?;
        let image = &self.inner.cfg.image;
        self.inner.docker.inspect_image(image).await.map_err(|e| {
            SandboxError::Unavailable(format!("sandbox image {image} is not available: {e}"))
        })?;
        Ok(())
    }

    pub fn stats(&self) -> SandboxStats {
        SandboxStats {
            live: self.inner.sessions.lock().map(|s| s.len()).unwrap_or(0),
            pooled: self.inner.pool.len(),
            evicted_total: self.inner.evicted_total.load(Ordering::Relaxed),
            expired_total: self.inner.expired_total.load(Ordering::Relaxed),
        }
    }

    /// Stops the background tasks and removes every sandbox of this instance.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        inner.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = inner
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        let entries: Vec<Entry> = inner
            .sessions
            .lock()
            .map(|mut s| s.drain().map(|(_, e)| e).collect())
            .unwrap_or_default();
        let removals = entries
            .into_iter()
            .map(|entry| destroy_entry(inner.docker.clone(), entry));
        futures::future::join_all(removals).await;
        inner.pool.drain().await;
        // Whatever a cancelled launch left half-made.
        if let Err(e) = container::remove_instance(&inner.docker, &inner.cfg.instance).await {
            tracing::warn!(error = %e, "sweeping sandboxes at shutdown");
        }
    }

    /// The session's handle, made (evicting the least recently used idle session if the
    /// table is full) when `create` is set.
    fn handle(&self, session: &str, create: bool) -> Result<Handle, SandboxError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err(SandboxError::Unavailable("shutting down".into()));
        }
        let mut sessions = inner
            .sessions
            .lock()
            .map_err(|_| SandboxError::Unavailable("session table poisoned".into()))?;
        if let Some(entry) = sessions.get_mut(session) {
            entry.last_used = Instant::now();
            return Ok((
                entry.slot.clone(),
                entry.removed.clone(),
                Busy::new(&entry.busy),
            ));
        }
        if !create {
            return Err(SandboxError::Unavailable("no such session".into()));
        }
        while sessions.len() >= inner.cfg.max_sessions.max(1) {
            let Some(victim) = least_recently_used_idle(&sessions) else {
                tracing::warn!(
                    live = sessions.len(),
                    "all sandboxes busy; exceeding max_sessions"
                );
                break;
            };
            if let Some(entry) = sessions.remove(&victim) {
                inner.evicted_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = victim, "evicting least recently used sandbox");
                tokio::spawn(destroy_entry(inner.docker.clone(), entry));
            }
        }
        let entry = Entry {
            slot: Arc::new(tokio::sync::Mutex::new(Slot::default())),
            last_used: Instant::now(),
            removed: CancellationToken::new(),
            busy: Arc::new(AtomicUsize::new(0)),
        };
        let handle = (
            entry.slot.clone(),
            entry.removed.clone(),
            Busy::new(&entry.busy),
        );
        sessions.insert(session.to_owned(), entry);
        Ok(handle)
    }

    fn touch(&self, session: &str) {
        if let Ok(mut sessions) = self.inner.sessions.lock() {
            if let Some(entry) = sessions.get_mut(session) {
                entry.last_used = Instant::now();
            }
        }
    }

    async fn reap_idle(self, stop: CancellationToken) {
        let idle_timeout = self.inner.cfg.idle_timeout();
        let every = (idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let expired: Vec<(String, Entry)> = match self.inner.sessions.lock() {
                Ok(mut sessions) => {
                    let stale: Vec<String> = sessions
                        .iter()
                        .filter(|(_, e)| !e.is_busy() && e.last_used.elapsed() >= idle_timeout)
                        .map(|(k, _)| k.clone())
                        .collect();
                    stale
                        .into_iter()
                        .filter_map(|key| sessions.remove_entry(&key))
                        .collect()
                }
                Err(_) => Vec::new(),
            };
            for (session, entry) in expired {
                self.inner.expired_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session, "removing idle sandbox");
                destroy_entry(self.inner.docker.clone(), entry).await;
            }
        }
    }
}

impl Inner {
    /// The slot's sandbox, taken from the pool on first use.
    async fn sandbox<'a>(&self, slot: &'a mut Slot) -> Result<&'a mut Sandbox, SandboxError> {
        if slot.sandbox.is_none() {
            slot.sandbox = Some(self.pool.take().await?);
        }
        slot.sandbox
            .as_mut()
            .ok_or_else(|| SandboxError::Unavailable("no sandbox".into()))
    }

    async fn exec_locked(
        &self,
        slot: &mut Slot,
        code: &str,
        cancel: &CancellationToken,
    ) -> Result<ExecOutput, SandboxError> {
        let sandbox = self.sandbox(slot).await?;
        if sandbox.driver.is_none() {
            // An earlier restart failed half-way; try again before running anything.
            if let Err(e) = sandbox.restart_driver(&self.docker).await {
                self.discard(slot).await;
                return Err(e);
            }
        }
        let Sandbox {
            container,
            driver: Some(driver),
        } = sandbox
        else {
            return Err(SandboxError::Unavailable("no driver".into()));
        };
        // Cancelled while waiting for the thread's previous execution: do not start at all.
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let timeout = self.cfg.exec_timeout();
        let reply = driver
            .exec(
                &id,
                code,
                timeout,
                self.cfg.max_output,
                timeout + TIMEOUT_GRACE,
                cancel,
            )
            .await;
        let why = match reply {
            Ok(reply) => return Ok(reply.into()),
            Err(Failure::Cancelled) => {
                // Interrupt as the time limit would; restart only if that does not work.
                let interrupted = container.interrupt(&self.docker).await.is_ok()
                    && driver.reply(&id, INTERRUPT_GRACE).await.is_ok();
                if !interrupted {
                    self.reset(slot, false, "cancelled").await;
                }
                return Err(SandboxError::Cancelled);
            }
            Err(Failure::NoAnswer) => (
                true,
                format!(
                    "the code did not stop at the {}-second time limit",
                    timeout.as_secs()
                ),
            ),
            Err(Failure::Died) => (
                false,
                "the Python process was killed (out of memory, or ended by the code)".to_string(),
            ),
            Err(Failure::Protocol(e)) => {
                tracing::warn!(error = e, "sandbox driver protocol error");
                (false, "the sandbox driver failed".to_string())
            }
        };
        Ok(self.reset(slot, why.0, &why.1).await)
    }

    /// Replaces a dead or stuck driver, keeping /mnt/data; if even that fails the whole
    /// sandbox is discarded and the next execution gets a new one.
    async fn reset(&self, slot: &mut Slot, timed_out: bool, why: &str) -> ExecOutput {
        let restarted = match slot.sandbox.as_mut() {
            Some(sandbox) => sandbox.restart_driver(&self.docker).await,
            None => Err(SandboxError::Unavailable("no sandbox".into())),
        };
        match restarted {
            Ok(()) => ExecOutput::state_reset(timed_out, why),
            Err(e) => {
                tracing::warn!(error = %e, "could not restart a sandbox driver; discarding the sandbox");
                self.discard(slot).await;
                let mut output = ExecOutput::state_reset(timed_out, why);
                if let Some(error) = output.error.as_mut() {
                    error.evalue = format!(
                        "{why}; the sandbox was replaced: variables and files in /mnt/data were lost."
                    );
                    error.traceback = format!("SandboxRestarted: {}", error.evalue);
                }
                output
            }
        }
    }

    /// Processes a cell started do not outlive it: left running they would write into the
    /// next cell's output, hold memory and pids, or (a fork bomb) keep the CPU busy.
    async fn kill_leftovers(&self, slot: &mut Slot) {
        // Only the container is held across awaits: the driver is not Sync.
        let container = match &slot.sandbox {
            Some(Sandbox {
                container,
                driver: Some(_),
            }) => container,
            _ => return,
        };
        // Usually the driver is alone, and counting is cheap. If the daemon cannot count
        // (some runtimes), sweeping after every cell would cost more than leftovers do.
        match container.user_process_count(&self.docker).await {
            Ok(count) if count <= 1 => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot list sandbox processes; not sweeping");
                return;
            }
        }
        if let Err(e) = container.kill_leftovers(&self.docker).await {
            tracing::warn!(error = %e, "could not stop processes left by a cell; restarting the driver");
            self.reset(slot, false, "leftover processes").await;
        }
    }

    async fn discard(&self, slot: &mut Slot) {
        if let Some(sandbox) = slot.sandbox.take() {
            sandbox.destroy(&self.docker).await;
        }
    }
}

async fn lock(
    slot: Arc<tokio::sync::Mutex<Slot>>,
    removed: &CancellationToken,
) -> Result<OwnedMutexGuard<Slot>, SandboxError> {
    let guard = tokio::select! {
        guard = slot.lock_owned() => guard,
        _ = removed.cancelled() => return Err(removed_error()),
    };
    if removed.is_cancelled() {
        return Err(removed_error());
    }
    Ok(guard)
}

fn removed_error() -> SandboxError {
    SandboxError::Unavailable("the sandbox was removed".into())
}

/// Removes a session's sandbox once the session is out of the table. Work queued on it gives
/// up; the clean-up after its last cell is let finish.
async fn destroy_entry(docker: Docker, entry: Entry) {
    entry.removed.cancel();
    let mut slot = entry.slot.lock_owned().await;
    if let Some(sandbox) = slot.sandbox.take() {
        sandbox.destroy(&docker).await;
    }
}

fn least_recently_used_idle(sessions: &HashMap<String, Entry>) -> Option<String> {
    sessions
        .iter()
        .filter(|(_, entry)| !entry.is_busy())
        .min_by_key(|(_, entry)| entry.last_used)
        .map(|(key, _)| key.clone())
}

/// The file's own name without any directory part or control characters.
fn sanitize_filename(filename: &str) -> String {
    let base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let base = base.trim();
    let mut name = match base {
        "" | "." | ".." => "file".to_string(),
        _ => base.to_string(),
    };
    // Most filesystems allow 255 bytes per name; leave room for " (NNNN)".
    while name.len() > 240 {
        name.pop();
    }
    name
}

/// `data.csv` -> `data (n).csv`; `.env` -> `.env (n)`.
fn numbered(name: &str, n: u32) -> String {
    let path = Path::new(name);
    match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => {
            format!("{} ({n}).{}", stem.to_string_lossy(), ext.to_string_lossy())
        }
        _ => format!("{name} ({n})"),
    }
}

/// The absolute path of a file under /mnt/data, refusing anything that leaves it.
fn data_path(path: &str) -> Result<String, SandboxError> {
    let path = path.strip_prefix("sandbox:").unwrap_or(path);
    let relative = match path.strip_prefix('/') {
        Some(absolute) => absolute
            .strip_prefix("mnt/data/")
            .ok_or_else(|| SandboxError::InvalidPath(format!("{path} is not under {DATA_DIR}")))?,
        None => path,
    };
    let mut parts = Vec::new();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SandboxError::InvalidPath(format!(
                    "{path} leaves {DATA_DIR}"
                )))
            }
            part if part.contains('\0') => {
                return Err(SandboxError::InvalidPath("NUL in path".into()))
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(SandboxError::InvalidPath(format!("{path} names no file")));
    }
    Ok(format!("{DATA_DIR}/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_lose_directories_and_control_characters() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\me\\data.csv"), "data.csv");
        assert_eq!(sanitize_filename("a\nb\0.txt"), "ab.txt");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename("dir/"), "file");
    }

    #[test]
    fn taken_names_are_numbered_before_the_extension() {
        assert_eq!(numbered("data.csv", 1), "data (1).csv");
        assert_eq!(numbered("README", 2), "README (2)");
        assert_eq!(numbered(".env", 1), ".env (1)");
    }

    #[test]
    fn read_paths_must_stay_under_mnt_data() {
        assert_eq!(data_path("/mnt/data/x.csv").unwrap(), "/mnt/data/x.csv");
        assert_eq!(
            data_path("sandbox:/mnt/data/a/b.png").unwrap(),
            "/mnt/data/a/b.png"
        );
        assert_eq!(data_path("x.csv").unwrap(), "/mnt/data/x.csv");
        assert!(data_path("/etc/passwd").is_err());
        assert!(data_path("/mnt/data/../../etc/passwd").is_err());
        assert!(data_path("/mnt/database/x").is_err());
        assert!(data_path("/mnt/data/").is_err());
    }
}
