-- Items of a conversation (or a response's input) that are neither a user/assistant message nor a
-- tool call this server ran: system/developer messages, function calls and outputs, code and search
-- calls and reasoning items a client added by hand or replayed from its own history. They keep their
-- place among the thread's items (`item_seq`), and the model reads them right after `after_message`
-- (the thread message they followed; NULL: before every message).
CREATE TABLE thread_items (
    id            TEXT NOT NULL,
    project       TEXT NOT NULL,
    thread_id     TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    item_seq      BIGINT NOT NULL DEFAULT nextval('item_seq'),
    after_message TEXT,
    data          JSONB NOT NULL,
    PRIMARY KEY (thread_id, id)
);
CREATE INDEX thread_items_thread_item_seq ON thread_items (thread_id, item_seq);
CREATE INDEX thread_items_project_id ON thread_items (project, id);
