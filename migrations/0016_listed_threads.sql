-- GET /v1/threads lists the threads made through the threads API (or create-and-run), not the
-- backing threads of response chains and conversations, which are the Responses surface's
-- detail. New rows default to a backing thread; the threads API marks its own.
ALTER TABLE threads ADD COLUMN origin TEXT NOT NULL DEFAULT 'backing';
UPDATE threads SET origin = 'threads'
    WHERE id NOT IN (SELECT thread_id FROM responses)
      AND id NOT IN (SELECT thread_id FROM conversations);
CREATE INDEX threads_project_origin_seq ON threads (project, origin, seq);
