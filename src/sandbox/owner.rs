//! Who owns a sandbox container: the deployment (a row made once in its database, see
//! migrations/0012_deployment.sql) and the worker (one server process, also the executor's
//! worker id in `workers`). Every container and volume carries both as labels, beside the
//! operator's `ASSISTD_SANDBOX_INSTANCE`.
//!
//! A worker is alive while it holds its advisory lock, taken on a connection of its own for
//! as long as the process runs: Postgres drops it the moment the process dies (kill -9, OOM,
//! a lost host once its TCP connection times out), so a sibling or a restarted server knows
//! at once whose containers are orphans, without waiting for a heartbeat to go stale. Only a
//! worker this database knows (a row in `workers`) is ever judged gone: a container of the
//! same deployment id owned by a worker the database never saw belongs to a copy of the
//! database elsewhere (a staging restore of production), and is left alone.
//!
//! Without a database (library tests, benches) the instance label alone names the owner, as
//! before: every container of the instance found at start is an earlier process's.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// Advisory lock namespace (first key) of the workers' liveness locks: "asd" in ASCII.
const LOCK_SPACE: i32 = 0x0061_7364;
/// How often the lock's connection is checked (and re-made, re-locked when it broke).
const KEEP_EVERY: Duration = Duration::from_secs(5);

pub(crate) const LABEL_DEPLOYMENT: &str = "assistd.deployment";
pub(crate) const LABEL_WORKER: &str = "assistd.worker";
pub(crate) const LABEL_INSTANCE: &str = "assistd.instance";

/// This process's identity on the Docker engine.
#[derive(Clone, Debug)]
pub(crate) struct Owner {
    pub instance: String,
    /// None without a database.
    pub deployment: Option<String>,
    pub worker: String,
    db: Option<PgPool>,
}

/// What the sweep does with one container, and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Remove(String),
    Leave(String),
}

/// What Postgres says about the workers named on containers.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// Workers in `workers` whose lock is free: stopped.
    pub gone: HashSet<String>,
    /// Workers in `workers` (alive or not).
    pub known: HashSet<String>,
}

impl Owner {
    /// An owner without a database: the instance label alone.
    pub fn local(instance: &str) -> Owner {
        Owner {
            instance: instance.to_owned(),
            deployment: None,
            worker: new_worker_id(),
            db: None,
        }
    }

    /// Reads (or makes) the deployment id, registers a new worker and takes its liveness lock,
    /// kept until `stop`. Containers may be made once this returns.
    pub async fn register(
        db: &PgPool,
        instance: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<Owner> {
        let fresh = format!("dep_{}", uuid::Uuid::new_v4().simple());
        sqlx::query("INSERT INTO deployment (id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&fresh)
            .execute(db)
            .await?;
        let deployment: String = sqlx::query_scalar("SELECT id FROM deployment")
            .fetch_one(db)
            .await?;
        let worker = new_worker_id();
        let conn = lock(db, &worker).await?;
        sqlx::query(
            "INSERT INTO workers (id, heartbeat_at) VALUES ($1, now())
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(&worker)
        .execute(db)
        .await?;
        tokio::spawn(keep_lock(db.clone(), worker.clone(), conn, stop));
        Ok(Owner {
            instance: instance.to_owned(),
            deployment: Some(deployment),
            worker,
            db: Some(db.clone()),
        })
    }

    /// The labels of a container (and its volume) this process makes.
    pub fn labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            ("assistd.managed".to_string(), "true".to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_WORKER.to_string(), self.worker.clone()),
        ]);
        if let Some(deployment) = &self.deployment {
            labels.insert(LABEL_DEPLOYMENT.to_string(), deployment.clone());
        }
        labels
    }

    /// Asks Postgres which of `workers` are known and which of those stopped.
    pub async fn liveness(&self, workers: &HashSet<String>) -> anyhow::Result<Liveness> {
        let Some(db) = &self.db else {
            return Ok(Liveness::default());
        };
        let workers: Vec<String> = workers.iter().cloned().collect();
        // A free lock is taken for the statement only (released at its end).
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT id, pg_try_advisory_xact_lock($1, hashtext(id)) FROM workers WHERE id = ANY($2)",
        )
        .bind(LOCK_SPACE)
        .bind(&workers)
        .fetch_all(db)
        .await?;
        let mut liveness = Liveness::default();
        for (worker, gone) in rows {
            if gone {
                liveness.gone.insert(worker.clone());
            }
            liveness.known.insert(worker);
        }
        Ok(liveness)
    }

    /// Whether a container (or volume) labelled `labels` is an orphan of this deployment.
    pub fn judge(&self, labels: &HashMap<String, String>, liveness: &Liveness) -> Verdict {
        let label = |key: &str| labels.get(key).map(String::as_str);
        let instance = label(LABEL_INSTANCE).unwrap_or("");
        if instance != self.instance {
            return Verdict::Leave(format!("another instance label ({instance})"));
        }
        let worker = label(LABEL_WORKER);
        if worker == Some(self.worker.as_str()) {
            return Verdict::Leave("this process's".into());
        }
        let Some(ours) = &self.deployment else {
            return match label(LABEL_DEPLOYMENT) {
                None => Verdict::Remove("left by an earlier process of this instance".into()),
                Some(other) => Verdict::Leave(format!("owned by deployment {other}")),
            };
        };
        let (deployment, worker) = match (label(LABEL_DEPLOYMENT), worker) {
            (Some(deployment), Some(worker)) => (deployment, worker),
            _ => {
                return Verdict::Leave(
                    "no deployment label (made by an older assistd or without a database; \
                     remove it by hand if nothing uses it)"
                        .into(),
                )
            }
        };
        if deployment != ours {
            return Verdict::Leave(format!("owned by another deployment ({deployment})"));
        }
        if !liveness.known.contains(worker) {
            return Verdict::Leave(format!(
                "its worker {worker} is unknown to this database (a copy of it in use elsewhere?)"
            ));
        }
        if liveness.gone.contains(worker) {
            Verdict::Remove(format!("its worker {worker} stopped"))
        } else {
            Verdict::Leave(format!("its worker {worker} is alive"))
        }
    }
}

fn new_worker_id() -> String {
    format!("worker_{}", uuid::Uuid::new_v4().simple())
}

/// A connection of its own holding the worker's liveness lock.
async fn lock(db: &PgPool, worker: &str) -> sqlx::Result<PgConnection> {
    let mut conn = PgConnection::connect_with(&db.connect_options()).await?;
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(LOCK_SPACE)
        .bind(worker)
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Keeps the lock's connection alive until `stop`, re-taking the lock when it broke (a
/// Postgres restart); closing it at `stop` frees the lock.
async fn keep_lock(db: PgPool, worker: String, conn: PgConnection, stop: CancellationToken) {
    let mut conn = Some(conn);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(KEEP_EVERY) => {}
            _ = stop.cancelled() => break,
        }
        if let Some(c) = conn.as_mut() {
            if c.ping().await.is_ok() {
                continue;
            }
            tracing::warn!(
                worker,
                "the worker's liveness lock connection broke; taking it again"
            );
            conn = None;
        }
        match lock(&db, &worker).await {
            Ok(c) => conn = Some(c),
            Err(e) => {
                tracing::warn!(worker, error = %e, "could not take the worker's liveness lock")
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(deployment: Option<&str>) -> Owner {
        Owner {
            instance: "assistd".into(),
            deployment: deployment.map(String::from),
            worker: "worker_me".into(),
            db: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_containers_of_this_deployment_whose_worker_stopped_are_removed() {
        let me = owner(Some("dep_1"));
        let liveness = Liveness {
            gone: HashSet::from(["worker_dead".to_string()]),
            known: HashSet::from(["worker_dead".to_string(), "worker_alive".to_string()]),
        };
        let of = |deployment: &str, worker: &str| {
            labels(&[
                (LABEL_INSTANCE, "assistd"),
                (LABEL_DEPLOYMENT, deployment),
                (LABEL_WORKER, worker),
            ])
        };
        let removed = |l| matches!(me.judge(&l, &liveness), Verdict::Remove(_));
        assert!(removed(of("dep_1", "worker_dead")));
        assert!(!removed(of("dep_1", "worker_alive")));
        assert!(!removed(of("dep_1", "worker_me")));
        assert!(!removed(of("dep_1", "worker_never_seen")));
        assert!(!removed(of("dep_2", "worker_dead")), "another deployment's");
        assert!(
            !removed(labels(&[(LABEL_INSTANCE, "assistd")])),
            "older, unlabelled"
        );
        let mut other_instance = of("dep_1", "worker_dead");
        other_instance.insert(LABEL_INSTANCE.into(), "staging".into());
        assert!(!removed(other_instance));
    }

    #[test]
    fn without_a_database_the_instance_label_decides() {
        let me = owner(None);
        let none = Liveness::default();
        let earlier = labels(&[(LABEL_INSTANCE, "assistd"), (LABEL_WORKER, "worker_x")]);
        assert!(matches!(me.judge(&earlier, &none), Verdict::Remove(_)));
        let deployed = labels(&[(LABEL_INSTANCE, "assistd"), (LABEL_DEPLOYMENT, "dep_1")]);
        assert!(matches!(me.judge(&deployed, &none), Verdict::Leave(_)));
    }
}
