//! Per-thread stateful Python sandboxes for `code_interpreter`, one Docker container each.
//!
//! A thread's first execution takes a warm container from the pool (or starts one), and the
//! container stays with the thread until it sits idle too long, is evicted to make room, is
//! dropped with the thread, or the server shuts down. Inside, a long-lived Python driver keeps
//! the variables between executions; see `driver.rs` for the wire protocol.
//!
//! A session that ends for a routine reason (idle, evicted, graceful shutdown) is checkpointed
//! first, and periodically while in use: /mnt/data and the variables that pickle go to the
//! blob store, and the thread's next session restores them (see `checkpoint.rs`).
//!
//! Rules: sandboxes are removed at shutdown; at start and every few seconds, those of this
//! deployment whose owning worker stopped are removed, and no others (see `owner.rs`). Files in /mnt/data live
//! as long as the sandbox, even across interpreter restarts. Processes started by a cell do
//! not outlive it. Code runs as uid 10001 with no capabilities, no network (by default), a
//! read-only root filesystem and memory, CPU and pid limits. The container's main process is
//! a small root guardian holding only CAP_KILL, which the manager signals through the daemon
//! to stop runaway processes (see `container.rs`).

mod checkpoint;
pub mod commands;
mod config;
mod container;
mod driver;
pub mod egress;
mod manager;
mod output;
mod owner;
mod pool;
pub mod shell;
mod skills;
mod tar_scan;
pub mod writable;

pub use checkpoint::Checkpoints;
pub use config::SandboxConfig;
pub use driver::{StreamSink, Streamed};
pub use manager::{SandboxManager, SandboxStats};
pub use output::{ChangedFile, ExecError, ExecOutput};
pub use pool::PoolStats;
pub use skills::{SkillCache, SkillMount, SKILLS_DIR};
pub use writable::{ExecUser, Kind};

/// Why a sandbox operation failed. Failures of user code are not errors: they come back in
/// [`ExecOutput::error`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox backend cannot serve now (Docker down, image missing, shutting down).
    #[error("sandbox unavailable: {0}")]
    Unavailable(String),
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// The driver inside the container said something we do not understand.
    #[error("sandbox protocol: {0}")]
    Protocol(String),
    /// A path outside /mnt/data, or an unusable file name.
    #[error("invalid sandbox path: {0}")]
    InvalidPath(String),
    #[error("file {path} is {size} bytes, more than the {max} allowed")]
    FileTooLarge { path: String, size: u64, max: u64 },
    /// The caller cancelled the execution; the code was interrupted.
    #[error("execution cancelled")]
    Cancelled,
}
