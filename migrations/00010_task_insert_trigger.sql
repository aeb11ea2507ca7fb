-- Every River job gets its tasks row from a trigger, in the job's own INSERT.
--
-- Until this version the API inserted the job (River's InsertTx) and then the
-- tasks row, in an explicit transaction: BEGIN, two INSERTs, COMMIT, four
-- round trips. With the row written by the job's INSERT itself, accepting a
-- task is one statement, atomic on its own, so it needs no explicit
-- transaction: one round trip. docs/performance.md has the measurements
-- (raw pgx, 32 clients: two inserts in a transaction ~7.5k/s, one statement
-- with this trigger ~11-13k/s).
--
-- It also means a job inserted by anything else (a Go app calling River's
-- InsertTx in its own domain transaction, a River periodic job) is a task
-- too, visible in the API.
--
-- Deploying: a binary from before this version inserts the tasks row itself
-- and collides with the row the trigger wrote (every POST would fail), so
-- this one migration needs the old replicas stopped before it is applied,
-- not a rolling deploy (README, "Deploying").
--
-- The API passes a task's idempotency key and request hash in the job's
-- metadata (handoff_idempotency_key, and handoff_request_hash in hex). A key
-- that is already taken makes the unique index refuse the INSERT, job and
-- task alike; the API then returns the task that holds the key.
--
-- Per statement like the sync trigger: River's InsertMany is one INSERT of
-- many rows, and the API's single-row insert measured the same either way.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION handoff_task_insert() RETURNS trigger
LANGUAGE plpgsql
-- tasks is found where the migration made it, whatever the search_path of
-- the session that inserts the job.
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO tasks (
        id, kind, queue, priority, args, state, attempt, max_attempts,
        idempotency_key, request_hash, created_at, scheduled_at)
    SELECT n.id, n.kind, n.queue, n.priority, n.args, n.state::text, n.attempt, n.max_attempts,
           n.metadata ->> 'handoff_idempotency_key',
           decode(n.metadata ->> 'handoff_request_hash', 'hex'),
           n.created_at, n.scheduled_at
    FROM handoff_new n;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_task_insert
    AFTER INSERT ON river_job
    REFERENCING NEW TABLE AS handoff_new
    FOR EACH STATEMENT
    EXECUTE FUNCTION handoff_task_insert();

-- +goose Down
DROP TRIGGER IF EXISTS river_job_task_insert ON river_job;
DROP FUNCTION IF EXISTS handoff_task_insert();
