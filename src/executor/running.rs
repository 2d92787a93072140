//! The runs this process is executing, each with the token that interrupts it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct Running {
    /// run id → (sandbox session key, cancel token)
    runs: Mutex<HashMap<String, (String, CancellationToken)>>,
}

impl Running {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, CancellationToken)>) -> T) -> T {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut runs)
    }

    pub fn insert(&self, run_id: &str, session: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.with(|runs| runs.insert(run_id.to_string(), (session.to_string(), token.clone())));
        token
    }

    pub fn remove(&self, run_id: &str) {
        self.with(|runs| runs.remove(run_id));
    }

    pub fn cancel(&self, run_id: &str) {
        self.with(|runs| runs.get(run_id).map(|(_, token)| token.cancel()));
    }

    /// Cancels the runs executing in a session (a thread's runs, or a container's).
    pub fn cancel_session(&self, session: &str) {
        self.with(|runs| {
            runs.values()
                .filter(|(key, _)| key == session)
                .for_each(|(_, token)| token.cancel())
        });
    }

    pub fn cancel_all(&self) {
        self.with(|runs| runs.values().for_each(|(_, token)| token.cancel()));
    }

    pub fn len(&self) -> usize {
        self.with(|runs| runs.len())
    }

    /// Waits up to `limit` for every run to finish; true if they all did.
    pub async fn drained(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.len() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}
