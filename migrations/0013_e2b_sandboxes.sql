-- E2B's sandboxes (the /e2b surface). Each is a container (same id, project, session,
-- checkpoints, memory limit), listed in /v1/containers too; this table holds what only E2B has.
--
-- E2B's `timeout` is a deadline, not an idle time: a container with `expires_at` expires then,
-- whatever its activity (`POST /sandboxes/{id}/timeout` moves it); without one it expires
-- `expires_after_minutes` after `last_active_at`, as before.
ALTER TABLE containers ADD COLUMN expires_at BIGINT;

CREATE TABLE e2b_sandboxes (
    id            TEXT PRIMARY KEY REFERENCES containers (id) ON DELETE CASCADE,
    project       TEXT NOT NULL,
    template_id   TEXT NOT NULL,
    metadata      JSONB NOT NULL DEFAULT '{}',
    -- `envdAccessToken`: the data plane's credential for this one sandbox (the SDKs send it
    -- as X-Access-Token, and as E2B-Traffic-Access-Token where they send no other).
    access_token  TEXT NOT NULL,
    -- What the client asked for, and what it got under the operator's network setting.
    allow_internet_access BOOLEAN NOT NULL DEFAULT TRUE,
    internet_access       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX e2b_sandboxes_project ON e2b_sandboxes (project);
