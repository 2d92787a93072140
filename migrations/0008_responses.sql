-- Responses (/v1/responses): each is executed as a run of the same executor, on a backing
-- thread (its own, or the one its previous_response_id chain or conversation uses). Its
-- output items are that run's steps from `first_step_seq` on: a response that continues a
-- run after function outputs owns only the steps made after it, and the one it continued
-- is frozen (its final object kept) when that happens.
CREATE TABLE responses (
    seq            BIGSERIAL UNIQUE NOT NULL,
    id             TEXT PRIMARY KEY,
    project        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    thread_id      TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    first_step_seq BIGINT NOT NULL DEFAULT 0,
    -- The run's usage when this response began (a continued run keeps counting).
    usage_before   JSONB NOT NULL DEFAULT '{}',
    -- The request's fields the object echoes, and what it ran with (container, include).
    request        JSONB NOT NULL,
    -- Input items with their ids, for /input_items.
    input          JSONB NOT NULL DEFAULT '[]',
    -- The final object, once another response continued its run.
    frozen         JSONB
);
CREATE INDEX responses_run ON responses (run_id, seq);

-- Conversations (/v1/conversations): each has a backing thread whose messages and run steps
-- are its items. One sequence orders messages and steps together, so the items of a
-- conversation list in the order they were made.
CREATE TABLE conversations (
    seq        BIGSERIAL UNIQUE NOT NULL,
    id         TEXT PRIMARY KEY,
    project    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    thread_id  TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    data       JSONB NOT NULL
);
CREATE SEQUENCE item_seq;
ALTER TABLE messages ADD COLUMN item_seq BIGINT NOT NULL DEFAULT nextval('item_seq');
ALTER TABLE run_steps ADD COLUMN item_seq BIGINT NOT NULL DEFAULT nextval('item_seq');
CREATE INDEX messages_thread_item_seq ON messages (thread_id, item_seq);
CREATE INDEX run_steps_thread_item_seq ON run_steps (thread_id, item_seq);

-- The events of a background response created with stream=true, for
-- GET /v1/responses/{id}?stream=true&starting_after=N.
CREATE TABLE response_events (
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    data        JSONB NOT NULL,
    PRIMARY KEY (response_id, seq)
);
