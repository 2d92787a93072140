//! Pausing a session (E2B's pause): a checkpoint of its end that must succeed, then the
//! sandbox freed; snapshots (a copy of a fresh checkpoint under a key of their own) and
//! sessions begun from one. Resuming is the ordinary restore of a session's next start.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{lock, retire, SandboxManager};
use crate::blobs::Key;
use crate::sandbox::checkpoint::Manifest;
use crate::sandbox::SandboxError;

impl SandboxManager {
    /// Checkpoints the session live here now, changed or not (with whatever runs in it
    /// waiting behind), and when `end` removes its sandbox after. False when it is not live
    /// here (its last checkpoint, if any, is its state). An error leaves the session as it was.
    pub async fn checkpoint_now(&self, session: &str, end: bool) -> Result<bool, SandboxError> {
        let Ok(handle) = self.handle(session, false) else {
            return Ok(false);
        };
        let mut slot = lock(handle.slot, &handle.removed).await?;
        if slot.sandbox.is_some() {
            handle.changed.store(true, Ordering::SeqCst);
            self.inner
                .save(&mut slot, &handle.changed, end)
                .await
                .map_err(|e| SandboxError::Unavailable(format!("checkpoint failed: {e:#}")))?;
        }
        drop(slot);
        drop(handle.busy);
        if end {
            // Out of the table now; the sandbox is removed in the background (saved again only
            // if something slipped in since). A new session of it waits for that (`retiring`).
            let entry = self
                .inner
                .sessions
                .lock()
                .ok()
                .and_then(|mut sessions| sessions.remove(session));
            if let Some(entry) = entry {
                self.inner.retiring(session, &entry);
                tokio::spawn(retire(self.inner.clone(), session.to_owned(), entry, true));
            }
        }
        Ok(true)
    }

    /// Starts the sandbox of a session that is not live here, restored from its checkpoint.
    pub async fn open(&self, session: &str) -> Result<(), SandboxError> {
        drop(self.hold(session).await?);
        Ok(())
    }

    /// Copies the session's checkpoint to `to`: its manifest, or None when it has none (or
    /// checkpoints are off). Take a fresh one first with [`SandboxManager::checkpoint_now`].
    pub async fn copy_checkpoint(
        &self,
        session: &str,
        to: &Key,
    ) -> Result<Option<Value>, SandboxError> {
        let Some(checkpoints) = &self.inner.checkpoints else {
            return Ok(None);
        };
        let manifest = checkpoints
            .copy_to(session, to)
            .await
            .map_err(|e| SandboxError::Unavailable(format!("copying a checkpoint: {e:#}")))?;
        Ok(manifest.and_then(|m| serde_json::to_value(m).ok()))
    }

    /// Makes a copy left by [`SandboxManager::copy_checkpoint`] the (new) session's
    /// checkpoint: its first start restores it.
    pub async fn begin_from(
        &self,
        session: &str,
        from: &Key,
        manifest: &Value,
    ) -> Result<(), SandboxError> {
        let Some(checkpoints) = &self.inner.checkpoints else {
            return Err(SandboxError::Unavailable("checkpoints are off".into()));
        };
        let manifest: Manifest = serde_json::from_value(manifest.clone())
            .map_err(|e| SandboxError::Protocol(format!("a snapshot's manifest: {e}")))?;
        checkpoints
            .adopt(session, from, &manifest)
            .await
            .map_err(|e| SandboxError::Unavailable(format!("restoring a snapshot: {e:#}")))
    }

    /// Removes a copy left by [`SandboxManager::copy_checkpoint`].
    pub async fn remove_copy(&self, key: &Key) -> Result<(), SandboxError> {
        let Some(checkpoints) = &self.inner.checkpoints else {
            return Ok(());
        };
        checkpoints
            .remove_copy(key)
            .await
            .map_err(|e| SandboxError::Unavailable(format!("removing a snapshot: {e:#}")))
    }
}
