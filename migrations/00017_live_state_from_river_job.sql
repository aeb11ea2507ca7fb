-- One write of the durable record per job instead of two: a running task's
-- state is read from river_job, not copied into the record.
--
-- Until this version the sync trigger (00009, 00011, 00013) copied every
-- change of a job into its tasks row, the fetch included: each job cost two
-- non-HOT updates of tasks (running, then finished), each a new tuple and a
-- new entry in every index of the table, since state is indexed. The fetch's
-- copy was the biggest single cost of a drain (docs/performance.md, "One
-- write per job"), and River's fetch is its serial critical path.
--
-- Now:
--
--  1. The table is task_records. The sync trigger no longer copies the fetch
--     (a job becoming 'running'), unless somebody watches the task (a row in
--     task_watch: an event stream or a ?wait=, migration 00014), whose
--     watcher must hear of it at once. Every other change is copied as
--     before, in River's own statement: results are still recorded exactly
--     once, in the transaction that finishes the job.
--  2. tasks is a view with the table's columns, in the table's order: a
--     record that says 'available' whose job is running shows 'running',
--     with the job's attempt and attempted_at. Everything that reads tasks
--     (the API, handoff.enqueue, an app's SQL, the README's queries) sees
--     what it saw before. A task whose record says 'available' has its job
--     (the cleaner deletes only finished jobs; a job deleted unfinished
--     cancels its task, 00009), so the join costs one primary-key probe of
--     river_job for such rows only.
--  3. The functions that write the record write task_records.
--
-- The view cannot be filtered by state through an index (its state is an
-- expression); internal/store's list queries select ids from task_records
-- and read the view by id, and a filter on 'running' starts from river_job,
-- whose running jobs are bounded by the workers (internal/store/task.sql).
--
-- Deploying: rolling-safe. A binary from before it reads tasks as before,
-- and writes progress and cancel requests with UPDATE tasks, which the
-- view's INSTEAD OF trigger takes to task_records.

-- +goose Up
ALTER TABLE tasks RENAME TO task_records;

-- +goose StatementBegin
CREATE VIEW tasks AS
SELECT r.id, r.kind, r.queue, r.priority, r.args,
       CASE WHEN j.id IS NULL THEN r.state ELSE 'running' END AS state,
       coalesce(j.attempt, r.attempt) AS attempt,
       r.max_attempts, r.errors, r.result, r.progress,
       r.idempotency_key, r.request_hash, r.created_at, r.scheduled_at,
       coalesce(j.attempted_at, r.started_at) AS started_at,
       r.finished_at, r.cancel_requested_at, r.tenant, r.callback_url
FROM task_records r
LEFT JOIN river_job j ON j.id = r.id AND r.state = 'available' AND j.state = 'running';
-- +goose StatementEnd

-- A binary from before this version writes progress and cancel requests
-- with UPDATE tasks (and would during a rolling deploy): the view takes
-- those two columns to the record. Any other change through the view is
-- refused, naming the table to write.
-- +goose StatementBegin
CREATE FUNCTION handoff_tasks_view_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF (NEW.id, NEW.kind, NEW.queue, NEW.priority, NEW.args, NEW.state, NEW.attempt,
        NEW.max_attempts, NEW.errors, NEW.result, NEW.idempotency_key, NEW.request_hash,
        NEW.created_at, NEW.scheduled_at, NEW.started_at, NEW.finished_at, NEW.tenant,
        NEW.callback_url)
       IS DISTINCT FROM
       (OLD.id, OLD.kind, OLD.queue, OLD.priority, OLD.args, OLD.state, OLD.attempt,
        OLD.max_attempts, OLD.errors, OLD.result, OLD.idempotency_key, OLD.request_hash,
        OLD.created_at, OLD.scheduled_at, OLD.started_at, OLD.finished_at, OLD.tenant,
        OLD.callback_url) THEN
        RAISE EXCEPTION 'tasks is a view: only progress and cancel_requested_at may be updated through it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Handoff keeps task_records; River changes tasks through river_job.';
    END IF;
    UPDATE task_records SET progress = NEW.progress, cancel_requested_at = NEW.cancel_requested_at
    WHERE id = OLD.id;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER tasks_update
    INSTEAD OF UPDATE ON tasks
    FOR EACH ROW
    EXECUTE FUNCTION handoff_tasks_view_update();

COMMENT ON VIEW tasks IS 'One row per accepted task, with its live state: the durable record (task_records) overlaid with its River job while the job runs. Read tasks; Handoff writes task_records.';

-- As in 00013, on task_records, without the fetch unless the task is watched;
-- and it tells the watchers of the tasks it changed itself (below).
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

-- Watchers were told by a statement trigger on tasks (00014), which made
-- Postgres keep a transition table of every row of every update of tasks,
-- the finish of every job included, to find the few watched ones: ~4 µs of
-- Postgres CPU per task of a drain (docs/performance.md). The sync trigger
-- and the deleted-job trigger now tell the watchers of the rows they change,
-- and a row trigger, which keeps no transition table and whose WHEN clause
-- passes over the sync's rows, covers Handoff's own writes of progress and
-- cancel requests.
DROP TRIGGER tasks_notify_watchers ON task_records;
DROP FUNCTION handoff_task_notify();

-- +goose StatementBegin
CREATE FUNCTION handoff_notify_watchers(ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF ids IS NULL THEN
        RETURN;
    END IF;
    -- 400 ids of at most 19 digits and a comma stay under the 8000-byte
    -- payload limit.
    FOR i IN 1 .. cardinality(ids) BY 400 LOOP
        PERFORM pg_notify('handoff_task', array_to_string(ids[i:i + 399], ','));
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION handoff_task_notify_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = NEW.id) THEN
        PERFORM pg_notify('handoff_task', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- The sync also writes progress and cancel_requested_at, but clears them
-- only when a job goes back to waiting (and then tells the watchers
-- itself: a duplicate NOTIFY in one transaction is sent once).
CREATE TRIGGER task_records_notify_watchers
    AFTER UPDATE OF progress, cancel_requested_at ON task_records
    FOR EACH ROW
    WHEN (OLD.progress IS DISTINCT FROM NEW.progress
          OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at)
    EXECUTE FUNCTION handoff_task_notify_row();

-- As in 00012, into task_records.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_insert() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO task_records (
        id, kind, queue, priority, args, state, attempt, max_attempts,
        idempotency_key, request_hash, created_at, scheduled_at,
        tenant, callback_url)
    SELECT n.id, n.kind, n.queue, n.priority, n.args, n.state::text, n.attempt, n.max_attempts,
           n.metadata ->> 'handoff_idempotency_key',
           decode(n.metadata ->> 'handoff_request_hash', 'hex'),
           n.created_at, n.scheduled_at,
           coalesce(n.metadata ->> 'handoff_tenant', 'default'),
           n.metadata ->> 'handoff_callback_url'
    FROM handoff_new n;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- As in 00011, on task_records, with the job's attempt, and telling the
-- task's watchers.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_job_deleted() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    -- The record may not have seen the job's last fetch: the job says
    -- which attempt it was on.
    UPDATE task_records SET
        state        = 'cancelled',
        attempt      = OLD.attempt,
        max_attempts = OLD.max_attempts,
        started_at   = OLD.attempted_at,
        finished_at  = now(),
        errors       = errors || jsonb_build_array(jsonb_build_object(
                           'attempt', OLD.attempt, 'at', now(),
                           'error', 'job deleted before it finished'))
    WHERE id = OLD.id;
    IF FOUND AND EXISTS (SELECT 1 FROM task_watch w WHERE w.task_id = OLD.id) THEN
        PERFORM pg_notify('handoff_task', OLD.id::text);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER tasks_update ON tasks;
DROP FUNCTION handoff_tasks_view_update();
DROP TRIGGER task_records_notify_watchers ON task_records;
DROP FUNCTION handoff_task_notify_row();

-- As 00014 made it.
-- +goose StatementBegin
CREATE FUNCTION handoff_task_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    ids bigint[];
BEGIN
    -- The common case, nobody watching anything, costs one probe.
    IF NOT EXISTS (SELECT 1 FROM task_watch) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(DISTINCT c.id) INTO ids
    FROM handoff_changed c
    WHERE EXISTS (SELECT 1 FROM task_watch t WHERE t.task_id = c.id);
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    -- 400 ids of at most 19 digits and a comma stay under the 8000-byte
    -- payload limit.
    FOR i IN 1 .. cardinality(ids) BY 400 LOOP
        PERFORM pg_notify('handoff_task', array_to_string(ids[i:i + 399], ','));
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER tasks_notify_watchers
    AFTER UPDATE ON task_records
    REFERENCING NEW TABLE AS handoff_changed
    FOR EACH STATEMENT
    EXECUTE FUNCTION handoff_task_notify();

-- Copy the running state of the jobs that run now into their records, as
-- the old trigger would have, before the table takes its name back.
DROP VIEW tasks;
ALTER TABLE task_records RENAME TO tasks;

UPDATE tasks t SET state = 'running', attempt = j.attempt, started_at = j.attempted_at
FROM river_job j
WHERE j.id = t.id AND t.state = 'available' AND j.state = 'running';

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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_insert() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO tasks (
        id, kind, queue, priority, args, state, attempt, max_attempts,
        idempotency_key, request_hash, created_at, scheduled_at,
        tenant, callback_url)
    SELECT n.id, n.kind, n.queue, n.priority, n.args, n.state::text, n.attempt, n.max_attempts,
           n.metadata ->> 'handoff_idempotency_key',
           decode(n.metadata ->> 'handoff_request_hash', 'hex'),
           n.created_at, n.scheduled_at,
           coalesce(n.metadata ->> 'handoff_tenant', 'default'),
           n.metadata ->> 'handoff_callback_url'
    FROM handoff_new n;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_job_deleted() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE tasks SET
        state       = 'cancelled',
        finished_at = now(),
        errors      = errors || jsonb_build_array(jsonb_build_object(
                          'attempt', OLD.attempt, 'at', now(),
                          'error', 'job deleted before it finished'))
    WHERE id = OLD.id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

DROP FUNCTION handoff_notify_watchers(bigint[]);
