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

-- +goose StatementBegin
CREATE FUNCTION handoff_task_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    ids text;
BEGIN
    -- The common case, nobody watching anything, costs one probe.
    IF NOT EXISTS (SELECT 1 FROM task_watch) THEN
        RETURN NULL;
    END IF;
    FOR ids IN
        SELECT string_agg(w.id::text, ',' ORDER BY w.id)
        FROM (
            SELECT n.id, (row_number() OVER (ORDER BY n.id) - 1) / 400 AS chunk
            FROM (SELECT DISTINCT c.id FROM handoff_changed c) n
            WHERE EXISTS (SELECT 1 FROM task_watch t WHERE t.task_id = n.id)
        ) w
        GROUP BY w.chunk
    LOOP
        PERFORM pg_notify('handoff_task', ids);
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
