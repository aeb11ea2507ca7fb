-- handoff.enqueue stores the checked args as the API does: a number
-- without the zeros or fraction that do not change it, and no typed field
-- given null.
--
-- handoff.check_request (00012, 00019) takes 2.0 for a field of type
-- integer, as the HTTP API does; but the API stores the args it decoded and
-- encoded again (2), while handoff.enqueue stored them as written (2.0),
-- which jsonb keeps, and the worker's decoder (encoding/json into an int)
-- refuses 2.0: every attempt failed until the task was discarded. The
-- request's hash differed too, so the same request sent by SQL as 1.0 and
-- as 1 (or as 2.50 and 2.5, or with "field": null and without the field)
-- was two requests with one idempotency key, a conflict, where the API
-- took them as one. Now handoff.enqueue writes the checked args through
-- handoff.normalize_args, before it hashes the request: each top-level
-- field of type integer (the kind's shape, handoff.kinds) as an integer,
-- each of type number without trailing zeros (trim_scale: 2.50 is 2.5,
-- 1e2 is 100, as Go writes a float64), and a typed field given null left
-- out. Fields of any JSON (type any) are kept as given. Nothing else
-- changes; the function is 00012's otherwise.
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
               CASE WHEN jsonb_typeof(a.value) <> 'number' THEN a.value
                    WHEN f.type = 'integer' THEN to_jsonb(trunc(a.value::numeric))
                    WHEN f.type = 'number' THEN to_jsonb(trim_scale(a.value::numeric))
                    ELSE a.value END), '{}'::jsonb)
    FROM jsonb_each(args) a
    LEFT JOIN handoff.kinds k ON k.kind = normalize_args.kind
    CROSS JOIN LATERAL (SELECT k.shape -> 'fields' -> a.key ->> 'type' AS type) f
    -- A typed field given null is the field left out, to the worker's
    -- decoder and to the API's; a field of any JSON keeps its null.
    WHERE jsonb_typeof(a.value) <> 'null' OR f.type IS NOT DISTINCT FROM 'any'
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
    -- The checked args as the API stores them: 2.0 in an integer field
    -- becomes 2, 2.50 in a number field 2.5 (handoff.normalize_args).
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
