//! Sandboxes (a container plus its running driver) and the pool of warm ones.
//!
//! Starting a container and importing numpy/pandas/matplotlib takes about a second, so a few
//! are kept ready: a thread's first execution then costs only a round trip.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::container::Container;
use super::driver::Driver;
use super::{SandboxConfig, SandboxError};

/// How long a new driver may take to import its libraries (slow when the host is busy).
pub(crate) const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A container and the driver running in it. `driver` is None only after a failed restart.
pub(crate) struct Sandbox {
    pub container: Container,
    pub driver: Option<Driver>,
}

impl Sandbox {
    pub async fn launch(docker: &Docker, cfg: &SandboxConfig) -> Result<Sandbox, SandboxError> {
        let container = Container::create(docker, cfg).await?;
        match Driver::start(docker, &container, DRIVER_READY_TIMEOUT).await {
            Ok(driver) => Ok(Sandbox {
                container,
                driver: Some(driver),
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

pub(crate) struct Pool {
    docker: Docker,
    cfg: Arc<SandboxConfig>,
    ready: Mutex<VecDeque<Sandbox>>,
    /// Wakes the filler when a sandbox was taken.
    taken: Notify,
}

impl Pool {
    pub fn new(docker: Docker, cfg: Arc<SandboxConfig>) -> Pool {
        Pool {
            docker,
            cfg,
            ready: Mutex::new(VecDeque::new()),
            taken: Notify::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ready.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// A warm sandbox if one is ready, else a newly launched one.
    pub async fn take(&self) -> Result<Sandbox, SandboxError> {
        loop {
            let warm = self.ready.lock().ok().and_then(|mut r| r.pop_front());
            self.taken.notify_one();
            match warm {
                Some(sandbox) if sandbox.driver.as_ref().is_some_and(Driver::is_alive) => {
                    return Ok(sandbox)
                }
                Some(dead) => dead.destroy(&self.docker).await,
                None => return Sandbox::launch(&self.docker, &self.cfg).await,
            }
        }
    }

    /// Keeps the pool at its configured size until `stop` fires. Failures (Docker down, image
    /// not built yet) are retried with backoff so the server can start before its sandboxes can.
    pub async fn fill(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            while self.len() < self.cfg.pool_size {
                let launched = tokio::select! {
                    launched = Sandbox::launch(&self.docker, &self.cfg) => launched,
                    // A half-made container is left to the shutdown sweep by label.
                    _ = stop.cancelled() => return,
                };
                match launched {
                    Ok(sandbox) => {
                        backoff = Duration::from_secs(1);
                        if let Ok(mut ready) = self.ready.lock() {
                            ready.push_back(sandbox);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "could not warm a sandbox");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
            tokio::select! {
                _ = self.taken.notified() => {}
                // Also look again now and then: a pooled driver may have died.
                _ = tokio::time::sleep(Duration::from_secs(30)) => self.drop_dead().await,
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn drop_dead(&self) {
        let dead: Vec<Sandbox> = match self.ready.lock() {
            Ok(mut ready) => {
                let (alive, dead): (Vec<Sandbox>, Vec<Sandbox>) = ready
                    .drain(..)
                    .partition(|s| s.driver.as_ref().is_some_and(Driver::is_alive));
                ready.extend(alive);
                dead
            }
            Err(_) => Vec::new(),
        };
        for sandbox in dead {
            sandbox.destroy(&self.docker).await;
        }
    }

    /// Removes every warm sandbox (at shutdown).
    pub async fn drain(&self) {
        let all: Vec<Sandbox> = match self.ready.lock() {
            Ok(mut ready) => ready.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for sandbox in all {
            sandbox.destroy(&self.docker).await;
        }
    }
}
