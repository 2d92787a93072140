-- Vector stores for file_search. A store's files are indexed into chunks at add time; chunks
-- are searched with Postgres full-text search (no embedding model needed).

CREATE TABLE vector_stores (
    seq         BIGSERIAL UNIQUE NOT NULL,
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    data        JSONB NOT NULL
);
CREATE INDEX vector_stores_project_seq ON vector_stores (project, seq);

-- A file in a store; `id` is the file's id, so it repeats across stores.
CREATE TABLE vector_store_files (
    seq              BIGSERIAL UNIQUE NOT NULL,
    id               TEXT NOT NULL,
    vector_store_id  TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    project          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    data             JSONB NOT NULL,
    PRIMARY KEY (vector_store_id, id)
);
CREATE INDEX vector_store_files_store_seq ON vector_store_files (vector_store_id, seq);

CREATE TABLE vector_store_file_batches (
    seq              BIGSERIAL UNIQUE NOT NULL,
    id               TEXT PRIMARY KEY,
    vector_store_id  TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    project          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    data             JSONB NOT NULL
);
CREATE INDEX vector_store_file_batches_store_seq ON vector_store_file_batches (vector_store_id, seq);

CREATE TABLE vector_store_chunks (
    vector_store_id  TEXT NOT NULL,
    file_id          TEXT NOT NULL,
    idx              INT NOT NULL,
    content          TEXT NOT NULL,
    tsv              TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    PRIMARY KEY (vector_store_id, file_id, idx),
    FOREIGN KEY (vector_store_id, file_id)
        REFERENCES vector_store_files (vector_store_id, id) ON DELETE CASCADE
);
CREATE INDEX vector_store_chunks_tsv ON vector_store_chunks USING GIN (tsv);
