-- Containers (the Containers API): a sandbox session of its own, not a thread's, with the
-- files in its /mnt/data. `data` is the API object; the columns are what we query and expire by.
CREATE TABLE containers (
    seq             BIGSERIAL UNIQUE NOT NULL,
    id              TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- Refreshed by every operation on the container; it expires `expires_after_minutes`
    -- after it (the only anchor OpenAI has).
    last_active_at  BIGINT NOT NULL,
    expires_after_minutes INTEGER NOT NULL DEFAULT 20,
    memory_limit    TEXT NOT NULL DEFAULT '1g',
    -- `running`, or `expired` once its data was discarded (it stays listed).
    status          TEXT NOT NULL DEFAULT 'running',
    data            JSONB NOT NULL
);
CREATE INDEX containers_project_seq ON containers (project, seq);
CREATE INDEX containers_running ON containers (last_active_at) WHERE status = 'running';

-- A file in a container's /mnt/data: uploaded (`user`) or written by its code (`assistant`).
-- Its bytes are also kept in the blob store (`blob_key`), so its content can be served where
-- the session is not live.
CREATE TABLE container_files (
    seq          BIGSERIAL UNIQUE NOT NULL,
    id           TEXT PRIMARY KEY,
    container_id TEXT NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    project      TEXT NOT NULL,
    path         TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    source       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    blob_key     TEXT,
    data         JSONB NOT NULL,
    UNIQUE (container_id, path)
);
CREATE INDEX container_files_container_seq ON container_files (container_id, seq);

-- Sandbox sessions are no longer only threads': a placement's or checkpoint's `thread_id` is
-- the session key (a thread id or a container id). Deleting a thread or a container removes
-- its rows explicitly.
ALTER TABLE placements DROP CONSTRAINT placements_thread_id_fkey;
ALTER TABLE sandbox_checkpoints DROP CONSTRAINT sandbox_checkpoints_thread_id_fkey;

-- The sandbox session a run's code runs in: NULL for its thread's, else a container id.
ALTER TABLE runs ADD COLUMN session_id TEXT;
