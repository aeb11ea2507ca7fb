-- Handoff's domain table and the trigger that keeps it in step with River.
--
-- tasks.id equals river_job.id: the API inserts the job with InsertTx and the
-- tasks row in the same transaction, so a task exists exactly when its job
-- does. River's cleaner later deletes finished job rows; the tasks row is the
-- durable record and is never deleted by Handoff.
--
-- The trigger copies state, attempts, errors and the recorded output from
-- river_job into tasks inside River's own UPDATE. A result therefore reaches
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

-- +goose StatementBegin
CREATE FUNCTION handoff_task_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET
        state        = NEW.state::text,
        attempt      = NEW.attempt,
        max_attempts = NEW.max_attempts,
        errors       = coalesce(to_jsonb(NEW.errors), '[]'::jsonb),
        result       = CASE WHEN NEW.state = 'completed'
                            THEN NEW.metadata -> 'output' END,
        -- A task waiting for its next attempt has no progress yet.
        progress     = CASE WHEN NEW.state IN ('available', 'scheduled', 'pending', 'retryable')
                            THEN NULL ELSE progress END,
        scheduled_at = NEW.scheduled_at,
        started_at   = NEW.attempted_at,
        finished_at  = NEW.finalized_at
    WHERE id = NEW.id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_task_sync
    AFTER UPDATE ON river_job
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
          OR OLD.attempt IS DISTINCT FROM NEW.attempt
          OR OLD.scheduled_at IS DISTINCT FROM NEW.scheduled_at)
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
