//! Handing a queued run to whoever should execute it: this replica, or the one holding the
//! thread's sandbox session. A streamed run executed elsewhere streams that replica's events,
//! carried through Postgres (see `relay`), with the same event sequence as a local run.
//!
//! Made before the transaction that queues the run (so the stream is subscribed to before
//! another replica can claim the run), routed inside it, dispatched once it committed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgConnection;
use tokio::sync::mpsc::UnboundedReceiver;

use super::events::{Emitter, RunEvent};
use super::relay::{self, Subscription};
use super::{placement, queue, Executor, Inner};
use crate::auth::Project;
use crate::objects::Run;

pub struct Handover {
    run_id: String,
    stream: Option<Stream>,
    elsewhere: bool,
    /// The run's sandbox session when it is not its thread's (a container's).
    pub(super) session: Option<String>,
}

struct Stream {
    emit: Emitter,
    rx: UnboundedReceiver<RunEvent>,
    subscription: Subscription,
}

/// What the queuing transaction writes on the run.
pub struct Assignment {
    /// The worker the run is reserved for (this one, for a stream it executes itself).
    pub worker: Option<String>,
    /// Whether its worker publishes its events for a stream held elsewhere.
    pub relay: bool,
}

impl Executor {
    pub fn handover(&self, run_id: &str, stream: bool) -> Handover {
        let stream = stream.then(|| {
            let (emit, rx) = Emitter::channel();
            let subscription = self.inner.relay.subscribe(run_id, emit.clone());
            Stream {
                emit,
                rx,
                subscription,
            }
        });
        Handover {
            run_id: run_id.to_string(),
            stream,
            elsewhere: false,
            session: None,
        }
    }

    /// Inside the queuing transaction: another live replica holding the thread's session
    /// executes the run (and is woken when the transaction commits); else this one, which
    /// reserves a streamed run for itself. The stream opens with `announce`.
    pub async fn assign(
        &self,
        conn: &mut PgConnection,
        handover: &mut Handover,
        run: &Run,
        announce: &[&'static str],
    ) -> sqlx::Result<Assignment> {
        let me = &self.inner.worker_id;
        let session = handover.session.as_deref().unwrap_or(&run.thread_id);
        let holder = placement::holder(&mut *conn, session, me).await?;
        handover.elsewhere = holder.is_some();
        if let Some(holder) = &holder {
            relay::wake_queued(&mut *conn, &run.id, holder).await?;
        }
        if let Some(stream) = &handover.stream {
            for event in announce {
                stream.emit.emit(event, run);
            }
        }
        let streamed = handover.stream.is_some();
        Ok(Assignment {
            worker: (streamed && !handover.elsewhere).then(|| me.clone()),
            relay: streamed && handover.elsewhere,
        })
    }

    /// After the commit: executes the run here or follows the replica that does. Returns
    /// the run's events for a streamed run.
    pub fn dispatch(
        &self,
        project: Project,
        handover: Handover,
    ) -> Option<UnboundedReceiver<RunEvent>> {
        let Handover {
            run_id,
            stream,
            elsewhere,
            ..
        } = handover;
        match stream {
            None => {
                if !elsewhere {
                    self.start(project, run_id, Emitter::default());
                }
                None
            }
            Some(Stream {
                emit,
                rx,
                subscription,
            }) => {
                if elsewhere {
                    tracing::debug!(target: relay::HOPS, run_id, "relay: queued");
                    tokio::spawn(watch(self.inner.clone(), run_id, emit, subscription));
                } else {
                    drop(subscription);
                    self.start(project, run_id, emit);
                }
                Some(rx)
            }
        }
    }
}

impl Handover {
    /// The run executes its code in `session` (a container's) rather than its thread's: the
    /// replica holding that session gets it.
    pub fn in_session(mut self, session: Option<&str>) -> Self {
        self.session = session.map(str::to_owned);
        self
    }
}

impl Executor {
    /// A run queued for this replica by another one (this one holds its thread's session):
    /// claimed and executed at once, beside the queue loop rather than behind its work.
    pub(super) fn take_woken(&self, run_id: String) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let Ok(permit) = inner.permits.clone().acquire_owned().await else {
                return;
            };
            match queue::claim(&inner.db, &inner.worker_id, &run_id).await {
                Ok(Some(claimed)) => {
                    tracing::debug!(target: relay::HOPS, run_id, "relay: claimed");
                    let emit = if claimed.relay {
                        inner.relay.publisher(&run_id)
                    } else {
                        Emitter::default()
                    };
                    super::execute(inner, claimed, emit).await;
                }
                // The queue loop took it first, or it is no longer queued.
                Ok(None) => {}
                Err(e) => tracing::warn!(run_id, error = %e, "claiming a woken run failed"),
            }
            drop(permit);
        });
    }
}

/// Keeps a relayed stream's subscription until its `done` (then drops its sender at once, so
/// the stream closes), or the client leaves. If the run
/// ends without its events arriving (its worker died, or the listening connection dropped),
/// the stream ends with the run as Postgres has it.
async fn watch(inner: Arc<Inner>, run_id: String, emit: Emitter, subscription: Subscription) {
    let mut ended_checks = 0;
    loop {
        tokio::select! {
            _ = subscription.ended() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if !inner.relay.is_subscribed(&run_id) || emit.is_closed() {
            return;
        }
        let Ok(found) = super::record::load_run(&inner.db, &run_id).await else {
            continue;
        };
        let Some(run) = found else {
            emit.done();
            return;
        };
        let ended = run.is_terminal() || run.status == "requires_action";
        ended_checks = if ended { ended_checks + 1 } else { 0 };
        if ended_checks >= 3 {
            drop(subscription);
            tracing::warn!(
                run_id,
                "a relayed run ended without its events; closing the stream"
            );
            emit.emit(end_event(&run.status), &run);
            emit.done();
            return;
        }
    }
}

fn end_event(status: &str) -> &'static str {
    match status {
        "completed" => "thread.run.completed",
        "requires_action" => "thread.run.requires_action",
        "cancelled" => "thread.run.cancelled",
        "expired" => "thread.run.expired",
        "incomplete" => "thread.run.incomplete",
        _ => "thread.run.failed",
    }
}
