-- The sync trigger returns at once from a statement with nothing to copy:
-- River's fetch (every row becomes 'running') of tasks nobody watches.
--
-- The trigger fires for every UPDATE of river_job, River's fetch included,
-- and until this version ran its UPDATE of task_records even when the
-- fetch's rows were all filtered out: Postgres set up that UPDATE (the
-- table, its five indexes and its row triggers) for nothing, ~150-190 µs a
-- fetch statement (docs/performance.md, "Issue 11, fourth session"). With
-- FETCH_COOLDOWN=1ms a busy server fetches ~4 times as often as River's
-- default, and a quiet one fetches a job or two at a time. The function is
-- 00017's otherwise, and calls handoff_notify_watchers only with ids.
--
-- Rolling deploy: safe. The function is replaced in place and does what it
-- did before for every statement.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_sync() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET search_path FROM CURRENT
AS $$
DECLARE
    ids bigint[];
    -- Nobody watching anything, the common case, costs one probe.
    watching boolean := EXISTS (SELECT 1 FROM task_watch);
BEGIN
    -- River's fetch makes every row 'running', which the record does not
    -- copy unless somebody watches that task: then there is nothing to
    -- write, and the UPDATE below (its executor set-up alone ~150 µs) is
    -- skipped. The condition is the UPDATE's own filter.
    IF NOT EXISTS (SELECT 1 FROM handoff_new n
                   WHERE n.state <> 'running'
                      OR (watching AND EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = n.id))) THEN
        RETURN NULL;
    END IF;
    WITH changed AS (
        UPDATE task_records t SET
            state        = n.state::text,
            attempt      = n.attempt,
            max_attempts = n.max_attempts,
            errors       = coalesce(to_jsonb(n.errors), '[]'::jsonb),
            result       = CASE WHEN n.state = 'completed'
                                THEN n.metadata -> 'output' END,
            -- A task waiting for its next attempt has no progress yet.
            progress     = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                                THEN NULL ELSE t.progress END,
            -- Nor a cancel request: that was for an attempt that has ended.
            cancel_requested_at = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                                       THEN NULL ELSE t.cancel_requested_at END,
            scheduled_at = n.scheduled_at,
            started_at   = n.attempted_at,
            finished_at  = n.finalized_at
        FROM handoff_new n
        WHERE t.id = n.id
          -- The fetch is read from river_job by the tasks view; it is copied
          -- only for a watched task, whose watcher is told below.
          AND (n.state <> 'running'
               OR (watching AND EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = n.id)))
          AND (t.state IS DISTINCT FROM n.state::text
               OR t.attempt IS DISTINCT FROM n.attempt
               OR t.scheduled_at IS DISTINCT FROM n.scheduled_at
               OR t.result IS DISTINCT FROM CASE WHEN n.state = 'completed'
                                                 THEN n.metadata -> 'output' END)
        RETURNING t.id)
    SELECT array_agg(c.id) INTO ids
    FROM changed c
    WHERE watching AND EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = c.id);
    IF ids IS NOT NULL THEN
        PERFORM handoff_notify_watchers(ids);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- As 00017 made it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_sync() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET search_path FROM CURRENT
AS $$
DECLARE
    ids bigint[];
    -- Nobody watching anything, the common case, costs one probe.
    watching boolean := EXISTS (SELECT 1 FROM task_watch);
BEGIN
    WITH changed AS (
        UPDATE task_records t SET
            state        = n.state::text,
            attempt      = n.attempt,
            max_attempts = n.max_attempts,
            errors       = coalesce(to_jsonb(n.errors), '[]'::jsonb),
            result       = CASE WHEN n.state = 'completed'
                                THEN n.metadata -> 'output' END,
            -- A task waiting for its next attempt has no progress yet.
            progress     = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                                THEN NULL ELSE t.progress END,
            -- Nor a cancel request: that was for an attempt that has ended.
            cancel_requested_at = CASE WHEN n.state IN ('available', 'scheduled', 'pending', 'retryable')
                                       THEN NULL ELSE t.cancel_requested_at END,
            scheduled_at = n.scheduled_at,
            started_at   = n.attempted_at,
            finished_at  = n.finalized_at
        FROM handoff_new n
        WHERE t.id = n.id
          -- The fetch is read from river_job by the tasks view; it is copied
          -- only for a watched task, whose watcher is told below.
          AND (n.state <> 'running'
               OR (watching AND EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = n.id)))
          AND (t.state IS DISTINCT FROM n.state::text
               OR t.attempt IS DISTINCT FROM n.attempt
               OR t.scheduled_at IS DISTINCT FROM n.scheduled_at
               OR t.result IS DISTINCT FROM CASE WHEN n.state = 'completed'
                                                 THEN n.metadata -> 'output' END)
        RETURNING t.id)
    SELECT array_agg(c.id) INTO ids
    FROM changed c
    WHERE watching AND EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = c.id);
    PERFORM handoff_notify_watchers(ids);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
