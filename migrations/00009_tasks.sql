-- Handoff's domain table and the trigger that keeps it in step with River.
--
-- tasks.id equals river_job.id: the API inserts the job with InsertTx and the
-- tasks row in the same transaction, so a task exists exactly when its job
-- does. River's cleaner later deletes finished job rows; the tasks row is the
-- durable record and is never deleted by Handoff.
--
-- A trigger copies state, attempts, errors and the recorded output from
-- river_job into tasks inside River's own UPDATE statements. A result therefore reaches
-- tasks in the very transaction that completes the job (River's batched
-- completer), with no extra round trip per job: it is recorded exactly once,
-- or not at all if the process dies first and the job is rescued.

-- +goose Up
CREATE TABLE tasks (
    id              bigint      PRIMARY KEY,
    kind            text        NOT NULL,
    queue           text        NOT NULL,
    priority        smallint    NOT NULL,
    args            jsonb       NOT NULL,
    state           text        NOT NULL,
    attempt         smallint    NOT NULL DEFAULT 0,
    max_attempts    smallint    NOT NULL,
    errors          jsonb       NOT NULL DEFAULT '[]',
    result          jsonb,
    progress        jsonb,
    idempotency_key text,
    request_hash    bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    scheduled_at    timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    -- Set when a running task is asked to cancel; it shows "cancelled"
    -- once its worker returns.
    cancel_requested_at timestamptz,
    CONSTRAINT tasks_state_check CHECK (state IN (
        'available', 'scheduled', 'pending', 'running', 'retryable',
        'completed', 'discarded', 'cancelled')),
    CONSTRAINT tasks_priority_check CHECK (priority BETWEEN 1 AND 4),
    CONSTRAINT tasks_idempotency_check CHECK (
        (idempotency_key IS NULL) = (request_hash IS NULL))
);

-- Idempotency is enforced by the database, not by a read-then-write check, so
-- concurrent repeats of one key yield one task.
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Keyset pagination, newest first: the primary key serves the unfiltered list,
-- these serve the state and kind filters at any table size.
CREATE INDEX tasks_state_id_idx ON tasks (state, id);
CREATE INDEX tasks_kind_id_idx ON tasks (kind, id);
CREATE INDEX tasks_kind_state_id_idx ON tasks (kind, state, id);

-- The sync runs once per statement, not once per row: River completes and
-- fetches jobs in batches, and one set-based UPDATE of tasks from the
-- transition table costs far less than a trigger call per job (measured in
-- docs/performance.md: 0.58 of bare River's drain rate per row, 0.71-0.81
-- per statement). A row counts as changed when it differs from its tasks row,
-- which mirrors it, rather than from the OLD table: the planner knows nothing
-- of transition tables' sizes, and a join of two of them can go quadratic.
-- For the same reason the plan is pinned to a nested loop over tasks' key.
-- +goose StatementBegin
CREATE FUNCTION handoff_task_sync() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
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
           OR tasks.scheduled_at IS DISTINCT FROM n.scheduled_at);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_task_sync
    AFTER UPDATE ON river_job
    REFERENCING NEW TABLE AS handoff_new
    FOR EACH STATEMENT
    EXECUTE FUNCTION handoff_task_sync();

-- A job deleted before it finished (River UI, JobDelete) can never run: its
-- task must not wait forever. The cleaner deletes only finished jobs, which
-- the WHEN clause passes over at no cost.
-- +goose StatementBegin
CREATE FUNCTION handoff_task_job_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
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

CREATE TRIGGER river_job_task_deleted
    AFTER DELETE ON river_job
    FOR EACH ROW
    WHEN (OLD.finalized_at IS NULL)
    EXECUTE FUNCTION handoff_task_job_deleted();

-- +goose Down
DROP TRIGGER IF EXISTS river_job_task_deleted ON river_job;
DROP FUNCTION IF EXISTS handoff_task_job_deleted();
DROP TRIGGER IF EXISTS river_job_task_sync ON river_job;
DROP FUNCTION IF EXISTS handoff_task_sync();
DROP TABLE IF EXISTS tasks;
