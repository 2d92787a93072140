-- Which files of a store changed at which version, so a replica holding a store's keyword index
-- and vectors as of version V reads only the files added or removed since (their chunks now)
-- instead of the whole store. The chunk triggers write one row per (statement, store, file);
-- rows older than an hour are dropped as the store changes, and `changes_since` records the
-- newest version dropped: a copy older than it cannot be brought up to date by the log and is
-- read whole.

CREATE TABLE vector_store_changes (
    vector_store_id  TEXT NOT NULL REFERENCES vector_store_stats (vector_store_id) ON DELETE CASCADE,
    version          BIGINT NOT NULL,
    file_id          TEXT NOT NULL,
    at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX vector_store_changes_by_version ON vector_store_changes (vector_store_id, version);

ALTER TABLE vector_store_stats ADD COLUMN changes_since BIGINT NOT NULL DEFAULT 0;
-- Nothing is logged for what happened before: copies held now are read whole once.
UPDATE vector_store_stats SET changes_since = version;

-- Logs the files a statement touched at the store's new version, and drops the store's old rows.
-- Stores already gone (a cascade deleting a store's chunks after its stats row) log nothing.
CREATE FUNCTION vector_store_log_changes(changed JSONB) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vector_store_changes (vector_store_id, version, file_id)
    SELECT c.vector_store_id, s.version, c.file_id
    FROM (SELECT DISTINCT x->>0 AS vector_store_id, x->>1 AS file_id FROM jsonb_array_elements(changed) x) c
    JOIN vector_store_stats s ON s.vector_store_id = c.vector_store_id;
    WITH gone AS (
        DELETE FROM vector_store_changes c
        WHERE c.vector_store_id IN (SELECT DISTINCT x->>0 FROM jsonb_array_elements(changed) x)
          AND c.at < now() - interval '1 hour'
        RETURNING c.vector_store_id, c.version
    )
    UPDATE vector_store_stats s SET changes_since = greatest(s.changes_since, g.version)
    FROM (SELECT vector_store_id, max(version) AS version FROM gone GROUP BY 1) g
    WHERE s.vector_store_id = g.vector_store_id;
END $$;

CREATE OR REPLACE FUNCTION vector_store_chunks_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vector_store_stats AS s (vector_store_id, chunks, tokens)
    SELECT vector_store_id, count(*), sum(tokens) FROM added GROUP BY 1 ORDER BY 1
    ON CONFLICT (vector_store_id) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks,
            tokens = s.tokens + EXCLUDED.tokens,
            version = nextval('vector_store_versions');
    INSERT INTO vector_store_terms AS t (vector_store_id, lexeme, chunks)
    SELECT a.vector_store_id, u.lexeme, count(*) FROM added a, unnest(a.tsv) u GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (vector_store_id, lexeme) DO UPDATE SET chunks = t.chunks + EXCLUDED.chunks;
    PERFORM vector_store_log_changes(
        (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(vector_store_id, file_id)), '[]') FROM added));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION vector_store_chunks_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE vector_store_stats s
    SET chunks = s.chunks - d.chunks, tokens = s.tokens - d.tokens,
        version = nextval('vector_store_versions')
    FROM (SELECT vector_store_id, count(*) AS chunks, sum(tokens) AS tokens
          FROM removed GROUP BY 1 ORDER BY 1) d
    WHERE s.vector_store_id = d.vector_store_id;
    UPDATE vector_store_terms t SET chunks = t.chunks - d.chunks
    FROM (SELECT r.vector_store_id, u.lexeme, count(*) AS chunks
          FROM removed r, unnest(r.tsv) u GROUP BY 1, 2 ORDER BY 1, 2) d
    WHERE t.vector_store_id = d.vector_store_id AND t.lexeme = d.lexeme;
    DELETE FROM vector_store_terms t
    WHERE t.chunks <= 0 AND t.vector_store_id IN (SELECT DISTINCT vector_store_id FROM removed);
    PERFORM vector_store_log_changes(
        (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(vector_store_id, file_id)), '[]') FROM removed));
    RETURN NULL;
END $$;
