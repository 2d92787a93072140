//! File operations on a sandbox session wherever it lives: put a file into its /mnt/data,
//! remove one, read one. A session lives on one replica (see `placement`); an operation
//! arriving at another replica is carried out by the holder, so code running there sees an
//! upload at once, and a read gets the bytes the code last wrote, not a stale restored copy.
//!
//! Why ask the holder rather than move the session here (checkpoint, release, restore): a
//! checkpoint keeps only what pickles, costs seconds, and would bounce the session between
//! replicas with every request; a file operation is small. The request goes to the holder on
//! `NOTIFY assistd_session_files` (see `relay::asks`), bytes travel through the blob store
//! (`transfers/<request id>`, removed once read), and the holder answers the same way. If the
//! holder stops holding the session or goes silent meanwhile, the operation is routed again
//! (to this replica when nobody holds the session then). A session nobody holds is opened
//! here for a put or a remove, and this replica takes its placement, so the next run comes
//! here too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::relay::asks;
use super::{placement, Executor, Inner};
use crate::blobs::Key;
use crate::sandbox::SandboxError;

/// How long past the sandbox's execution limit an asking replica waits for the holder's
/// answer (an operation waits behind a running cell).
const ANSWER_GRACE: Duration = Duration::from_secs(30);
/// How often the asking replica checks that the holder still holds the session.
const HOLDER_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    /// The bytes are at `Key::transfer(id)`.
    Put {
        filename: String,
    },
    Remove {
        path: String,
    },
    /// The holder leaves the bytes at `Key::transfer(id)`.
    Read {
        path: String,
        max_bytes: u64,
    },
    /// Checkpoint the session now (a snapshot), and with `end` free its sandbox (a pause).
    Checkpoint {
        end: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: String,
    from: String,
    session: String,
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Put { path: String },
    Removed,
    Read { found: bool },
    Checkpointed,
    Failed { invalid_path: bool, message: String },
}

enum Route {
    Here,
    Holder(String),
}

impl Executor {
    /// [`crate::sandbox::SandboxManager::put_file`] in the session, wherever it lives.
    pub async fn put_file(
        &self,
        session: &str,
        filename: &str,
        bytes: Bytes,
    ) -> Result<String, SandboxError> {
        loop {
            let holder = match self.destination(session, true).await? {
                Route::Here => return self.inner.sandbox.put_file(session, filename, &bytes).await,
                Route::Holder(holder) => holder,
            };
            let id = request_id();
            let transfer = Key::transfer(&id);
            self.inner
                .blobs
                .put(&transfer, bytes.clone())
                .await
                .map_err(unavailable)?;
            let op = Op::Put {
                filename: filename.to_string(),
            };
            let answer = self.ask(&holder, session, &id, op).await;
            self.drop_transfer(&transfer).await;
            match answer? {
                Some(Answer::Put { path }) => return Ok(path),
                Some(other) => return Err(failed(other)),
                None => continue,
            }
        }
    }

    /// [`crate::sandbox::SandboxManager::remove_file`] in the session, wherever it lives.
    pub async fn remove_file(&self, session: &str, path: &str) -> Result<(), SandboxError> {
        loop {
            let holder = match self.destination(session, true).await? {
                Route::Here => return self.inner.sandbox.remove_file(session, path).await,
                Route::Holder(holder) => holder,
            };
            let op = Op::Remove {
                path: path.to_string(),
            };
            match self.ask(&holder, session, &request_id(), op).await? {
                Some(Answer::Removed) => return Ok(()),
                Some(other) => return Err(failed(other)),
                None => continue,
            }
        }
    }

    /// [`crate::sandbox::SandboxManager::read_file`] in the session, wherever it is live: None
    /// when it is live nowhere or has no such file.
    pub async fn read_file(
        &self,
        session: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, SandboxError> {
        loop {
            let holder = match self.destination(session, false).await? {
                Route::Here => return self.inner.sandbox.read_file(session, path, max_bytes).await,
                Route::Holder(holder) => holder,
            };
            let id = request_id();
            let op = Op::Read {
                path: path.to_string(),
                max_bytes,
            };
            match self.ask(&holder, session, &id, op).await? {
                Some(Answer::Read { found: false }) => return Ok(None),
                Some(Answer::Read { found: true }) => {
                    let transfer = Key::transfer(&id);
                    let bytes = self.inner.blobs.read(&transfer).await;
                    self.drop_transfer(&transfer).await;
                    return Ok(Some(bytes.map_err(unavailable)?.to_vec()));
                }
                Some(other) => return Err(failed(other)),
                None => continue,
            }
        }
    }

    /// Checkpoints the session wherever it is live, changed or not, and with `end` frees its
    /// sandbox after (E2B's pause; without, a snapshot's fresh checkpoint). A session live
    /// nowhere is left as it is: its last checkpoint is its state.
    pub async fn checkpoint_session(&self, session: &str, end: bool) -> Result<(), SandboxError> {
        loop {
            let holder = match self.destination(session, false).await? {
                Route::Here => {
                    self.inner.sandbox.checkpoint_now(session, end).await?;
                    if end {
                        placement::forget(&self.inner.db, session)
                            .await
                            .map_err(unavailable)?;
                    }
                    return Ok(());
                }
                Route::Holder(holder) => holder,
            };
            let op = Op::Checkpoint { end };
            match self.ask(&holder, session, &request_id(), op).await? {
                Some(Answer::Checkpointed) => return Ok(()),
                Some(other) => return Err(failed(other)),
                None => continue,
            }
        }
    }

    /// Where the session's operation runs. `open`: it would open the session, so this
    /// replica takes the placement when nobody else holds the session.
    async fn destination(&self, session: &str, open: bool) -> Result<Route, SandboxError> {
        let (db, me) = (&self.inner.db, self.inner.worker_id.as_str());
        let holder = if open {
            placement::take_unless_held(db, session, me).await
        } else {
            placement::holder(db, session, me).await
        };
        Ok(match holder.map_err(unavailable)? {
            Some(holder) => Route::Holder(holder),
            None => Route::Here,
        })
    }

    /// Asks `holder` to carry out `op` and waits for its answer; None when the holder stopped
    /// holding the session before answering (the caller routes the operation again).
    async fn ask(
        &self,
        holder: &str,
        session: &str,
        id: &str,
        op: Op,
    ) -> Result<Option<Answer>, SandboxError> {
        let inner = &self.inner;
        let request = Request {
            id: id.to_string(),
            from: inner.worker_id.clone(),
            session: session.to_string(),
            op,
        };
        let body = serde_json::to_string(&request).map_err(unavailable)?;
        let mut waiting = inner.relay.asks().expect(id);
        notify(inner, &asks::ask_payload(holder, &body)).await?;
        let deadline = Instant::now() + inner.sandbox.exec_timeout() + ANSWER_GRACE;
        loop {
            tokio::select! {
                answer = &mut waiting.answer => {
                    let answer = answer.map_err(unavailable)?;
                    return serde_json::from_str(&answer).map(Some).map_err(unavailable);
                }
                _ = tokio::time::sleep(HOLDER_CHECK) => {}
            }
            let now_held = placement::holder(&inner.db, session, &inner.worker_id)
                .await
                .map_err(unavailable)?;
            if now_held.as_deref() != Some(holder) {
                return Ok(None);
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Unavailable(
                    "the replica holding the session did not answer".into(),
                ));
            }
        }
    }

    async fn drop_transfer(&self, key: &Key) {
        if let Err(e) = self.inner.blobs.remove(key).await {
            tracing::warn!(%key, error = %e, "removing a transfer blob");
        }
    }
}

/// On the holder: carries out another replica's request and answers it.
pub(super) async fn serve(inner: Arc<Inner>, body: String) {
    let request: Request = match serde_json::from_str(&body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "a malformed session file request");
            return;
        }
    };
    let answer = match carry_out(&inner, &request).await {
        Ok(answer) => answer,
        Err(e) => Answer::Failed {
            invalid_path: matches!(e, SandboxError::InvalidPath(_)),
            message: match e {
                SandboxError::InvalidPath(m) => m,
                other => other.to_string(),
            },
        },
    };
    let Ok(answer) = serde_json::to_string(&answer) else {
        return;
    };
    let payload = asks::answer_payload(&request.from, &request.id, &answer);
    if let Err(e) = notify(&inner, &payload).await {
        tracing::warn!(error = %e, "answering a session file request");
    }
}

async fn carry_out(inner: &Inner, request: &Request) -> Result<Answer, SandboxError> {
    let (sandbox, session) = (&inner.sandbox, request.session.as_str());
    // A container's session takes its memory limit, should it have to start here.
    if session.starts_with(crate::ids::CONTAINER) {
        crate::domain::containers::use_session(&inner.db, &inner.blobs, sandbox, session)
            .await
            .map_err(unavailable)?;
    }
    let transfer = Key::transfer(&request.id);
    match &request.op {
        Op::Put { filename } => {
            let bytes = inner.blobs.read(&transfer).await.map_err(unavailable)?;
            let path = sandbox.put_file(session, filename, &bytes).await?;
            Ok(Answer::Put { path })
        }
        Op::Remove { path } => {
            sandbox.remove_file(session, path).await?;
            Ok(Answer::Removed)
        }
        Op::Read { path, max_bytes } => {
            let Some(bytes) = sandbox.read_file(session, path, *max_bytes).await? else {
                return Ok(Answer::Read { found: false });
            };
            inner
                .blobs
                .put(&transfer, bytes)
                .await
                .map_err(unavailable)?;
            Ok(Answer::Read { found: true })
        }
        Op::Checkpoint { end } => {
            sandbox.checkpoint_now(session, *end).await?;
            if *end {
                placement::forget(&inner.db, session)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(Answer::Checkpointed)
        }
    }
}

async fn notify(inner: &Inner, payload: &str) -> Result<(), SandboxError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(asks::CHANNEL)
        .bind(payload)
        .execute(&inner.db)
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn failed(answer: Answer) -> SandboxError {
    match answer {
        Answer::Failed {
            invalid_path: true,
            message,
        } => SandboxError::InvalidPath(message),
        Answer::Failed { message, .. } => SandboxError::Unavailable(message),
        other => SandboxError::Protocol(format!("unexpected answer {other:?}")),
    }
}

fn unavailable(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Unavailable(e.to_string())
}
