-- A retry clears the previous attempt's cancel request.
--
-- cancel_requested_at is set when a running task is asked to cancel (the
-- API's cancel, or River's JobCancel through it) and shows until the worker
-- returns. A task retried after that (by the API, River UI or an app's
-- JobRetry) used to keep the old time: attempt 2 ran and completed still
-- showing a cancel request, and a later real cancel kept the old time. The
-- sync trigger now clears it, like progress, whenever the job waits for an
-- attempt (available, scheduled, pending, retryable).
--
-- Rolling deploy: safe; the function changes in place and old binaries do
-- not depend on the column keeping a stale value.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_sync() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE tasks SET
        state        = n.state::text,
        attempt      = n.attempt,
        max_attempts = n.max_attempts,
        errors       = coalesce(to_jsonb(n.errors), '[]'::jsonb),
        result       = CASE WHEN n.state = 'completed'
                            THEN n.metadata -> 'output' END,
        -- A task waiting for its next attempt has no progress yet.
        progress     = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                            THEN NULL ELSE tasks.progress END,
        -- Nor a cancel request: that was for an attempt that has ended.
        cancel_requested_at = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                                   THEN NULL ELSE tasks.cancel_requested_at END,
        scheduled_at = n.scheduled_at,
        started_at   = n.attempted_at,
        finished_at  = n.finalized_at
    FROM handoff_new n
    WHERE tasks.id = n.id
      AND (tasks.state IS DISTINCT FROM n.state::text
           OR tasks.attempt IS DISTINCT FROM n.attempt
           OR tasks.scheduled_at IS DISTINCT FROM n.scheduled_at
           OR tasks.result IS DISTINCT FROM CASE WHEN n.state = 'completed'
                                                 THEN n.metadata -> 'output' END);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_sync() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE tasks SET
        state        = n.state::text,
        attempt      = n.attempt,
        max_attempts = n.max_attempts,
        errors       = coalesce(to_jsonb(n.errors), '[]'::jsonb),
        result       = CASE WHEN n.state = 'completed'
                            THEN n.metadata -> 'output' END,
        -- A task waiting for its next attempt has no progress yet.
        progress     = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                            THEN NULL ELSE tasks.progress END,
        scheduled_at = n.scheduled_at,
        started_at   = n.attempted_at,
        finished_at  = n.finalized_at
    FROM handoff_new n
    WHERE tasks.id = n.id
      AND (tasks.state IS DISTINCT FROM n.state::text
           OR tasks.attempt IS DISTINCT FROM n.attempt
           OR tasks.scheduled_at IS DISTINCT FROM n.scheduled_at
           OR tasks.result IS DISTINCT FROM CASE WHEN n.state = 'completed'
                                                 THEN n.metadata -> 'output' END);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
