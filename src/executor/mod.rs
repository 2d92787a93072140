//! The run executor: takes queued runs off the Postgres queue, runs each in its own task
//! (bounded), keeps their heartbeat, and cleans up runs that expired or lost their worker.

mod annotate;
mod answer;
mod budget;
mod code;
mod code_stream;
mod context;
pub mod events;
mod handover;
pub mod holder;
mod images;
pub mod model;
mod placement;
mod prompt;
mod queue;
mod record;
pub mod relay;
mod run_loop;
mod running;
mod search;
mod session_files;
pub mod shell;
mod skills_note;
mod tool_step;
pub mod upstreams;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::auth::Project;
use crate::blobs::BlobStore;
use crate::cache::ReadCache;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::objects::run::{StepDetails, StepToolCall};
use crate::objects::Run;
use crate::retrieval::Retrieval;
use crate::sandbox::SandboxManager;
use crate::store::{self, Kind};
use events::Emitter;
pub use handover::{Assignment, Handover};
use model::ModelClient;
use prompt::StagedFile;
pub use prompt::SEARCH_TOOL;
use relay::{Relay, Wake};
use run_loop::RunTask;
pub use search::query_of;

#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    pub max_concurrent_runs: usize,
    pub max_tool_rounds: usize,
    /// Send images in user messages to the model as image input (else as text references).
    pub image_input: bool,
    /// The model's context in tokens, for `auto` truncation; `None` when not configured.
    pub context_tokens: Option<u64>,
    /// Where the other replicas reach this one (recorded with its heartbeat).
    pub advertise_url: String,
}

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: PgPool,
    cache: ReadCache,
    blobs: BlobStore,
    sandbox: SandboxManager,
    retrieval: Retrieval,
    model: ModelClient,
    settings: ExecutorSettings,
    relay: Relay,
    worker_id: String,
    permits: Arc<Semaphore>,
    running: running::Running,
    /// Files already copied into each sandbox session (by session key), each session's list
    /// under a lock of its own: staging waits on the sandbox (a checkpoint, a restore), and
    /// must not make other sessions' runs wait with it.
    staged: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Vec<StagedFile>>>>>,
    wake: Notify,
    shutting_down: AtomicBool,
}

impl Inner {
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

impl Executor {
    pub fn new(
        db: PgPool,
        cache: ReadCache,
        blobs: BlobStore,
        sandbox: SandboxManager,
        retrieval: Retrieval,
        model: ModelClient,
        settings: ExecutorSettings,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(settings.max_concurrent_runs.max(1)));
        // The sandboxes' owner: the label on their containers, with its liveness lock.
        let worker_id = sandbox.worker_id().to_owned();
        Self {
            inner: Arc::new(Inner {
                relay: Relay::new(db.clone()),
                db,
                cache,
                blobs,
                sandbox,
                retrieval,
                model,
                settings,
                worker_id,
                permits,
                running: running::Running::default(),
                staged: std::sync::Mutex::new(HashMap::new()),
                wake: Notify::new(),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Executes a queued run in this process as soon as a slot is free. If another worker
    /// claimed it first, the stream (if any) just ends.
    pub fn start(&self, project: Project, run_id: String, emit: Emitter) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let Ok(permit) = inner.permits.clone().acquire_owned().await else {
                return;
            };
            match queue::claim(&inner.db, &inner.worker_id, &run_id).await {
                Ok(Some(claimed)) if claimed.project == project => {
                    let emit = if claimed.relay {
                        inner.relay.publisher(&run_id)
                    } else {
                        emit
                    };
                    execute(inner, claimed, emit).await;
                }
                Ok(_) => emit.done(),
                Err(e) => {
                    tracing::error!(run_id, error = %e, "claiming a run failed");
                    emit.done();
                }
            }
            drop(permit);
        });
    }

    /// Cancels a run: at once when nothing is executing it, else by asking its worker.
    pub async fn request_cancel(
        &self,
        project: &Project,
        thread_id: &str,
        run_id: &str,
    ) -> ApiResult<Run> {
        let mut tx = self.inner.db.begin().await?;
        let mut run: Run = store::get_for_update(
            &mut *tx,
            Kind::Run,
            project,
            run_id,
            &[("thread_id", thread_id)],
        )
        .await?;
        let worker: Option<String> = sqlx::query_scalar("SELECT worker FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
        match (run.status.as_str(), worker) {
            ("queued", None) | ("requires_action", _) => {
                run.status = "cancelled".into();
                run.cancelled_at = Some(ids::now());
                run.expires_at = None;
                run.required_action = None;
            }
            ("queued" | "in_progress", Some(_)) => {
                run.status = "cancelling".into();
                // Whichever replica executes it hears this when the transaction commits.
                relay::wake_cancel(&mut *tx, run_id).await?;
            }
            (status, _) => {
                return Err(ApiError::invalid(format!(
                    "Cannot cancel run with status '{status}'."
                )));
            }
        }
        sqlx::query("UPDATE runs SET status = $2, data = $3 WHERE id = $1")
            .bind(run_id)
            .bind(&run.status)
            .bind(Json(&run))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if run.status == "cancelled" {
            // Nothing executes this run, so its open steps end here (a function-call step).
            record::close_open_steps(&self.inner.db, run_id, "cancelled", ids::now(), None).await?;
            crate::metrics::run_finished(&run);
        }
        self.inner.running.cancel(run_id);
        Ok(run)
    }

    /// Records the client's function outputs and puts the run back on the queue, routed as
    /// `handover` says (see [`Executor::assign`]).
    pub async fn accept_tool_outputs(
        &self,
        project: &Project,
        run: &Run,
        outputs: HashMap<String, String>,
        handover: &mut Handover,
    ) -> ApiResult<Run> {
        let db = &self.inner.db;
        let mut tx = db.begin().await?;
        let mut run: Run =
            store::get_for_update(&mut *tx, Kind::Run, project, &run.id, &[]).await?;
        if run.status != "requires_action" {
            return Err(ApiError::invalid(format!(
                "Runs in status \"{}\" do not accept tool outputs.",
                run.status
            )));
        }
        let calls = run
            .required_action
            .take()
            .map(|a| a.submit_tool_outputs.tool_calls)
            .unwrap_or_default();
        if let Some(mut step) = record::latest_step(db, &run.id).await? {
            if let StepDetails::ToolCalls { tool_calls } = &mut step.step_details {
                for call in tool_calls.iter_mut() {
                    if let StepToolCall::Function { id, function } = call {
                        if let Some(output) = outputs.get(id) {
                            function.output = Some(output.clone());
                        }
                    }
                }
            }
            step.status = "completed".into();
            step.completed_at = Some(ids::now());
            store::put(&mut *tx, Kind::Step, &step.id, &step).await?;
        }
        let results: Vec<Value> = calls
            .iter()
            .map(|c| {
                prompt::tool_result(&c.id, outputs.get(&c.id).map(String::as_str).unwrap_or(""))
            })
            .collect();
        record::append_transcript(&mut *tx, &run.id, &results).await?;
        run.status = "queued".into();
        handover.session = sqlx::query_scalar("SELECT session_id FROM runs WHERE id = $1")
            .bind(&run.id)
            .fetch_one(&mut *tx)
            .await?;
        let assignment = self
            .assign(&mut tx, handover, &run, &["thread.run.queued"])
            .await?;
        sqlx::query(
            "UPDATE runs SET status = $2, data = $3, worker = $4, relay = $5, heartbeat_at = now()
             WHERE id = $1",
        )
        .bind(&run.id)
        .bind(&run.status)
        .bind(Json(&run))
        .bind(assignment.worker)
        .bind(assignment.relay)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(run)
    }

    /// Stops whatever runs in a sandbox session whose thread or container is being deleted
    /// (or whose container expired) and drops the session, its placement and its checkpoint,
    /// here and on the replica holding it.
    pub async fn forget_session(&self, session: &str) {
        if let Err(e) = relay::wake_forget(&self.inner.db, session).await {
            tracing::warn!(error = %e, "could not tell the other replicas a session is gone");
        }
        if let Err(e) = placement::forget(&self.inner.db, session).await {
            tracing::warn!(error = %e, "could not delete a session's placement");
        }
        forget_here(&self.inner, session).await;
    }

    /// The queue loop: claims runs while there is room, beats the heart of the ones held,
    /// cleans up after dead workers and expires forgotten runs. Ends at `stop`.
    pub async fn run_queue(self, stop: CancellationToken) {
        let inner = self.inner.clone();
        let (wake_tx, mut wakes) = tokio::sync::mpsc::unbounded_channel();
        let listener = tokio::spawn(inner.relay.clone().follow(
            inner.worker_id.clone(),
            wake_tx,
            stop.clone(),
        ));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ticked = tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => true,
                _ = inner.wake.notified() => false,
                wake = wakes.recv() => match wake {
                    Some(Wake::Queued(Some(run_id))) => {
                        self.take_woken(run_id);
                        continue;
                    }
                    Some(Wake::Cancel(run_id)) => {
                        inner.running.cancel(&run_id);
                        continue;
                    }
                    Some(Wake::Forget(session)) => {
                        let inner = inner.clone();
                        tokio::spawn(async move { forget_here(&inner, &session).await });
                        continue;
                    }
                    Some(Wake::Files(body)) => {
                        tokio::spawn(session_files::serve(inner.clone(), body));
                        continue;
                    }
                    _ => false,
                }
            };
            if ticked {
                if let Err(e) = self.housekeeping().await {
                    tracing::warn!(error = %e, "run queue housekeeping failed");
                }
            }
            while let Ok(permit) = inner.permits.clone().try_acquire_owned() {
                match queue::claim_next(&inner.db, &inner.worker_id).await {
                    Ok(Some(claimed)) => {
                        let inner = inner.clone();
                        let emit = if claimed.relay {
                            inner.relay.publisher(&claimed.run.id)
                        } else {
                            Emitter::default()
                        };
                        tokio::spawn(async move {
                            execute(inner, claimed, emit).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming queued runs failed");
                        break;
                    }
                }
            }
        }
        let _ = listener.await;
        if let Err(e) = placement::leave(&inner.db, &inner.worker_id).await {
            tracing::warn!(error = %e, "could not give up this worker's placements");
        }
    }

    async fn housekeeping(&self) -> sqlx::Result<()> {
        let db = &self.inner.db;
        let sessions = self.inner.sandbox.sessions();
        let address = &self.inner.settings.advertise_url;
        placement::beat(db, &self.inner.worker_id, address, &sessions).await?;
        for run_id in queue::heartbeat(db, &self.inner.worker_id).await? {
            self.inner.running.cancel(&run_id);
        }
        queue::recover_orphans(db, ORPHAN_MESSAGE).await?;
        queue::expire(db).await?;
        // Containers unused past their expiry: each replica's sweep gets a due one at most once.
        crate::domain::containers::pause::pause_due(db, self).await?;
        let blobs = &self.inner.blobs;
        for container in crate::domain::containers::expire_due(db, blobs, None).await? {
            self.forget_session(&container).await;
        }
        Ok(())
    }

    /// Graceful stop: no new runs; runs still executing after `grace` are interrupted and
    /// fail with `server_error` (queued runs stay queued for the next start).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        if !self.inner.running.drained(grace).await {
            self.inner.running.cancel_all();
            self.inner.running.drained(Duration::from_secs(5)).await;
        }
    }

    pub fn running(&self) -> usize {
        self.inner.running.len()
    }
}

async fn forget_here(inner: &Inner, session: &str) {
    inner.running.cancel_session(session);
    if let Ok(mut staged) = inner.staged.lock() {
        staged.remove(session);
    }
    inner.sandbox.drop_session(session).await;
}

const ORPHAN_MESSAGE: &str = "The server stopped while this run was in progress.";

async fn execute(inner: Arc<Inner>, claimed: queue::Claimed, emit: Emitter) {
    let queue::Claimed {
        project,
        run,
        transcript,
        session,
        ..
    } = claimed;
    let cancel = inner.running.insert(&run.id, &session);
    let run_id = run.id.clone();
    let span = tracing::info_span!("run", run_id = %run_id);
    let task = RunTask {
        inner: inner.clone(),
        project,
        run,
        session,
        emit,
        cancel,
        transcript,
        pending_images: vec![],
        citations: vec![],
        vector_stores: vec![],
        builtin_calls: 0,
    };
    tracing::Instrument::instrument(task.drive(), span).await;
    inner.running.remove(&run_id);
}
