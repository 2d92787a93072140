//! Run events and wake-ups between replicas, through Postgres.
//!
//! A streamed run may be executed by another replica than the one holding the client's
//! connection (the one holding the thread's sandbox). Its worker then publishes its events
//! with `NOTIFY assistd_run_events_v2` on one connection: whatever is queued when the
//! connection is free goes out as one batch in one statement, packed under Postgres's
//! 8,000-byte payload limit (see `wire`); the replica streaming to the client listens,
//! reassembles and forwards them in order. `NOTIFY assistd_wake` tells the replica holding a
//! thread's session that a run was queued for it (so it claims that run at once, not at its
//! next tick), or every replica that a run is to be cancelled or a thread is gone. On
//! `NOTIFY assistd_session_files` a replica asks the one holding a session to act on its files
//! and hears the answer (see `asks` and `session_files`).
//!
//! Each hop of a relayed run is logged at debug level under the target `assistd::relay`
//! (queued, woken, claimed, published, delivered), for `bench/replicas`' hop figures.

pub mod asks;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::events::{Emitter, RunEvent};

/// `_v2`: batched notices (see `wire`); a replica of the earlier format does not hear them.
pub const EVENTS: &str = "assistd_run_events_v2";
pub const WAKE: &str = "assistd_wake";
/// The target of the per-hop debug events.
pub const HOPS: &str = "assistd::relay";

/// What the listener tells the executor.
#[derive(Debug, PartialEq)]
pub enum Wake {
    /// A run was queued that this replica may be the one to take; with its id when this
    /// replica holds the run's thread, without when the whole queue is to be looked at.
    Queued(Option<String>),
    Cancel(String),
    /// A thread was deleted: drop its sandbox session, if this replica holds it.
    Forget(String),
    /// Another replica asks this one to act on the files of a session it holds (the body).
    Files(String),
}

/// The process's end of the relay: subscriptions by run id, fed by one listening connection.
#[derive(Clone)]
pub struct Relay {
    db: PgPool,
    subscribers: Arc<Mutex<HashMap<String, Subscriber>>>,
    asks: asks::Asks,
}

struct Subscriber {
    emit: Emitter,
    /// The batch being joined from its notices.
    assembly: wire::Assembly,
    /// Told when the run's `done` arrived.
    ended: Arc<Notify>,
}

/// Keeps a run's subscription; the subscription ends when it is dropped.
pub struct Subscription {
    relay: Relay,
    run_id: String,
    ended: Arc<Notify>,
}

impl Subscription {
    /// Resolves once the run's `done` was forwarded.
    pub async fn ended(&self) {
        self.ended.notified().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut subs) = self.relay.subscribers.lock() {
            subs.remove(&self.run_id);
        }
    }
}

impl Relay {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            subscribers: Arc::default(),
            asks: asks::Asks::default(),
        }
    }

    /// The answers this replica waits for from others.
    pub fn asks(&self) -> &asks::Asks {
        &self.asks
    }

    /// Forwards the events another replica publishes for `run_id` to `emit`, until its
    /// `done`. Subscribe before the run can be claimed, or early events are missed.
    pub fn subscribe(&self, run_id: &str, emit: Emitter) -> Subscription {
        let ended = Arc::new(Notify::new());
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.insert(
                run_id.to_string(),
                Subscriber {
                    emit,
                    assembly: wire::Assembly::default(),
                    ended: ended.clone(),
                },
            );
        }
        Subscription {
            relay: self.clone(),
            run_id: run_id.to_string(),
            ended,
        }
    }

    pub fn is_subscribed(&self, run_id: &str) -> bool {
        self.subscribers
            .lock()
            .map(|s| s.contains_key(run_id))
            .unwrap_or(false)
    }

    /// An emitter whose events go to the replica streaming `run_id`, in order.
    pub fn publisher(&self, run_id: &str) -> Emitter {
        let (emit, rx) = Emitter::channel();
        tokio::spawn(publish(self.db.clone(), run_id.to_string(), rx));
        emit
    }

    /// Listens until `stop`, forwarding run events and passing wake-ups meant for `me` to
    /// `wake`.
    pub async fn follow(
        self,
        me: String,
        wake: mpsc::UnboundedSender<Wake>,
        stop: CancellationToken,
    ) {
        stop.run_until_cancelled(self.listen_loop(&me, wake)).await;
    }

    async fn listen_loop(&self, me: &str, wake: mpsc::UnboundedSender<Wake>) {
        loop {
            let mut listener = match listen(&self.db).await {
                Ok(listener) => listener,
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: cannot listen");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Whatever was queued while not listening is found by the next tick.
            let _ = wake.send(Wake::Queued(None));
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) if n.channel() == EVENTS => self.deliver(n.payload()),
                    Ok(Some(n)) if n.channel() == asks::CHANNEL => {
                        match asks::Notice::parse(n.payload()) {
                            Some(asks::Notice::Ask { to, body }) if to == me => {
                                let _ = wake.send(Wake::Files(body.to_string()));
                            }
                            Some(asks::Notice::Answer { to, id, body }) if to == me => {
                                self.asks.answered(id, body)
                            }
                            _ => {}
                        }
                    }
                    Ok(Some(n)) => match Wake::parse(n.payload(), me) {
                        Some(Wake::Queued(Some(run_id))) => {
                            tracing::debug!(target: HOPS, run_id, "relay: woken");
                            let _ = wake.send(Wake::Queued(Some(run_id)));
                        }
                        Some(other) => {
                            let _ = wake.send(other);
                        }
                        None => {}
                    },
                    Ok(None) => break,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "relay: connection lost");
                        break;
                    }
                }
            }
        }
    }

    fn deliver(&self, payload: &str) {
        let Some(notice) = wire::Notice::parse(payload) else {
            tracing::warn!("relay: a malformed event notice");
            return;
        };
        let Ok(mut subs) = self.subscribers.lock() else {
            return;
        };
        let Some(sub) = subs.get_mut(notice.run_id) else {
            return;
        };
        let events = match sub.assembly.add(&notice) {
            Ok(Some(events)) => events,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    run_id = notice.run_id,
                    ?e,
                    "relay: an event notice was lost"
                );
                return;
            }
        };
        tracing::debug!(
            target: HOPS,
            run_id = notice.run_id,
            seq = notice.seq,
            events = events.len(),
            first = events.first().map(|e| e.0.as_str()),
            "relay: delivered"
        );
        for (name, data) in events {
            if name == "done" {
                sub.emit.done();
                // The stream closes when the last sender goes: the watch holds one, so wake it.
                sub.ended.notify_one();
                subs.remove(notice.run_id);
                return;
            }
            if let Some(name) = event_name(&name) {
                sub.emit.emit_raw(name, data);
            }
        }
    }
}

async fn listen(db: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen_all([EVENTS, WAKE, asks::CHANNEL]).await?;
    Ok(listener)
}

/// Sends one run's events, in order, on one connection: each statement carries every event
/// queued by then, so a burst of events costs one round trip, not one each.
async fn publish(db: PgPool, run_id: String, mut rx: mpsc::UnboundedReceiver<RunEvent>) {
    let mut conn = match db.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(run_id, error = %e, "relay: no connection to publish events");
            return;
        }
    };
    let mut batch = vec![];
    for seq in 0.. {
        let Some(event) = rx.recv().await else {
            return;
        };
        batch.push(event);
        while let Ok(event) = rx.try_recv() {
            batch.push(event);
        }
        let notices = wire::pack(&run_id, seq, &batch);
        // One statement, so one transaction: its notices arrive together and in this order.
        if let Err(e) =
            sqlx::query("SELECT pg_notify($1, notice) FROM unnest($2::text[]) AS notice")
                .bind(EVENTS)
                .bind(&notices)
                .execute(&mut *conn)
                .await
        {
            tracing::warn!(run_id, error = %e, "relay: publishing events failed");
        }
        tracing::debug!(
            target: HOPS,
            run_id,
            seq,
            events = batch.len(),
            notices = notices.len(),
            first = batch[0].name,
            "relay: published"
        );
        if batch.iter().any(|e| e.name == "done") {
            return;
        }
        batch.clear();
    }
}

/// Asks `holder`, the replica holding the run's thread, to claim the run now (sent when the
/// transaction commits).
pub async fn wake_queued<'e>(
    db: impl sqlx::PgExecutor<'e>,
    run_id: &str,
    holder: &str,
) -> sqlx::Result<()> {
    notify_wake(db, &format!("queued:{run_id}:{holder}")).await
}

/// Tells every replica that a thread is gone.
pub async fn wake_forget<'e>(db: impl sqlx::PgExecutor<'e>, thread_id: &str) -> sqlx::Result<()> {
    notify_wake(db, &format!("forget:{thread_id}")).await
}

impl Wake {
    /// What a wake-up payload asks of replica `me`; None when it is meant for another one.
    fn parse(payload: &str, me: &str) -> Option<Wake> {
        if let Some(run_id) = payload.strip_prefix("cancel:") {
            Some(Wake::Cancel(run_id.to_string()))
        } else if let Some(thread_id) = payload.strip_prefix("forget:") {
            Some(Wake::Forget(thread_id.to_string()))
        } else if let Some((run_id, holder)) = payload
            .strip_prefix("queued:")
            .and_then(|rest| rest.split_once(':'))
        {
            (holder == me).then(|| Wake::Queued(Some(run_id.to_string())))
        } else {
            Some(Wake::Queued(None))
        }
    }
}

/// Asks whichever replica executes `run_id` to stop it now.
pub async fn wake_cancel<'e>(db: impl sqlx::PgExecutor<'e>, run_id: &str) -> sqlx::Result<()> {
    notify_wake(db, &format!("cancel:{run_id}")).await
}

async fn notify_wake<'e>(db: impl sqlx::PgExecutor<'e>, payload: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(WAKE)
        .bind(payload)
        .execute(db)
        .await?;
    Ok(())
}

/// Event names are `&'static str` in this process: only names a run sends are forwarded.
fn event_name(name: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.failed",
        "thread.run.cancelling",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.step.completed",
        "thread.run.step.failed",
        "thread.run.step.cancelled",
        "thread.run.step.expired",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.message.incomplete",
        "error",
        super::events::CODE_STARTED,
    ];
    NAMES.iter().find(|n| **n == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_wake_up_is_for_the_replica_holding_the_thread() {
        let me = "worker_a";
        assert_eq!(
            Wake::parse("queued:run_1:worker_a", me),
            Some(Wake::Queued(Some("run_1".into())))
        );
        assert_eq!(Wake::parse("queued:run_1:worker_b", me), None);
        // From a replica of the earlier format: look at the queue.
        assert_eq!(Wake::parse("queued", me), Some(Wake::Queued(None)));
        assert_eq!(
            Wake::parse("cancel:run_1", me),
            Some(Wake::Cancel("run_1".into()))
        );
        assert_eq!(
            Wake::parse("forget:thread_1", me),
            Some(Wake::Forget("thread_1".into()))
        );
    }
}
