-- Live task events: NOTIFY for the tasks somebody watches, and only those.
--
-- A process that streams a task's events (GET /v1/tasks/{id}/events, the
-- task page, ?wait=) puts a row in task_watch for as long as it has a
-- client for that task. A statement-level trigger on tasks joins the rows
-- the statement changed with task_watch and sends ONE NOTIFY on channel
-- handoff_task per statement (more only past 400 ids, to stay under
-- Postgres's 8000-byte payload limit), whose payload is the changed ids,
-- comma-separated: listeners read the rows themselves.
--
-- Why the watch table: NOTIFY takes a global lock from the notifying
-- transaction's commit to the end of its WAL flush, so it serialises the
-- commits of every notifying transaction. A busy queue would pay that on
-- every state change if every change notified; with the table, a statement
-- that changes no watched task does one index probe of an (almost always)
-- tiny table and sends nothing. docs/live.md has the figures.
--
-- task_watch is UNLOGGED: it is rewritten on every stream open and close,
-- is worthless after a crash (its streams are gone), and must not add WAL.
-- After a Postgres crash it comes back empty; each process re-inserts its
-- watches when its listener reconnects. owner is a process's random id;
-- seen_at is refreshed by the owner every minute, so the rows of a process
-- that died are swept by the others.
--
-- The existing sync function (handoff_task_sync) is left untouched: this
-- is a separate AFTER UPDATE trigger on tasks, which fires for the updates
-- that function makes, for progress writes and for cancel requests.

-- +goose Up
CREATE UNLOGGED TABLE task_watch (
    task_id bigint      NOT NULL,
    owner   text        NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, owner)
);

CREATE INDEX task_watch_seen_at_idx ON task_watch (seen_at);

-- The plan is pinned to a nested loop over task_watch's key, as
-- handoff_task_sync pins its own: the planner knows nothing of a transition
-- table's size, and hashing the whole watch table for every statement costs
-- more than probing it once per changed row.
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
    AFTER UPDATE ON tasks
    REFERENCING NEW TABLE AS handoff_changed
    FOR EACH STATEMENT
    EXECUTE FUNCTION handoff_task_notify();

-- +goose Down
DROP TRIGGER IF EXISTS tasks_notify_watchers ON tasks;
DROP FUNCTION IF EXISTS handoff_task_notify();
DROP TABLE IF EXISTS task_watch;
