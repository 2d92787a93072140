-- Several replicas on one database: which replica holds each thread's live sandbox session,
-- so a run of that thread is executed where its variables and /mnt/data files are.

-- Every live server process (its executor's worker id) and when it last said so.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A thread's live sandbox session and the worker holding it. A placement whose worker's
-- heartbeat is stale counts for nothing: any worker may take the thread's runs.
CREATE TABLE placements (
    thread_id TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    worker    TEXT NOT NULL,
    placed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX placements_worker ON placements (worker);

-- A streamed run executed by another replica than the one holding the client's connection:
-- its worker publishes the run's events through Postgres (NOTIFY assistd_run_events).
ALTER TABLE runs ADD COLUMN relay BOOLEAN NOT NULL DEFAULT false;
