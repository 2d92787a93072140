-- Skills (the Skills API): versioned, immutable bundles of files with a SKILL.md. A version's
-- files are in the blob store (a zip we wrote); the rows say what it is. Version numbers count
-- up per skill and are never reused (`next_version`), so "version 3" always means the same bytes.
CREATE TABLE skills (
    seq             BIGSERIAL UNIQUE NOT NULL,
    id              TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    default_version INTEGER NOT NULL,
    latest_version  INTEGER NOT NULL,
    next_version    INTEGER NOT NULL
);
CREATE INDEX skills_project_seq ON skills (project, seq);

CREATE TABLE skill_versions (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    skill_id    TEXT NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
    project     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- Uncompressed bytes and file count of the bundle.
    bytes       BIGINT NOT NULL,
    files       INTEGER NOT NULL,
    UNIQUE (skill_id, version)
);

-- The skills a container was created with, resolved: [{name, description, path, key, blob}]
-- (`key` names the bundle in the hosts' caches, `blob` its zip in the blob store). Not part of
-- the container object, which does not echo skills.
ALTER TABLE containers ADD COLUMN skills JSONB NOT NULL DEFAULT '[]';
