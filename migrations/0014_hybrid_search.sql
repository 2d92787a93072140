-- Hybrid file_search: BM25 over the chunks' tsvectors and exact search over their embeddings.
--
-- BM25 needs each chunk's length in tokens and, per store, the number of chunks, their total
-- length and how many chunks hold each lexeme. A statement trigger on the chunks keeps those
-- counts as chunks come and go (also through cascades: a file removed, a store deleted), and
-- moves the store's `version` on, so a replica's in-memory copy of the store's vectors knows
-- when it is stale.

ALTER TABLE vector_store_chunks
    ADD COLUMN tokens INT NOT NULL DEFAULT 0,
    -- Unit length, or NULL when the file was indexed without an embedding upstream.
    ADD COLUMN embedding REAL[];

UPDATE vector_store_chunks
SET tokens = (SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0) FROM unnest(tsv));

CREATE SEQUENCE vector_store_versions;

CREATE TABLE vector_store_stats (
    vector_store_id       TEXT PRIMARY KEY REFERENCES vector_stores (id) ON DELETE CASCADE,
    chunks                BIGINT NOT NULL DEFAULT 0,
    tokens                BIGINT NOT NULL DEFAULT 0,
    version               BIGINT NOT NULL DEFAULT nextval('vector_store_versions'),
    -- What the store's chunks were embedded with: set by the first file embedded, kept after,
    -- so every vector of a store is comparable with a query embedded the same way.
    embedding_model       TEXT,
    embedding_dimensions  INT
);

CREATE TABLE vector_store_terms (
    vector_store_id  TEXT NOT NULL REFERENCES vector_stores (id) ON DELETE CASCADE,
    lexeme           TEXT NOT NULL,
    -- Chunks of the store holding the lexeme.
    chunks           BIGINT NOT NULL,
    PRIMARY KEY (vector_store_id, lexeme)
);

INSERT INTO vector_store_stats (vector_store_id, chunks, tokens)
SELECT c.vector_store_id, count(*), sum(c.tokens)
FROM vector_store_chunks c JOIN vector_stores s ON s.id = c.vector_store_id
GROUP BY 1;

INSERT INTO vector_store_terms (vector_store_id, lexeme, chunks)
SELECT c.vector_store_id, u.lexeme, count(*)
FROM vector_store_chunks c JOIN vector_stores s ON s.id = c.vector_store_id, unnest(c.tsv) u
GROUP BY 1, 2;

-- Writers of one store serialise on its stats row (taken first, stores in id order), so the
-- term rows after it are never locked in two orders.
CREATE FUNCTION vector_store_chunks_added() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;

CREATE FUNCTION vector_store_chunks_removed() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;

CREATE TRIGGER vector_store_chunks_added AFTER INSERT ON vector_store_chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION vector_store_chunks_added();
CREATE TRIGGER vector_store_chunks_removed AFTER DELETE ON vector_store_chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION vector_store_chunks_removed();
