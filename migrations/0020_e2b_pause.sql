-- E2B's pause and resume, and snapshots. A paused sandbox is a container with status
-- 'paused': its session was checkpointed (the whole box) and its Docker container freed; it
-- does not expire while paused, and its checkpoint is not swept. Resuming makes it 'running'
-- again, `timeout_secs` from then, and its next session restores the checkpoint on any replica.
ALTER TABLE e2b_sandboxes
    -- The `timeout` asked for at create (or connect): a resumed sandbox lives this long.
    ADD COLUMN timeout_secs BIGINT NOT NULL DEFAULT 300,
    -- `autoPause`: its timeout pauses it instead of killing it.
    ADD COLUMN auto_pause BOOLEAN NOT NULL DEFAULT FALSE,
    -- `autoResume.enabled`: a data-plane request to it while paused resumes it.
    ADD COLUMN auto_resume BOOLEAN NOT NULL DEFAULT FALSE,
    -- Unix seconds when it was last paused (NULL while it never was).
    ADD COLUMN paused_at BIGINT;

-- A snapshot of a sandbox: a copy of its checkpoint at `snapshots/<id>` in the blob store
-- (and `.box` beside it), restored into a new sandbox created with `templateID: <id>`.
-- It outlives the sandbox; `DELETE /templates/<id>` removes it.
CREATE TABLE e2b_snapshots (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    sandbox_id  TEXT NOT NULL,
    name        TEXT,
    -- The checkpoint's manifest (what it holds).
    manifest    JSONB NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX e2b_snapshots_project ON e2b_snapshots (project, seq);
