-- Every API object is stored as its full JSON (`data`) beside the columns we query by.
-- `seq` orders lists: it is assigned at insert, so objects created within one second
-- still page in a stable order.

CREATE TABLE files (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    purpose     TEXT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX files_project_seq ON files (project, seq);

CREATE TABLE assistants (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX assistants_project_seq ON assistants (project, seq);

CREATE TABLE threads (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    data        JSONB NOT NULL
);

CREATE TABLE messages (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    thread_id   TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    run_id      TEXT,
    created_at  BIGINT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX messages_thread_seq ON messages (thread_id, seq);

-- Runs double as the work queue: a worker claims a `queued` run with FOR UPDATE SKIP LOCKED
-- and records itself in `worker` with a heartbeat, so a dead worker's runs can be found.
CREATE TABLE runs (
    seq          BIGSERIAL UNIQUE NOT NULL,
    id           TEXT PRIMARY KEY,
    project      TEXT NOT NULL,
    thread_id    TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    worker       TEXT,
    heartbeat_at TIMESTAMPTZ,
    -- The chat turns the run added (tool calls and their results), so a run resumed after
    -- submit_tool_outputs continues the same conversation. Not part of the API object.
    transcript   JSONB NOT NULL DEFAULT '[]',
    data         JSONB NOT NULL
);
CREATE INDEX runs_thread_seq ON runs (thread_id, seq);
CREATE INDEX runs_queue ON runs (status, seq) WHERE status IN ('queued', 'in_progress', 'cancelling', 'requires_action');

CREATE TABLE run_steps (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    thread_id   TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX run_steps_run_seq ON run_steps (run_id, seq);
CREATE INDEX run_steps_open ON run_steps (run_id) WHERE data->>'status' = 'in_progress';
