-- Lookups the Responses API makes by something other than a primary key: the newest
-- response on a thread (the container a chain or conversation keeps, the response a
-- conversation's function outputs answer), and the items an `item_reference` names — an
-- input item kept with a response, or a function call recorded in a run step.
CREATE INDEX responses_thread ON responses (thread_id, seq);
CREATE INDEX responses_input_ids ON responses USING gin (input jsonb_path_ops);
CREATE INDEX run_steps_tool_call_ids ON run_steps
    USING gin ((data->'step_details'->'tool_calls') jsonb_path_ops)
    WHERE data->'step_details'->>'type' = 'tool_calls';
