-- Messages still being written, so the sweep after a dead worker finds them without a scan
-- (as run_steps_open does for steps).
CREATE INDEX messages_open ON messages (run_id) WHERE data->>'status' = 'in_progress';
