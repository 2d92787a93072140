//! Sandboxes (a container plus its running driver) and the pool of warm ones.
//!
//! Starting a container and importing numpy/pandas/matplotlib takes about a second, so a few
//! are kept ready: a thread's first execution then costs only a round trip. How many follows
//! demand: the pool aims at what the observed rate of new sessions takes during one launch
//! (twice that, for bursts), between `ASSISTD_SANDBOX_POOL_SIZE` and `ASSISTD_SANDBOX_POOL_MAX`,
//! refilled by several launches at once, and shrinks back when sessions stop coming. A session
//! that finds the pool empty launches a sandbox of its own at once and takes whichever is ready
//! first, that one or the next warm one; the other goes to the pool. Launches under way are
//! bounded by the host's cores ([`launch_limit`]): past that, dozens of Python processes
//! importing numpy at once on a small host each take a minute, and none is ready in time; a
//! session beyond the bound takes the next sandbox any launch brings, in turn.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::container::Container;
use super::driver::Driver;
use super::skills::Installer;
use super::writable::Kind;
use super::{SandboxConfig, SandboxError};

/// How long a new driver may take to start IPython (slow when the host is busy).
pub(crate) const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A container and the driver running in it. `driver` is None only after a failed restart.
pub(crate) struct Sandbox {
    pub container: Container,
    pub driver: Option<Driver>,
    /// Waits to write the session's skills into /mnt/skills; taken when a session starts.
    pub installer: Option<Installer>,
}

impl Sandbox {
    pub async fn launch(
        docker: &Docker,
        cfg: &SandboxConfig,
        labels: &HashMap<String, String>,
        kind: Kind,
    ) -> Result<Sandbox, SandboxError> {
        let container = Container::create(docker, cfg, labels, kind).await?;
        // Started beside the driver, whose imports take far longer; without one, a session
        // with skills starts its own.
        let installer = async {
            match cfg.skills_host_dir {
                Some(_) => None,
                None => Installer::start(docker, &container).await.ok(),
            }
        };
        let (driver, installer) = tokio::join!(
            Driver::start(docker, &container, DRIVER_READY_TIMEOUT),
            installer
        );
        match driver {
            Ok(driver) => Ok(Sandbox {
                container,
                driver: Some(driver),
                installer,
            }),
            Err(e) => {
                container.remove(docker).await;
                Err(e)
            }
        }
    }

    /// Kills everything the code started and starts a fresh driver; /mnt/data is untouched.
    pub async fn restart_driver(&mut self, docker: &Docker) -> Result<(), SandboxError> {
        self.driver = None;
        self.container.kill_user_processes(docker).await?;
        self.driver = Some(Driver::start(docker, &self.container, DRIVER_READY_TIMEOUT).await?);
        Ok(())
    }

    pub async fn destroy(self, docker: &Docker) {
        drop(self.driver);
        self.container.remove(docker).await;
    }
}

/// Launches under way at once, at most (refills and sessions' own): two per core, at least 4.
pub(crate) fn launch_limit() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).max(4)
}
/// How far back new sessions count towards the rate.
const RATE_WINDOW: Duration = Duration::from_secs(30);
/// The shortest span a rate is measured over: a lone new session is not a burst.
const MIN_SPAN: Duration = Duration::from_secs(2);
/// A warm sandbox beyond the target is removed at most this often.
const SHRINK_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Pool {
    /// What its sandboxes are made for.
    kind: Kind,
    /// The fewest warm sandboxes kept.
    floor: usize,
    docker: Docker,
    cfg: Arc<SandboxConfig>,
    labels: HashMap<String, String>,
    ready: Mutex<Ready>,
    /// One permit per ready sandbox: a session waiting for one is served in turn.
    available: Semaphore,
    /// Launches under way: refills, and sessions' own on a miss (those join the pool when
    /// the session took a warm one first).
    launching: AtomicUsize,
    /// Sessions waiting for a sandbox with no launch of their own (the launch limit was reached).
    waiting: AtomicUsize,
    limit: usize,
    demand: Mutex<Demand>,
    /// Wakes the filler (a sandbox was taken, a launch ended).
    wake: Notify,
    launches: TaskTracker,
    stop: CancellationToken,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Ready {
    sandboxes: VecDeque<Sandbox>,
    /// Shut down: what arrives now is removed.
    closed: bool,
}

/// New sessions lately and how long a launch takes, for the pool's target.
struct Demand {
    takes: VecDeque<Instant>,
    /// Seconds per launch, a moving average.
    launch_secs: f64,
    /// Refills fail (Docker down, image missing): none before this.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Demand {
    /// The warm sandboxes wanted now: what the rate of new sessions takes during two
    /// launches, within `floor..=cap`.
    fn target(&mut self, now: Instant, floor: usize, cap: usize) -> usize {
        while self
            .takes
            .front()
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
        {
            self.takes.pop_front();
        }
        let Some(first) = self.takes.front() else {
            return floor;
        };
        let span = now.duration_since(*first).max(MIN_SPAN).as_secs_f64();
        let rate = self.takes.len() as f64 / span;
        let wanted = (2.0 * rate * self.launch_secs).ceil() as usize;
        wanted.clamp(floor, cap.max(floor))
    }
}

/// Pool figures for /metrics and benches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    pub ready: usize,
    pub target: usize,
    pub launching: usize,
    /// Sessions that found a warm sandbox.
    pub hits: u64,
    /// Sessions that had to wait for a launch.
    pub misses: u64,
}

impl Pool {
    /// A pool of `kind` sandboxes keeping at least `floor` warm.
    pub fn new(
        docker: Docker,
        cfg: Arc<SandboxConfig>,
        labels: HashMap<String, String>,
        stop: CancellationToken,
        kind: Kind,
        floor: usize,
    ) -> Pool {
        Pool {
            kind,
            floor,
            docker,
            cfg,
            labels,
            ready: Mutex::new(Ready {
                sandboxes: VecDeque::new(),
                closed: false,
            }),
            available: Semaphore::new(0),
            launching: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            limit: launch_limit(),
            demand: Mutex::new(Demand {
                takes: VecDeque::new(),
                launch_secs: 1.5,
                retry_at: None,
                backoff: Duration::from_secs(1),
            }),
            wake: Notify::new(),
            launches: TaskTracker::new(),
            stop,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.ready.lock().map(|r| r.sandboxes.len()).unwrap_or(0)
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            ready: self.len(),
            target: self.target(),
            launching: self.launching.load(Ordering::SeqCst),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    fn target(&self) -> usize {
        let (floor, cap) = (self.floor, self.cfg.pool_max);
        self.demand
            .lock()
            .map(|mut d| d.target(Instant::now(), floor, cap))
            .unwrap_or(floor)
    }

    /// A warm sandbox if one is ready, else the first of a launch of its own and the next
    /// warm one.
    pub async fn take(self: &Arc<Self>) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        if let Ok(mut demand) = self.demand.lock() {
            demand.takes.push_back(started);
        }
        self.wake.notify_one();
        while let Ok(permit) = self.available.try_acquire() {
            permit.forget();
            if let Some(sandbox) = self.pop_alive().await {
                self.hits.fetch_add(1, Ordering::Relaxed);
                crate::metrics::sandbox_pool_take(true, started.elapsed());
                return Ok(sandbox);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut own = None;
        if self.launching.load(Ordering::SeqCst) < self.limit {
            let (tx, rx) = oneshot::channel();
            self.spawn_launch(Some(tx));
            own = Some(rx);
        } else {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            self.wake.notify_one();
        }
        let unserved = own.is_none();
        let taken = loop {
            let launched = async {
                match own.as_mut() {
                    Some(rx) => rx.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                permit = self.available.acquire() => {
                    let Ok(permit) = permit else {
                        break Err(SandboxError::Unavailable("shutting down".into()));
                    };
                    permit.forget();
                    if let Some(sandbox) = self.pop_alive().await {
                        // Ours may have arrived meanwhile: it is warm now, for the next one.
                        if let Some(mut own) = own.take() {
                            own.close();
                            if let Ok(Ok(spare)) = own.try_recv() {
                                self.put(spare).await;
                            }
                        }
                        break Ok(sandbox);
                    }
                }
                launched = launched => break launched.unwrap_or_else(|_| {
                    Err(SandboxError::Unavailable("the sandbox launch was abandoned".into()))
                }),
            }
        };
        if unserved {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        crate::metrics::sandbox_pool_take(false, started.elapsed());
        taken
    }

    /// The next ready sandbox (its permit already taken), None if it had died.
    async fn pop_alive(&self) -> Option<Sandbox> {
        let next = self
            .ready
            .lock()
            .ok()
            .and_then(|mut r| r.sandboxes.pop_front());
        match next {
            Some(sandbox) if sandbox.driver.as_ref().is_some_and(Driver::is_alive) => Some(sandbox),
            Some(dead) => {
                dead.destroy(&self.docker).await;
                self.wake.notify_one();
                None
            }
            None => None,
        }
    }

    /// Adds a warm sandbox (or removes it, after shutdown).
    async fn put(&self, sandbox: Sandbox) {
        let refused = match self.ready.lock() {
            Ok(mut ready) if !ready.closed => {
                ready.sandboxes.push_back(sandbox);
                None
            }
            _ => Some(sandbox),
        };
        match refused {
            Some(sandbox) => sandbox.destroy(&self.docker).await,
            None => self.available.add_permits(1),
        }
    }

    /// Launches a sandbox in a task of its own: for `session` when given (which may have
    /// gone: then to the pool), else to refill the pool.
    fn spawn_launch(
        self: &Arc<Self>,
        session: Option<oneshot::Sender<Result<Sandbox, SandboxError>>>,
    ) {
        let pool = self.clone();
        let refill = session.is_none();
        self.launching.fetch_add(1, Ordering::SeqCst);
        self.launches.spawn(async move {
            let started = Instant::now();
            let launched = tokio::select! {
                launched = Sandbox::launch(&pool.docker, &pool.cfg, &pool.labels, pool.kind) => launched,
                // A half-made container is left to the shutdown sweep by label.
                _ = pool.stop.cancelled() => Err(SandboxError::Unavailable("shutting down".into())),
            };
            pool.launched(started.elapsed(), refill, launched.is_ok());
            match (session, launched) {
                (Some(session), launched) => {
                    if let Err(Ok(sandbox)) = session.send(launched) {
                        pool.put(sandbox).await;
                    }
                }
                (None, Ok(sandbox)) => pool.put(sandbox).await,
                (None, Err(e)) => {
                    if !pool.stop.is_cancelled() {
                        tracing::warn!(error = %e, "could not warm a sandbox");
                    }
                }
            }
            pool.launching.fetch_sub(1, Ordering::SeqCst);
            pool.wake.notify_one();
        });
    }

    fn launched(&self, took: Duration, refill: bool, ok: bool) {
        let Ok(mut demand) = self.demand.lock() else {
            return;
        };
        if ok {
            demand.launch_secs = 0.7 * demand.launch_secs + 0.3 * took.as_secs_f64();
            demand.retry_at = None;
            demand.backoff = Duration::from_secs(1);
        } else if refill {
            let backoff = demand.backoff;
            demand.retry_at = Some(Instant::now() + backoff);
            demand.backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Keeps the pool at its target until `stop`. Failed refills are retried with backoff so
    /// the server can start before its sandboxes can.
    pub async fn fill(self: Arc<Self>) {
        let mut last_shrink = Instant::now();
        let mut last_check = Instant::now();
        loop {
            let target = self.target();
            let retry_at = self.demand.lock().ok().and_then(|d| d.retry_at);
            let may_launch = retry_at.is_none_or(|at| Instant::now() >= at);
            let ready = self.len();
            if may_launch {
                // Sessions waiting without a launch of their own: launch for them too.
                let wanted = target + self.waiting.load(Ordering::SeqCst);
                let mut coming = ready + self.launching.load(Ordering::SeqCst);
                while coming < wanted && self.launching.load(Ordering::SeqCst) < self.limit {
                    self.spawn_launch(None);
                    coming += 1;
                }
            }
            if ready > target && last_shrink.elapsed() >= SHRINK_EVERY {
                last_shrink = Instant::now();
                self.remove_one().await;
            }
            if last_check.elapsed() >= Duration::from_secs(30) {
                // A pooled driver may have died.
                last_check = Instant::now();
                self.drop_dead().await;
            }
            crate::metrics::sandbox_pool_target(target);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// Removes the longest-waiting warm sandbox (the pool is above its target).
    async fn remove_one(&self) {
        let Ok(permit) = self.available.try_acquire() else {
            return;
        };
        permit.forget();
        let oldest = self
            .ready
            .lock()
            .ok()
            .and_then(|mut r| r.sandboxes.pop_front());
        if let Some(sandbox) = oldest {
            sandbox.destroy(&self.docker).await;
        }
    }

    async fn drop_dead(&self) {
        let mut dead = Vec::new();
        for _ in 0..self.len() {
            let Ok(permit) = self.available.try_acquire() else {
                break;
            };
            permit.forget();
            let Some(sandbox) = self
                .ready
                .lock()
                .ok()
                .and_then(|mut r| r.sandboxes.pop_front())
            else {
                break;
            };
            if sandbox.driver.as_ref().is_some_and(Driver::is_alive) {
                self.put(sandbox).await;
            } else {
                dead.push(sandbox);
            }
        }
        for sandbox in dead {
            sandbox.destroy(&self.docker).await;
        }
    }

    /// Removes every warm sandbox once the launches under way have ended (at shutdown,
    /// after `stop`); sessions still waiting for one give up.
    pub async fn drain(&self) {
        self.launches.close();
        self.launches.wait().await;
        self.available.close();
        let all: Vec<Sandbox> = match self.ready.lock() {
            Ok(mut ready) => {
                ready.closed = true;
                ready.sandboxes.drain(..).collect()
            }
            Err(_) => Vec::new(),
        };
        futures::future::join_all(all.into_iter().map(|s| s.destroy(&self.docker))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(launch_secs: f64) -> Demand {
        Demand {
            takes: VecDeque::new(),
            launch_secs,
            retry_at: None,
            backoff: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_target_follows_the_rate_of_new_sessions_within_floor_and_cap() {
        let start = Instant::now();
        let mut d = demand(1.5);
        assert_eq!(d.target(start, 2, 16), 2, "no sessions: the floor");
        d.takes.push_back(start);
        assert_eq!(d.target(start, 2, 16), 2, "a lone session is no burst");
        // Two a second for ten seconds.
        for n in 1..20 {
            d.takes.push_back(start + Duration::from_millis(500 * n));
        }
        let now = start + Duration::from_secs(10);
        assert_eq!(d.target(now, 2, 16), 6, "2/s x 1.5 s x 2");
        assert_eq!(d.target(now, 2, 4), 4, "capped");
        assert_eq!(d.target(now, 8, 4), 8, "a cap below the floor is the floor");
        let idle = start + Duration::from_secs(45);
        assert_eq!(d.target(idle, 2, 16), 2, "idle: back to the floor");
        assert!(d.takes.is_empty());
    }
}
