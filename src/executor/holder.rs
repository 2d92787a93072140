//! Which replica serves a session's direct calls (E2B's data plane): the one holding the
//! session's placement. A surface calls [`Executor::hold`] before serving a call: it records
//! that the session lives here, or names the sibling holding it, to forward the call to.

use super::{placement, Executor};

/// A live sibling replica holding a session.
pub struct Holder {
    pub worker: String,
    /// Where it can be reached (`ASSISTD_ADVERTISE_URL`); None for a replica of a version that
    /// records no address.
    pub address: Option<String>,
}

impl Executor {
    /// Records that this replica holds `session` unless another live one does; returns that
    /// one when it does (then nothing changed).
    pub async fn hold(&self, session: &str) -> sqlx::Result<Option<Holder>> {
        let (db, me) = (&self.inner.db, self.inner.worker_id.as_str());
        let Some(worker) = placement::take_unless_held(db, session, me).await? else {
            return Ok(None);
        };
        let address = placement::address(db, &worker).await?;
        Ok(Some(Holder { worker, address }))
    }

    /// Whether `worker` is another live replica of this deployment (one that may forward a call
    /// here).
    pub async fn is_sibling(&self, worker: &str) -> sqlx::Result<bool> {
        placement::is_live_sibling(&self.inner.db, worker, &self.inner.worker_id).await
    }
}
