//! Run events and wake-ups between replicas, through Postgres.
//!
//! A streamed run may be executed by another replica than the one holding the client's
//! connection (the one holding the thread's sandbox). Its worker then publishes every event
//! with `NOTIFY assistd_run_events`, split under Postgres's 8,000-byte payload limit and sent
//! in order on one connection; the replica streaming to the client listens, reassembles and
//! forwards them. `NOTIFY assistd_wake` tells the other replicas that a run was queued for
//! them (so they claim it now, not at their next tick) or that a run is to be cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::events::{Emitter, RunEvent};

pub const EVENTS: &str = "assistd_run_events";
pub const WAKE: &str = "assistd_wake";
/// Room for the header within Postgres's 8,000-byte payload limit.
const MAX_PIECE: usize = 7_000;

/// What the listener tells the executor.
#[derive(Debug, PartialEq)]
pub enum Wake {
    /// A run was queued that this replica may be the one to take.
    Queued,
    Cancel(String),
    /// A thread was deleted: drop its sandbox session, if this replica holds it.
    Forget(String),
}

/// The process's end of the relay: subscriptions by run id, fed by one listening connection.
#[derive(Clone)]
pub struct Relay {
    db: PgPool,
    subscribers: Arc<Mutex<HashMap<String, Subscriber>>>,
}

struct Subscriber {
    emit: Emitter,
    /// The pieces of a split event gathered so far.
    partial: Vec<String>,
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
        }
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
                    partial: vec![],
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

    /// Listens until `stop`, forwarding run events and passing wake-ups to `wake`.
    pub async fn follow(self, wake: mpsc::UnboundedSender<Wake>, stop: CancellationToken) {
        stop.run_until_cancelled(self.listen_loop(wake)).await;
    }

    async fn listen_loop(&self, wake: mpsc::UnboundedSender<Wake>) {
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
            let _ = wake.send(Wake::Queued);
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) if n.channel() == EVENTS => self.deliver(n.payload()),
                    Ok(Some(n)) => {
                        let _ = wake.send(Wake::parse(n.payload()));
                    }
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
        let Some(piece) = Piece::parse(payload) else {
            tracing::warn!("relay: a malformed event notice");
            return;
        };
        let Ok(mut subs) = self.subscribers.lock() else {
            return;
        };
        let Some(sub) = subs.get_mut(piece.run_id) else {
            return;
        };
        sub.partial.push(piece.data.to_string());
        if piece.part + 1 < piece.parts {
            return;
        }
        let data = std::mem::take(&mut sub.partial).concat();
        if piece.name == "done" {
            sub.emit.done();
            // The stream closes when the last sender goes: the watch holds one, so wake it.
            sub.ended.notify_one();
            subs.remove(piece.run_id);
        } else if let Some(name) = event_name(piece.name) {
            sub.emit.emit_raw(name, data);
        }
    }
}

async fn listen(db: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen_all([EVENTS, WAKE]).await?;
    Ok(listener)
}

/// Sends one run's events, in order, on one connection.
async fn publish(db: PgPool, run_id: String, mut rx: mpsc::UnboundedReceiver<RunEvent>) {
    let mut conn = match db.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(run_id, error = %e, "relay: no connection to publish events");
            return;
        }
    };
    while let Some(event) = rx.recv().await {
        for payload in split(&run_id, event.name, &event.data) {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(EVENTS)
                .bind(&payload)
                .execute(&mut *conn)
                .await
            {
                tracing::warn!(run_id, error = %e, "relay: publishing an event failed");
            }
        }
        if event.name == "done" {
            return;
        }
    }
}

/// Asks the other replicas to look at the queue now (sent when the transaction commits).
pub async fn wake_queued<'e>(db: impl sqlx::PgExecutor<'e>) -> sqlx::Result<()> {
    notify_wake(db, "queued").await
}

/// Tells every replica that a thread is gone.
pub async fn wake_forget<'e>(db: impl sqlx::PgExecutor<'e>, thread_id: &str) -> sqlx::Result<()> {
    notify_wake(db, &format!("forget:{thread_id}")).await
}

impl Wake {
    fn parse(payload: &str) -> Wake {
        if let Some(run_id) = payload.strip_prefix("cancel:") {
            Wake::Cancel(run_id.to_string())
        } else if let Some(thread_id) = payload.strip_prefix("forget:") {
            Wake::Forget(thread_id.to_string())
        } else {
            Wake::Queued
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

/// One notice: `run_id`, `part`, `parts`, event name and a piece of its data, tab-separated.
struct Piece<'a> {
    run_id: &'a str,
    part: usize,
    parts: usize,
    name: &'a str,
    data: &'a str,
}

impl<'a> Piece<'a> {
    fn parse(payload: &'a str) -> Option<Self> {
        let mut fields = payload.splitn(5, '\t');
        Some(Piece {
            run_id: fields.next()?,
            part: fields.next()?.parse().ok()?,
            parts: fields.next()?.parse().ok()?,
            name: fields.next()?,
            data: fields.next()?,
        })
    }
}

fn split(run_id: &str, name: &str, data: &str) -> Vec<String> {
    let mut pieces = vec![];
    let mut rest = data;
    loop {
        let mut cut = rest.len().min(MAX_PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
        if rest.is_empty() {
            break;
        }
    }
    let parts = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(part, piece)| format!("{run_id}\t{part}\t{parts}\t{name}\t{piece}"))
        .collect()
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
    ];
    NAMES.iter().find(|n| **n == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_event_splits_under_the_payload_limit_and_joins_again() {
        let data = "é".repeat(9_000) + "end";
        let pieces = split("run_1", "thread.message.delta", &data);
        assert!(pieces.len() > 2);
        let mut joined = String::new();
        for (i, p) in pieces.iter().enumerate() {
            assert!(p.len() < 8_000, "{} bytes", p.len());
            let piece = Piece::parse(p).expect("a piece");
            assert_eq!(
                (piece.run_id, piece.part, piece.parts),
                ("run_1", i, pieces.len())
            );
            assert_eq!(piece.name, "thread.message.delta");
            joined.push_str(piece.data);
        }
        assert_eq!(joined, data);
        assert_eq!(Wake::parse("cancel:run_1"), Wake::Cancel("run_1".into()));
        assert_eq!(
            Wake::parse("forget:thread_1"),
            Wake::Forget("thread_1".into())
        );
        assert_eq!(Wake::parse("queued"), Wake::Queued);
        let tabs = split("run_2", "done", "a\tb");
        assert_eq!(Piece::parse(&tabs[0]).map(|p| p.data), Some("a\tb"));
    }
}
