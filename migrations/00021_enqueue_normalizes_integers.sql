-- handoff.enqueue stores an integer field written with a fraction or an
-- exponent (2.0, 2e0) as the integer it is.
--
-- handoff.check_request (00012, 00019) takes such a value for a field of
-- type integer, as the HTTP API does; but the API stores the args it
-- decoded (2), while handoff.enqueue stored them as written (2.0), which
-- jsonb keeps, and the worker's decoder (encoding/json into an int) refuses
-- 2.0: every attempt failed until the task was discarded. Now
-- handoff.enqueue writes the checked args with every top-level integer
-- field (the kind's shape, handoff.kinds) as an integer, before it hashes
-- the request, so that `2.0` and `2` in an integer field are one request.
-- Nothing else changes; the function is 00012's otherwise.
--
-- Existing rows are not touched (the worker discards a task whose args it
-- cannot decode, riverseam.Middleware.CheckArgs).
--
-- Rolling deploy: safe. No table changes; the function is replaced in place.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION handoff.normalize_args(kind text, args jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT coalesce(jsonb_object_agg(a.key,
               CASE WHEN k.shape -> 'fields' -> a.key ->> 'type' = 'integer'
                         AND jsonb_typeof(a.value) = 'number'
                    THEN to_jsonb(trunc(a.value::numeric))
                    ELSE a.value END), '{}'::jsonb)
    FROM jsonb_each(args) a
    LEFT JOIN handoff.kinds k ON k.kind = normalize_args.kind
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff.enqueue(
    kind text,
    args jsonb,
    queue text DEFAULT NULL,
    priority integer DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    callback_url text DEFAULT NULL,
    tenant text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_variable
DECLARE
    eff_args     jsonb       := coalesce(args, '{}');
    eff_queue    text        := coalesce(queue, 'default');
    eff_priority integer     := coalesce(priority, 1);
    eff_attempts integer     := coalesce(max_attempts, 25);
    eff_tenant   text        := coalesce(tenant, 'default');
    scheduled    boolean     := run_at > now();
    meta         jsonb;
    hash         bytea;
    found_id     bigint;
    found_hash   bytea;
    task_id      bigint;
    violated     text;
BEGIN
    PERFORM handoff.check_request(kind, eff_args, queue, priority, max_attempts, run_at,
                                  idempotency_key, callback_url, tenant);
    -- The checked args as the worker decodes them: an integer written 2.0
    -- becomes 2 (handoff.normalize_args).
    eff_args := handoff.normalize_args(kind, eff_args);

    meta := jsonb_strip_nulls(jsonb_build_object(
        'handoff_tenant', eff_tenant,
        'handoff_idempotency_key', idempotency_key,
        'handoff_run_at', to_jsonb(run_at),
        'handoff_callback_url', callback_url));

    IF idempotency_key IS NOT NULL THEN
        hash := handoff.request_hash(kind, eff_args, eff_queue, eff_priority, eff_attempts, run_at, callback_url);
        SELECT t.id, t.request_hash INTO found_id, found_hash
        FROM tasks t WHERE t.tenant = eff_tenant AND t.idempotency_key = enqueue.idempotency_key;
        IF found_id IS NULL THEN
            BEGIN
                task_id := handoff.insert_job(kind, eff_args, eff_queue, eff_priority, eff_attempts,
                                              CASE WHEN scheduled THEN run_at END, meta);
                RETURN task_id;
            EXCEPTION WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
                IF violated IS DISTINCT FROM 'tasks_idempotency_key_idx' THEN
                    RAISE;
                END IF;
                -- A concurrent call committed the key first; its task is
                -- visible to this statement under READ COMMITTED.
                SELECT t.id, t.request_hash INTO found_id, found_hash
                FROM tasks t WHERE t.tenant = eff_tenant AND t.idempotency_key = enqueue.idempotency_key;
                IF found_id IS NULL THEN
                    RAISE EXCEPTION 'idempotency key "%" is held by a task this transaction cannot see', idempotency_key
                        USING ERRCODE = 'serialization_failure',
                              HINT = 'retry the transaction; under REPEATABLE READ or SERIALIZABLE a concurrent holder is invisible';
                END IF;
            END;
        END IF;
        IF found_hash = hash THEN
            RETURN found_id;
        END IF;
        RAISE EXCEPTION 'idempotency key "%" was already used with a different request by task %', idempotency_key, found_id
            USING ERRCODE = 'unique_violation',
                  CONSTRAINT = 'tasks_idempotency_key_idx',
                  TABLE = 'tasks',
                  DETAIL = format('held by task %s', found_id),
                  HINT = format('GET /v1/tasks/%s', found_id);
    END IF;

    RETURN handoff.insert_job(kind, eff_args, eff_queue, eff_priority, eff_attempts,
                              CASE WHEN scheduled THEN run_at END, meta);
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff.enqueue(
    kind text,
    args jsonb,
    queue text DEFAULT NULL,
    priority integer DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    callback_url text DEFAULT NULL,
    tenant text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_variable
DECLARE
    eff_args     jsonb       := coalesce(args, '{}');
    eff_queue    text        := coalesce(queue, 'default');
    eff_priority integer     := coalesce(priority, 1);
    eff_attempts integer     := coalesce(max_attempts, 25);
    eff_tenant   text        := coalesce(tenant, 'default');
    scheduled    boolean     := run_at > now();
    meta         jsonb;
    hash         bytea;
    found_id     bigint;
    found_hash   bytea;
    task_id      bigint;
    violated     text;
BEGIN
    PERFORM handoff.check_request(kind, eff_args, queue, priority, max_attempts, run_at,
                                  idempotency_key, callback_url, tenant);

    meta := jsonb_strip_nulls(jsonb_build_object(
        'handoff_tenant', eff_tenant,
        'handoff_idempotency_key', idempotency_key,
        'handoff_run_at', to_jsonb(run_at),
        'handoff_callback_url', callback_url));

    IF idempotency_key IS NOT NULL THEN
        hash := handoff.request_hash(kind, eff_args, eff_queue, eff_priority, eff_attempts, run_at, callback_url);
        SELECT t.id, t.request_hash INTO found_id, found_hash
        FROM tasks t WHERE t.tenant = eff_tenant AND t.idempotency_key = enqueue.idempotency_key;
        IF found_id IS NULL THEN
            BEGIN
                task_id := handoff.insert_job(kind, eff_args, eff_queue, eff_priority, eff_attempts,
                                              CASE WHEN scheduled THEN run_at END, meta);
                RETURN task_id;
            EXCEPTION WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
                IF violated IS DISTINCT FROM 'tasks_idempotency_key_idx' THEN
                    RAISE;
                END IF;
                -- A concurrent call committed the key first; its task is
                -- visible to this statement under READ COMMITTED.
                SELECT t.id, t.request_hash INTO found_id, found_hash
                FROM tasks t WHERE t.tenant = eff_tenant AND t.idempotency_key = enqueue.idempotency_key;
                IF found_id IS NULL THEN
                    RAISE EXCEPTION 'idempotency key "%" is held by a task this transaction cannot see', idempotency_key
                        USING ERRCODE = 'serialization_failure',
                              HINT = 'retry the transaction; under REPEATABLE READ or SERIALIZABLE a concurrent holder is invisible';
                END IF;
            END;
        END IF;
        IF found_hash = hash THEN
            RETURN found_id;
        END IF;
        RAISE EXCEPTION 'idempotency key "%" was already used with a different request by task %', idempotency_key, found_id
            USING ERRCODE = 'unique_violation',
                  CONSTRAINT = 'tasks_idempotency_key_idx',
                  TABLE = 'tasks',
                  DETAIL = format('held by task %s', found_id),
                  HINT = format('GET /v1/tasks/%s', found_id);
    END IF;

    RETURN handoff.insert_job(kind, eff_args, eff_queue, eff_priority, eff_attempts,
                              CASE WHEN scheduled THEN run_at END, meta);
END;
$$;
-- +goose StatementEnd

DROP FUNCTION handoff.normalize_args(text, jsonb);
