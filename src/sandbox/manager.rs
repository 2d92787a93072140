//! Which thread owns which sandbox, and the sandboxes' life cycle: assigned on first use
//! (restored from the thread's checkpoint if it has one), reaped when idle, evicted when too
//! many, removed at shutdown (and orphans at start); checkpointed before each of those
//! routine ends and periodically while in use.

mod pause;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use tokio::sync::{oneshot, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use futures::StreamExt;
use sqlx::PgPool;

use super::checkpoint::{self, Checkpoints};
use super::commands::Processes;
use super::container::{self, DATA_DIR};
use super::driver::{Failure, Limits, StreamSink};
use super::egress::{self, Ceiling, Egress, EgressPolicy, Policies};
use super::output::ExecOutput;
use super::owner::{Owner, Verdict, LABEL_WORKER};
use super::pool::{Pool, PoolStats, Sandbox};
use super::skills::{SkillCache, SkillMount};
use super::writable::{self, Kind};
use super::{SandboxConfig, SandboxError};

/// How long past its own time limit the driver gets to answer before it is killed. IPython
/// formats a traceback with source context, which on a busy host can take a second or two.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);
/// How long an interrupted (cancelled) execution gets to wind down.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// Sessions checkpointed at once at shutdown.
const SHUTDOWN_CHECKPOINTS: usize = 4;
/// How often containers of stopped workers of this deployment are looked for.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(15);

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
    /// The warm pool: its target size, launches under way, hits and misses.
    pub pool: PoolStats,
}

/// Runs code for threads, each in its own long-lived sandbox. Cheap to clone.
#[derive(Clone)]
pub struct SandboxManager {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    cfg: Arc<SandboxConfig>,
    owner: Owner,
    /// Ends the owner's liveness lock, once this process's sandboxes are gone.
    owner_stop: CancellationToken,
    pool: Arc<Pool>,
    /// Warm writable boxes, for E2B sandboxes (see `writable.rs`).
    box_pool: Arc<Pool>,
    /// Sessions whose sandbox is a box (and whose checkpoints keep the whole box).
    boxes: Mutex<HashSet<String>>,
    sessions: Mutex<HashMap<String, Entry>>,
    evicted_total: AtomicU64,
    expired_total: AtomicU64,
    closed: AtomicBool,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Where sessions are checkpointed; None: sessions end without a trace (tests, benches).
    checkpoints: Option<Checkpoints>,
    /// Sessions out of the table whose checkpoint is being taken: a new session of the same
    /// thread waits on the old slot before it looks for a checkpoint to restore.
    retiring: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Memory limits in MiB of sessions that do not take `cfg.memory_mb` (containers).
    memory_mb: Mutex<HashMap<String, u64>>,
    /// Commands still running beside the drivers (see `commands.rs`).
    processes: Arc<Processes>,
    /// The operator's network setting, the most any session's policy may allow.
    ceiling: Ceiling,
    /// The egress proxy, when sandboxes sit behind it (`ASSISTD_SANDBOX_NETWORK=proxy`).
    egress: Option<Egress>,
    /// Sessions' own network policies (others get the ceiling's widest).
    policies: Policies,

    /// Skills each session mounts when it takes a sandbox (containers'), and their bundles.
    skills: Mutex<HashMap<String, Vec<SkillMount>>>,
    skill_cache: SkillCache,
}

/// A session's container, held for work beside its driver (a command, a file operation):
/// the session counts as busy (not reaped, not evicted) while this lives.
pub(crate) struct Held {
    pub container: String,
    pub docker: Docker,
    _busy: Busy,
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
    /// Code ran or files arrived since the last checkpoint (or restore).
    changed: Arc<AtomicBool>,
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

struct Slot {
    /// The thread this session belongs to (its checkpoint's key).
    thread: String,
    sandbox: Option<Sandbox>,
    /// What the restore at the session's start brought back, until an execution reports it.
    restore_note: Option<String>,
    /// The session began from a checkpoint: its /mnt/data may already hold the files the
    /// executor stages again.
    restored: bool,
    /// The thread's checkpoint holds exactly this session's state as of its last save or
    /// restore (whether anything changed since is `Entry::changed`).
    in_checkpoint: bool,
}

impl Slot {
    fn new(thread: &str) -> Slot {
        Slot {
            thread: thread.to_owned(),
            sandbox: None,
            restore_note: None,
            restored: false,
            in_checkpoint: false,
        }
    }
}

struct Handle {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    removed: CancellationToken,
    busy: Busy,
    changed: Arc<AtomicBool>,
}

impl Entry {
    fn handle(&self) -> Handle {
        Handle {
            slot: self.slot.clone(),
            removed: self.removed.clone(),
            busy: Busy::new(&self.busy),
            changed: self.changed.clone(),
        }
    }
}

impl SandboxManager {
    /// Connects to Docker, removes what an earlier process of this instance left behind, and
    /// starts warming the pool and reaping idle sandboxes. Sessions are not checkpointed; with
    /// no database, the instance label alone names this process's containers.
    pub async fn start(cfg: SandboxConfig) -> anyhow::Result<SandboxManager> {
        Self::start_with(cfg, None).await
    }

    /// As [`SandboxManager::start`], checkpointing sessions to `checkpoints` (when given) and
    /// restoring them from there, with the periodic checkpoint and retention sweep running.
    pub async fn start_with(
        cfg: SandboxConfig,
        checkpoints: Option<Checkpoints>,
    ) -> anyhow::Result<SandboxManager> {
        let owner = Owner::local(&cfg.instance);
        Self::launch(cfg, owner, CancellationToken::new(), checkpoints).await
    }

    /// As [`SandboxManager::start_with`], for a deployment: containers carry the database's
    /// deployment id and this process's worker id (also the executor's, see
    /// [`SandboxManager::worker_id`]); at start and every few seconds, containers of this
    /// deployment whose worker stopped are removed, and nothing else.
    pub async fn start_for_deployment(
        cfg: SandboxConfig,
        db: &PgPool,
        checkpoints: Option<Checkpoints>,
    ) -> anyhow::Result<SandboxManager> {
        let owner_stop = CancellationToken::new();
        let owner = Owner::register(db, &cfg.instance, owner_stop.clone()).await?;
        Self::launch(cfg, owner, owner_stop, checkpoints).await
    }

    async fn launch(
        cfg: SandboxConfig,
        owner: Owner,
        owner_stop: CancellationToken,
        checkpoints: Option<Checkpoints>,
    ) -> anyhow::Result<SandboxManager> {
        // Debian's daemon speaks API 1.41; without negotiating every call is refused.
        let docker = Docker::connect_with_socket_defaults()?
            .negotiate_version()
            .await?;
        let ceiling = cfg.ceiling().map_err(anyhow::Error::msg)?;
        let egress = if cfg.proxied() {
            let dir = std::path::PathBuf::from(&cfg.egress_dir);
            std::fs::create_dir_all(&dir)?;
            egress::set_root(&dir);
            let allow = cfg.egress_allow_internal().map_err(anyhow::Error::msg)?;
            let (tls, trust) = egress::Interceptor::new(&cfg.egress_ca_dir(), &dir)?;
            egress::set_trust(trust);
            Some(Egress::new(dir, allow).intercepting(Arc::new(tls)))
        } else {
            None
        };

        let mut cfg = cfg;
        cfg.skills_host_dir = super::skills::probe_host_dir(&docker, &cfg, &owner.labels()).await;
        let cfg = Arc::new(cfg);
        let stop = CancellationToken::new();
        let pool = Arc::new(Pool::new(
            docker.clone(),
            cfg.clone(),
            owner.labels(),
            stop.clone(),
            Kind::Interpreter,
            cfg.pool_size,
        ));
        let box_pool = Arc::new(Pool::new(
            docker.clone(),
            cfg.clone(),
            owner.labels(),
            stop.clone(),
            Kind::Box,
            cfg.box_pool_size.min(cfg.pool_size),
        ));
        let manager = SandboxManager {
            inner: Arc::new(Inner {
                docker,
                cfg,
                owner,
                owner_stop,
                pool: pool.clone(),
                box_pool: box_pool.clone(),
                boxes: Mutex::new(HashSet::new()),
                sessions: Mutex::new(HashMap::new()),
                evicted_total: AtomicU64::new(0),
                expired_total: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                stop: stop.clone(),
                tasks: Mutex::new(Vec::new()),
                checkpoints: checkpoints.clone(),
                retiring: Mutex::new(HashMap::new()),
                memory_mb: Mutex::new(HashMap::new()),
                processes: Arc::new(Processes::default()),
                ceiling,
                egress,
                policies: Policies::default(),

                skills: Mutex::new(HashMap::new()),
                // Keys are unique bundle ids, so one cache serves every instance on the host.
                skill_cache: SkillCache::new(super::skills::host_root().join("bundles")),
            }),
        };
        manager.inner.sweep_orphans(true).await?;
        let filler = tokio::spawn(pool.fill());
        let box_filler = tokio::spawn(box_pool.fill());
        let reaper = tokio::spawn(manager.clone().reap_idle(stop.clone()));
        let disks = tokio::spawn(writable::check_disks(
            manager.inner.docker.clone(),
            (LABEL_WORKER.to_string(), manager.inner.owner.worker.clone()),
            manager.inner.cfg.disk_mb,
            manager.inner.processes.clone(),
            stop.clone(),
        ));
        let mut tasks = vec![filler, box_filler, reaper, disks];
        if manager.inner.owner.deployment.is_some() {
            tasks.push(tokio::spawn(
                manager.clone().sweep_periodically(stop.clone()),
            ));
        }
        if let Some(checkpoints) = checkpoints {
            if let Some(every) = manager.inner.cfg.checkpoint_every() {
                tasks.push(tokio::spawn(
                    manager.clone().checkpoint_periodically(every, stop.clone()),
                ));
            }
            tasks.push(tokio::spawn(sweep_checkpoints(checkpoints, stop)));
        }
        if let Ok(mut all) = manager.inner.tasks.lock() {
            all.extend(tasks);
        }
        Ok(manager)
    }

    /// This process's worker id: the label on its containers and its row in `workers`.
    pub fn worker_id(&self) -> &str {
        &self.inner.owner.worker
    }

    /// The deployment id from the database (None without one).
    pub fn deployment_id(&self) -> Option<&str> {
        self.inner.owner.deployment.as_deref()
    }

    async fn sweep_periodically(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ORPHAN_SWEEP_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.inner.sweep_orphans(false).await {
                tracing::warn!(error = %e, "looking for sandboxes of stopped workers");
            }
        }
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
        self.exec_streaming(session, code, None, cancel, None).await
    }

    /// [`SandboxManager::exec`], sending the output to `sink` as the code writes it (the
    /// returned output then holds only the rest: images of figures, the error, files).
    /// `language` `javascript` runs the code in the session's Node.js context (checkpointed with
    /// the Python namespace, as far as v8 can copy its globals); absent, Python.
    pub async fn exec_streaming(
        &self,
        session: &str,
        code: &str,
        language: Option<&str>,
        cancel: &CancellationToken,
        sink: Option<StreamSink>,
    ) -> Result<ExecOutput, SandboxError> {
        if cancel.is_cancelled() {
            return Err(SandboxError::Cancelled);
        }
        let Handle {
            slot,
            removed,
            busy,
            changed,
        } = self.handle(session, true)?;
        let inner = self.inner.clone();
        let code = code.to_owned();
        let language = language.map(str::to_owned);
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
            let mut result = tokio::select! {
                output = inner.exec_locked(&mut slot, &code, language.as_deref(), &cancel, sink.as_ref()) => output,
                _ = removed.cancelled() => Err(removed_error()),
            };
            changed.store(true, Ordering::SeqCst);
            if let Ok(output) = result.as_mut() {
                output.restore_note = slot.restore_note.take();
            }
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
        let handle = self.handle(session, true)?;
        let mut slot = lock(handle.slot, &handle.removed).await?;
        let inner = &self.inner;
        inner.sandbox(&mut slot).await?;
        let restored = slot.restored;
        let sandbox = inner.sandbox(&mut slot).await?;
        let mut candidate = name.clone();
        let mut n = 0;
        loop {
            let path = format!("{DATA_DIR}/{candidate}");
            let size = sandbox
                .container
                .regular_file_size(&inner.docker, &path)
                .await?;
            let exists = match size {
                // The same bytes under that name already (a restored session's staged file):
                // the file is there, under the name the model already knows.
                Some(size) if restored && size == bytes.len() as u64 => {
                    let there = sandbox.container.get(&inner.docker, &path, size).await?;
                    if there.as_deref() == Some(bytes) {
                        drop(slot);
                        self.touch(session);
                        return Ok(path);
                    }
                    true
                }
                Some(_) => true,
                None => sandbox.container.exists(&inner.docker, &path).await?,
            };
            if !exists {
                break;
            }
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
        handle.changed.store(true, Ordering::SeqCst);
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
        let Ok(handle) = self.handle(session, false) else {
            return Ok(None);
        };
        let slot = lock(handle.slot, &handle.removed).await?;
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

    /// Holds the session's container for work beside the driver, starting the session
    /// (restored from its checkpoint) if it is not live here. The session is marked changed:
    /// such work may change its files.
    pub(crate) async fn hold(&self, session: &str) -> Result<Held, SandboxError> {
        let handle = self.handle(session, true)?;
        let mut slot = lock(handle.slot, &handle.removed).await?;
        let sandbox = self.inner.sandbox(&mut slot).await?;
        let container = sandbox.container.name.clone();
        handle.changed.store(true, Ordering::SeqCst);
        drop(slot);
        self.touch(session);
        Ok(Held {
            container,
            docker: self.inner.docker.clone(),
            _busy: handle.busy,
        })
    }

    pub(crate) fn processes(&self) -> Arc<Processes> {
        self.inner.processes.clone()
    }

    /// Whether sandboxes have a network (`ASSISTD_SANDBOX_NETWORK` other than "none").
    pub fn network_enabled(&self) -> bool {
        self.inner.cfg.network != "none"
    }

    /// The longest one execution may run (file operations on its session wait behind it).
    pub fn exec_timeout(&self) -> Duration {
        Duration::from_secs(self.inner.cfg.exec_timeout_secs)
    }

    /// The operator's network setting, the most a session's network policy may allow.
    pub fn network_ceiling(&self) -> &Ceiling {
        &self.inner.ceiling
    }

    /// Gives the session `policy` (None: the operator's widest), for its next sandbox and for
    /// connections its live sandbox opens from now on. Forgotten by `drop_session`.
    pub fn set_network_policy(&self, session: &str, policy: Option<EgressPolicy>) {
        // Kept as a policy of its own, so a live sandbox widens back too.
        let policy = policy.unwrap_or_else(|| self.inner.ceiling.widest());
        self.inner.policies.set(session, Some(policy));
    }

    /// The session's own network policy, if it was given one (since this process started).
    pub fn network_policy(&self, session: &str) -> Option<EgressPolicy> {
        self.inner.policies.get(session)
    }

    /// The most output text one execution returns (`ASSISTD_SANDBOX_MAX_OUTPUT`).
    pub fn max_output(&self) -> usize {
        self.inner.cfg.max_output as usize
    }

    /// Gives the session's sandboxes `mb` MiB of memory instead of the configured limit, from
    /// the next sandbox it is given (a live one keeps its limit). Forgotten by `drop_session`.
    pub fn set_memory_mb(&self, session: &str, mb: u64) {
        if let Ok(mut limits) = self.inner.memory_mb.lock() {
            if mb == self.inner.cfg.memory_mb {
                limits.remove(session);
            } else {
                limits.insert(session.to_owned(), mb);
            }
        }
    }

    /// Mounts `skills` under /mnt/skills in the session's sandboxes, from the next sandbox it
    /// takes (a live one keeps what it has). Their bundles must be in [`Self::skill_cache`].
    /// Forgotten by `drop_session`.
    pub fn set_skills(&self, session: &str, skills: Vec<SkillMount>) {
        if let Ok(mut all) = self.inner.skills.lock() {
            if skills.is_empty() {
                all.remove(session);
            } else {
                all.insert(session.to_owned(), skills);
            }
        }
    }

    /// Makes the session's sandboxes writable boxes (E2B's), from the next sandbox it is
    /// given, whose checkpoints keep the whole box (see `checkpoint::whole_box`), not only
    /// its volume. Forgotten by `drop_session`.
    pub fn use_box(&self, session: &str) {
        if let Ok(mut boxes) = self.inner.boxes.lock() {
            if !boxes.contains(session) {
                boxes.insert(session.to_owned());
            }
        }
    }

    /// Whether the session's mounts are known here already.
    pub fn has_skills(&self, session: &str) -> bool {
        self.inner
            .skills
            .lock()
            .is_ok_and(|all| all.contains_key(session))
    }

    /// The host's skill bundles.
    pub fn skill_cache(&self) -> &SkillCache {
        &self.inner.skill_cache
    }

    /// Whether the session's sandboxes are writable boxes.
    pub fn is_box(&self, session: &str) -> bool {
        self.inner
            .boxes
            .lock()
            .is_ok_and(|boxes| boxes.contains(session))
    }

    /// Deletes a file under /mnt/data (absolute, or relative to it), starting the session
    /// (restored from its checkpoint) if it is not live here. A missing file is no error.
    pub async fn remove_file(&self, session: &str, path: &str) -> Result<(), SandboxError> {
        let path = data_path(path)?;
        let handle = self.handle(session, true)?;
        let mut slot = lock(handle.slot, &handle.removed).await?;
        let sandbox = self.inner.sandbox(&mut slot).await?;
        sandbox
            .container
            .exec_piped(
                &self.inner.docker,
                &["rm", "-f", "--", &path],
                None,
                4096,
                0,
            )
            .await?;
        handle.changed.store(true, Ordering::SeqCst);
        drop(slot);
        self.touch(session);
        Ok(())
    }

    /// Removes the thread's sandbox and deletes its checkpoint (when the thread is deleted).
    /// A running execution is abandoned.
    pub async fn drop_session(&self, session: &str) {
        self.end_session(session, false).await;
        if let Ok(mut limits) = self.inner.memory_mb.lock() {
            limits.remove(session);
        }
        self.inner.policies.set(session, None);
        if let Ok(mut skills) = self.inner.skills.lock() {
            skills.remove(session);
        }
        if let Ok(mut boxes) = self.inner.boxes.lock() {
            boxes.remove(session);
        }
        if let Some(checkpoints) = &self.inner.checkpoints {
            if let Err(e) = checkpoints.forget(session).await {
                tracing::warn!(session, error = %e, "deleting a sandbox checkpoint");
            }
        }
    }

    /// Checkpoints the thread's live session now if it changed since its last checkpoint
    /// (e.g. before handing the thread to another replica). Returns the checkpoint's size, or
    /// None when there was nothing to save.
    pub async fn checkpoint(&self, session: &str) -> Result<Option<u64>, SandboxError> {
        let Ok(handle) = self.handle(session, false) else {
            return Ok(None);
        };
        let mut slot = lock(handle.slot, &handle.removed).await?;
        self.inner
            .save(&mut slot, &handle.changed, false)
            .await
            .map_err(|e| SandboxError::Unavailable(format!("checkpoint failed: {e}")))
    }

    /// Ends the thread's session as an idle expiry would: checkpointed if it changed, then
    /// removed. The thread's next use restores it (here or on another replica).
    pub async fn release(&self, session: &str) {
        self.end_session(session, true).await;
    }

    /// Takes the session out of the table and retires it, checkpointed first if asked.
    async fn end_session(&self, session: &str, checkpoint: bool) {
        let entry = self
            .inner
            .sessions
            .lock()
            .ok()
            .and_then(|mut sessions| sessions.remove(session));
        if let Some(entry) = entry {
            self.inner.retiring(session, &entry);
            retire(self.inner.clone(), session.to_owned(), entry, checkpoint).await;
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
            pool: self.inner.pool.stats(),
        }
    }

    /// Stops the background tasks, checkpoints the sessions that changed since their last
    /// checkpoint, and removes every sandbox of this process.
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
        let entries: Vec<(String, Entry)> = inner
            .sessions
            .lock()
            .map(|mut s| s.drain().collect())
            .unwrap_or_default();
        futures::stream::iter(entries)
            .map(|(session, entry)| retire(inner.clone(), session, entry, true))
            .buffer_unordered(SHUTDOWN_CHECKPOINTS)
            .collect::<Vec<()>>()
            .await;
        // Sessions retired in the background (a pause): their sandboxes are gone once their
        // slots are let go.
        let retiring: Vec<_> = inner
            .retiring
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        for slot in retiring {
            drop(slot.lock().await);
        }
        inner.pool.drain().await;
        inner.box_pool.drain().await;
        // Whatever a cancelled launch left half-made.
        let worker = &inner.owner.worker;
        if let Err(e) = container::remove_labelled(&inner.docker, LABEL_WORKER, worker).await {
            tracing::warn!(error = %e, "sweeping sandboxes at shutdown");
        }
        inner.owner_stop.cancel();
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
            return Ok(entry.handle());
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
                inner.retiring(&victim, &entry);
                tokio::spawn(retire(inner.clone(), victim, entry, true));
            }
        }
        let entry = Entry {
            slot: Arc::new(tokio::sync::Mutex::new(Slot::new(session))),
            last_used: Instant::now(),
            removed: CancellationToken::new(),
            busy: Arc::new(AtomicUsize::new(0)),
            changed: Arc::new(AtomicBool::new(false)),
        };
        let handle = entry.handle();
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
                    let expired: Vec<(String, Entry)> = stale
                        .into_iter()
                        .filter_map(|key| sessions.remove_entry(&key))
                        .collect();
                    for (session, entry) in &expired {
                        self.inner.retiring(session, entry);
                    }
                    expired
                }
                Err(_) => Vec::new(),
            };
            for (session, entry) in expired {
                self.inner.expired_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session, "removing idle sandbox");
                tokio::spawn(retire(self.inner.clone(), session, entry, true));
            }
        }
    }

    /// Every `every`, checkpoints the sessions that changed since their last checkpoint and
    /// are not in use, one at a time; a session whose lock is taken is left for the next round.
    async fn checkpoint_periodically(self, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let due: Vec<Due> = match self.inner.sessions.lock() {
                Ok(sessions) => sessions
                    .values()
                    .filter(|e| e.changed.load(Ordering::SeqCst) && !e.is_busy())
                    .map(|e| Due {
                        slot: e.slot.clone(),
                        removed: e.removed.clone(),
                        busy: e.busy.clone(),
                        changed: e.changed.clone(),
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            for due in due {
                if stop.is_cancelled() {
                    return;
                }
                let _busy = Busy::new(&due.busy);
                let Ok(mut slot) = due.slot.try_lock_owned() else {
                    continue;
                };
                if due.removed.is_cancelled() {
                    continue;
                }
                let _ = self.inner.save(&mut slot, &due.changed, false).await;
            }
        }
    }
}

/// A session the periodic checkpoint will look at.
struct Due {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    removed: CancellationToken,
    busy: Arc<AtomicUsize>,
    changed: Arc<AtomicBool>,
}

/// Deletes checkpoints past their retention, now and then, until `stop`.
async fn sweep_checkpoints(checkpoints: Checkpoints, stop: CancellationToken) {
    let every = (checkpoints.retain() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        match checkpoints.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "deleted sandbox checkpoints past retention"),
            Err(e) => tracing::warn!(error = %e, "sweeping sandbox checkpoints"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

impl Inner {
    /// Removes the containers (and volumes) of this deployment whose worker stopped; at start
    /// it says how many it found and why it removed or left each one.
    async fn sweep_orphans(&self, at_start: bool) -> Result<(), SandboxError> {
        let found = container::list_managed(&self.docker).await?;
        let workers = found
            .iter()
            .filter_map(|c| c.labels.get(LABEL_WORKER).cloned())
            .collect();
        let liveness = match self.owner.liveness(&workers).await {
            Ok(liveness) => liveness,
            Err(e) => {
                tracing::warn!(error = %e, found = found.len(), "cannot tell which sandbox owners are alive; leaving every container");
                return Ok(());
            }
        };
        if at_start {
            tracing::info!(
                found = found.len(),
                instance = self.owner.instance,
                deployment = self.owner.deployment.as_deref().unwrap_or("(no database)"),
                worker = self.owner.worker,
                "sandbox containers and volumes on the Docker engine at start"
            );
        }
        let mut removed = 0;
        let mut removals = Vec::new();
        for item in &found {
            let kind = if item.volume { "volume" } else { "container" };
            match self.owner.judge(&item.labels, &liveness) {
                Verdict::Remove(why) => {
                    tracing::info!(name = item.name, kind, why, "removing a sandbox");
                    removed += 1;
                    removals.push(container::remove_by_name(&self.docker, &item.name));
                }
                Verdict::Leave(why) if at_start => {
                    tracing::info!(name = item.name, kind, why, "leaving a sandbox");
                }
                Verdict::Leave(_) => {}
            }
        }
        futures::future::join_all(removals).await;
        if at_start {
            tracing::info!(
                found = found.len(),
                removed,
                left = found.len() - removed,
                "sandbox sweep at start done"
            );
        }
        Ok(())
    }

    /// The slot's sandbox, taken from the pool on first use and restored from the thread's
    /// checkpoint if it has one.
    async fn sandbox<'a>(&self, slot: &'a mut Slot) -> Result<&'a mut Sandbox, SandboxError> {
        if slot.sandbox.is_none() {
            let pool = match self.boxes.lock() {
                Ok(boxes) if boxes.contains(&slot.thread) => &self.box_pool,
                _ => &self.pool,
            };
            let mut sandbox = pool.take().await?;
            let memory_mb = self
                .memory_mb
                .lock()
                .ok()
                .and_then(|limits| limits.get(&slot.thread).copied());
            if let Some(mb) = memory_mb {
                // A warm sandbox made with the default limit, raised (or lowered) in place.
                if let Err(e) = sandbox.container.set_memory_mb(&self.docker, mb).await {
                    sandbox.destroy(&self.docker).await;
                    return Err(e);
                }
            }
            if let Err(e) = self
                .give_network(&slot.thread, &sandbox.container.name.clone())
                .await
            {
                sandbox.destroy(&self.docker).await;
                return Err(e);
            }
            self.give_placeholders(&slot.thread, &mut sandbox).await;

            let skills = self
                .skills
                .lock()
                .ok()
                .and_then(|all| all.get(&slot.thread).cloned());
            let installer = sandbox.installer.take();
            if let Some(skills) = skills {
                let container = &sandbox.container;
                let installed = super::skills::install(
                    &self.docker,
                    container,
                    installer,
                    &self.skill_cache,
                    self.cfg.skills_host_dir.as_deref(),
                    &skills,
                )
                .await;
                if let Err(e) = installed {
                    sandbox.destroy(&self.docker).await;
                    return Err(e);
                }
            }
            if let Some(checkpoints) = &self.checkpoints {
                self.wait_retiring(&slot.thread).await;
                let restored = self.restore(checkpoints, &slot.thread, &mut sandbox).await;
                slot.restored = restored.is_some();
                slot.in_checkpoint = matches!(restored, Some(Ok(_)));
                slot.restore_note = restored.and_then(|r| r.unwrap_or_else(Some));
            }
            slot.sandbox = Some(sandbox);
        }
        slot.sandbox
            .as_mut()
            .ok_or_else(|| SandboxError::Unavailable("no sandbox".into()))
    }

    /// Puts the session's network policy on a sandbox it takes: attaches it to the egress
    /// proxy, or (with Docker's network unfiltered) disconnects it when the policy is
    /// `disabled`.
    async fn give_network(&self, session: &str, name: &str) -> Result<(), SandboxError> {
        match (&self.ceiling, &self.egress) {
            (Ceiling::Proxy(_), Some(egress)) => {
                let cell = self.policies.cell(session, self.ceiling.widest());
                egress::attach(egress, name, cell)
                    .map_err(|e| SandboxError::Unavailable(format!("egress proxy: {e}")))
            }
            (Ceiling::Direct(mode), _)
                if self.policies.get(session) == Some(EgressPolicy::Disabled) =>
            {
                let options = bollard::models::NetworkDisconnectRequest {
                    container: name.to_owned(),
                    force: Some(true),
                };
                self.docker.disconnect_network(mode, options).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sets each domain secret's name to its placeholder in the interpreter's environment
    /// (the value itself never enters the sandbox: the proxy puts it in on the way out).
    async fn give_placeholders(&self, session: &str, sandbox: &mut Sandbox) {
        let Some(EgressPolicy::Allowlist { secrets, .. }) = self.policies.get(session) else {
            return;
        };
        let Some(driver) = sandbox.driver.as_mut() else {
            return;
        };
        if secrets.is_empty() {
            return;
        }
        let vars: HashMap<&str, String> = secrets
            .iter()
            .map(|s| (s.name.as_str(), s.placeholder()))
            .collect();
        let code = format!(
            "import os as __o\n__o.environ.update({})\ndel __o",
            serde_json::json!(vars)
        );
        let limits = Limits {
            timeout: Duration::from_secs(10),
            max_output: 4096,
            wait: Duration::from_secs(15),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let cancel = CancellationToken::new();
        if let Err(e) = driver.exec(&id, &code, limits, &cancel, None, None).await {
            tracing::warn!(session, error = ?e, "setting domain secret placeholders");
        }
    }

    async fn exec_locked(
        &self,
        slot: &mut Slot,
        code: &str,
        language: Option<&str>,
        cancel: &CancellationToken,
        sink: Option<&StreamSink>,
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
            ..
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
        let limits = Limits {
            timeout,
            max_output: self.cfg.max_output,
            wait: timeout + TIMEOUT_GRACE,
        };
        let reply = driver.exec(&id, code, limits, cancel, sink, language).await;
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
                ..
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

    /// Puts the thread's checkpoint (if any) into a fresh sandbox. None: there was none;
    /// `Ok(note)`: restored, with the note for the model if there is anything to tell it;
    /// `Err(note)`: the checkpoint could not be used.
    async fn restore(
        &self,
        checkpoints: &Checkpoints,
        thread: &str,
        sandbox: &mut Sandbox,
    ) -> Option<Result<Option<String>, String>> {
        let started = std::time::Instant::now();
        let (manifest, bytes, blobs) = match checkpoints.load(thread).await {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(session = thread, error = %e, "loading a sandbox checkpoint");
                return Some(Err(checkpoint::failed_note("it could not be read")));
            }
        };
        let Some(driver) = sandbox.driver.as_mut() else {
            return Some(Err(checkpoint::failed_note(
                "the new sandbox has no Python process",
            )));
        };
        match checkpoint::put_back(&self.docker, &sandbox.container, driver, manifest, blobs).await
        {
            Ok(restored) => {
                // The one line a silent restore leaves: here, not in the code's output.
                tracing::info!(
                    session = thread,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    taken_at_end = restored.manifest.at_end,
                    "restored a sandbox checkpoint"
                );
                Some(Ok(restored.note()))
            }
            Err(e) => {
                tracing::warn!(session = thread, error = %e, "restoring a sandbox checkpoint");
                Some(Err(checkpoint::failed_note(&format!("{e:#}"))))
            }
        }
    }

    /// Checkpoints the slot's sandbox if it changed since its last checkpoint; the size saved,
    /// None when there was nothing to do. Failures are logged and leave the session changed.
    /// `at_end`: the session ends with this checkpoint (nothing will run after it).
    async fn save(
        &self,
        slot: &mut Slot,
        changed: &AtomicBool,
        at_end: bool,
    ) -> anyhow::Result<Option<u64>> {
        let Some(checkpoints) = &self.checkpoints else {
            return Ok(None);
        };
        let Some(sandbox) = slot.sandbox.as_mut() else {
            return Ok(None);
        };
        if !changed.swap(false, Ordering::SeqCst) {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let max_data = (self.cfg.data_size_mb + 16) * 1024 * 1024;
        // A box's layer is held to the disk quota (checked now and then, so some slack).
        let max_layer = (self.cfg.disk_mb + 16) * 1024 * 1024;
        // A box's checkpoints keep the whole box, not only its volume.
        let whole_box = self
            .boxes
            .lock()
            .is_ok_and(|boxes| boxes.contains(&slot.thread));
        let saved = match checkpoints.begin(&slot.thread, whole_box).await {
            Ok(mut draft) => {
                let taken = checkpoint::take(
                    &self.docker,
                    &sandbox.container,
                    sandbox.driver.as_mut(),
                    (
                        &mut draft.out,
                        draft.box_out.as_mut().map(|o| (o, max_layer)),
                    ),
                    max_data,
                    at_end,
                )
                .await;
                match taken {
                    Ok(manifest) => checkpoints.commit(&slot.thread, draft, &manifest).await,
                    Err(e) => {
                        draft.abort().await;
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        };
        match saved {
            Ok(bytes) => {
                slot.in_checkpoint = true;
                tracing::info!(
                    session = slot.thread,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpointed a sandbox"
                );
                Ok(Some(bytes))
            }
            Err(e) => {
                changed.store(true, Ordering::SeqCst);
                tracing::warn!(session = slot.thread, error = %e, "checkpointing a sandbox");
                Err(e)
            }
        }
    }

    /// Marks a session taken out of the table as on its way out (see `retiring`).
    fn retiring(&self, session: &str, entry: &Entry) {
        if let Ok(mut retiring) = self.retiring.lock() {
            retiring.insert(session.to_owned(), entry.slot.clone());
        }
    }

    async fn wait_retiring(&self, thread: &str) {
        let old = self
            .retiring
            .lock()
            .ok()
            .and_then(|retiring| retiring.get(thread).cloned());
        if let Some(old) = old {
            drop(old.lock().await);
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

/// Removes a session's sandbox once the session is out of the table (and registered with
/// `Inner::retiring`), checkpointing it first when `save` is set and it changed since its last
/// checkpoint. Work queued on it gives up; the clean-up after its last cell is let finish.
async fn retire(inner: Arc<Inner>, session: String, entry: Entry, save: bool) {
    entry.removed.cancel();
    let mut slot = entry.slot.clone().lock_owned().await;
    if save {
        if entry.changed.load(Ordering::SeqCst) {
            let _ = inner.save(&mut slot, &entry.changed, true).await;
        } else if let Some(checkpoints) = &inner.checkpoints {
            // Unchanged since its checkpoint: retention counts from now, and if that
            // checkpoint is this session's state, it is now the session's end.
            if let Err(e) = checkpoints.touch(&session, slot.in_checkpoint).await {
                tracing::warn!(session, error = %e, "marking a sandbox checkpoint used");
            }
        }
    }
    if let Some(sandbox) = slot.sandbox.take() {
        sandbox.destroy(&inner.docker).await;
    }
    drop(slot);
    if let Ok(mut retiring) = inner.retiring.lock() {
        if retiring
            .get(&session)
            .is_some_and(|s| Arc::ptr_eq(s, &entry.slot))
        {
            retiring.remove(&session);
        }
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
