-- The change feed: every insert, update or delete of an assistant, a thread or a message
-- announces the id its cached reads are filed under (the assistant's or the thread's) on the
-- `assistd_changes` channel, when its transaction commits. Each server drops those entries of
-- its read cache. Triggers, not application code, so that no write path can forget.
CREATE FUNCTION assistd_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_data record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_data := OLD;
    ELSE
        row_data := NEW;
    END IF;
    IF TG_TABLE_NAME = 'messages' THEN
        PERFORM pg_notify('assistd_changes', row_data.thread_id);
    ELSE
        PERFORM pg_notify('assistd_changes', row_data.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER assistants_announce AFTER INSERT OR UPDATE OR DELETE ON assistants
    FOR EACH ROW EXECUTE FUNCTION assistd_announce_change();
CREATE TRIGGER threads_announce AFTER INSERT OR UPDATE OR DELETE ON threads
    FOR EACH ROW EXECUTE FUNCTION assistd_announce_change();
CREATE TRIGGER messages_announce AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION assistd_announce_change();
