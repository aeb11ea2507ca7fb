-- Results from the right attempt, and the sync trigger's blind spots.
--
-- 1. The attempt guard. River's completer matches a job by id and
--    state = 'running' only (JobSetStateIfRunningMany in
--    riverdriver/riverpgxv5/internal/dbsqlc/river_job.sql). A completion of
--    attempt N that lands late (River's batch completer retries a failed
--    batch for seconds; Handoff's inline completer or a worker's
--    JobCompleteTx already finished the job) would complete, fail or snooze
--    attempt N+1 if the job was retried meanwhile, by Handoff's API, River
--    UI or an app's JobRetry. Handoff's worker middleware
--    (internal/riverseam) therefore puts the attempt that produced every
--    outcome into the metadata River merges with it (handoff_attempt), and
--    a BEFORE UPDATE trigger turns an update that carries another attempt's
--    marker into a no-op for that row (RETURN NULL). River then reads the
--    row back as it is, sees a job that is not in a finished state and
--    emits no event; it does not retry (jobcompleter.completerJobUpdated).
--    The WHEN clause does all the deciding, so the hot path (a marker that
--    matches) never calls a function.
--
--    A marker means "this update was written by attempt handoff_attempt"
--    only if the row did not already carry it, so the marker and the output
--    of a finished attempt are removed when the job starts its next attempt
--    (a second BEFORE UPDATE trigger, which fires only for a job that has
--    run before: a first attempt has neither key). A completion that
--    carries no marker (River's rescuer, a worker without Handoff's
--    middleware) passes as before.
--
-- 2. handoff_task_sync also reacts to a change of a completed job's output:
--    River's JobUpdate with Output changes nothing but metadata.
--
-- 3. handoff_task_sync and handoff_task_job_deleted get the
--    SET search_path FROM CURRENT that 00010 gave handoff_task_insert: an
--    app calling River's JobCancelTx or JobRetryTx in a session whose
--    search_path finds another tasks table first no longer writes that one.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION handoff_job_attempt_mismatch() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    -- The trigger's WHEN clause decided: this row's update is another
    -- attempt's outcome. Skip it; the rest of River's statement goes on.
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- Passes only an update that writes a new marker (its outcome came from the
-- attempt named) and whose marker names an attempt other than the one that
-- runs, or lands on a job whose attempt already finished with another
-- marker. River's own writes that carry no new marker (fetch, JobRetry,
-- JobCancel, the scheduler, the rescuer) never match.
CREATE TRIGGER river_job_attempt_guard
    BEFORE UPDATE ON river_job
    FOR EACH ROW
    WHEN (NEW.metadata ? 'handoff_attempt'
          AND NEW.state <> 'running'
          AND (NEW.metadata -> 'handoff_attempt') IS DISTINCT FROM (OLD.metadata -> 'handoff_attempt')
          AND ((OLD.state = 'running' AND (NEW.metadata -> 'handoff_attempt') <> to_jsonb(OLD.attempt))
               OR (OLD.state <> 'running' AND OLD.metadata ? 'handoff_attempt')))
    EXECUTE FUNCTION handoff_job_attempt_mismatch();

-- +goose StatementBegin
CREATE FUNCTION handoff_job_attempt_start() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    -- A new attempt starts with no marker and no output of its own yet.
    NEW.metadata := NEW.metadata - 'handoff_attempt' - 'output';
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_attempt_start
    BEFORE UPDATE ON river_job
    FOR EACH ROW
    WHEN (NEW.state = 'running' AND OLD.state <> 'running'
          AND (NEW.metadata ? 'handoff_attempt' OR NEW.metadata ? 'output'))
    EXECUTE FUNCTION handoff_job_attempt_start();

-- As in 00009, plus the search_path pin and the output condition.
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

-- As in 00009, plus the search_path pin.
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

-- +goose Down
-- The functions as 00009 made them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_job_deleted() RETURNS trigger
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_sync() RETURNS trigger
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

DROP TRIGGER IF EXISTS river_job_attempt_start ON river_job;
DROP FUNCTION IF EXISTS handoff_job_attempt_start();
DROP TRIGGER IF EXISTS river_job_attempt_guard ON river_job;
DROP FUNCTION IF EXISTS handoff_job_attempt_mismatch();
