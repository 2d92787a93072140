-- A thread's sandbox checkpoint: its /mnt/data and Python namespace, saved to the blob store
-- when the session ended (idle, evicted, graceful shutdown) or periodically while it ran, and
-- restored into the thread's next session on any replica. Deleting the thread deletes the row
-- (the server removes the blob); rows unused for ASSISTD_SANDBOX_RETAIN_SECS are swept.
CREATE TABLE sandbox_checkpoints (
    thread_id     TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    blob_key      TEXT NOT NULL,
    size          BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- What the checkpoint holds: variables kept and not kept (with reasons), file count.
    metadata      JSONB NOT NULL
);
CREATE INDEX sandbox_checkpoints_last_used ON sandbox_checkpoints (last_used_at);
