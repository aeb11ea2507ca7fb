-- Enqueue from any app, in the app's own transaction; tenants; completion
-- callbacks.
--
-- 1. Schema handoff holds what apps call: handoff.enqueue(kind, args,
--    queue =>, priority =>, max_attempts =>, run_at =>, idempotency_key =>,
--    callback_url =>, tenant =>) inserts a River job the way River's
--    InsertTx does (one INSERT into river_job, then NOTIFY on River's
--    insert channel when the job is available), so the insert trigger of
--    00010 (replaced below) writes its tasks row in the same statement. It
--    returns the task id. It checks what SQL can at call time and raises
--    SQLSTATE 22023 (invalid_parameter_value, the field in COLUMN) for a bad
--    request and 23505 (unique_violation, CONSTRAINT
--    tasks_idempotency_key_idx, the holding task in DETAIL) for an
--    idempotency key reused with another request, so the caller's
--    transaction fails rather than a task failing later.
--
--    handoff.kinds and handoff.queues are filled by the server at start-up
--    (internal/task, Service.Register): the kinds it runs, with the shape
--    of their args (fields, JSON types, required fields and numeric bounds;
--    unknown fields are refused), and the queues it serves.
--
-- 2. One definition of an idempotent request: handoff.request_hash hashes
--    what the client sent (kind, args, queue, priority, max_attempts, run_at
--    as sent, callback_url), so a resend after run_at has passed is the same
--    request. A BEFORE INSERT trigger on river_job computes it for every job
--    that carries an idempotency key, whoever inserts it (the API through
--    River's InsertTx, the Go package and SQL through handoff.enqueue); Go
--    never hashes. Keys are scoped per tenant.
--
-- 3. tasks.tenant (from metadata handoff_tenant, default 'default') and
--    tasks.callback_url (handoff_callback_url).
--
-- 4. Completion callbacks: when a task with a callback_url reaches
--    completed, discarded or cancelled, a job of kind http POSTing the final
--    task object to callback_url is inserted by a trigger on tasks, in the
--    transaction that finished the task: no callback for an outcome that
--    rolls back, one per terminal outcome. The trigger is per row with a
--    WHEN clause rather than per statement with transition tables: every
--    River batch completion updates tasks, and a WHEN clause costs nothing
--    for the rows it passes over where transition tables would be captured
--    for every statement.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS handoff;

ALTER TABLE tasks
    ADD COLUMN tenant text NOT NULL DEFAULT 'default',
    ADD COLUMN callback_url text;

-- Same name as before, so a binary from before this version still knows a
-- duplicate key when it sees one during a rolling deploy.
DROP INDEX tasks_idempotency_key_idx;
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The kinds the server runs, and what SQL can check of their args: shape is
-- {"fields": {"name": {"type": "number" | "integer" | "string" | "boolean" |
-- "object" | "array" | "any", "required"?: true, "min"?: n, "max"?: n}}}
-- (internal/task.ArgsShape, from the args type's json and handoff struct
-- tags). Unknown fields are refused; null is accepted for a field that is
-- not required, as Go's decoder does.
CREATE TABLE handoff.kinds (
    kind       text        PRIMARY KEY,
    shape      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The queues the server serves: a task in another queue would wait forever.
CREATE TABLE handoff.queues (
    name       text        PRIMARY KEY,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The request hash: SHA-256 of the canonical jsonb text of what the client
-- sent, with defaults applied (queue, priority, max_attempts) and run_at as
-- sent (microseconds since the epoch, or null), never the effective
-- scheduled time.
-- +goose StatementBegin
CREATE FUNCTION handoff.request_hash(
    kind text, args jsonb, queue text, priority integer, max_attempts integer,
    run_at timestamptz, callback_url text)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT sha256(convert_to(jsonb_build_object(
        'kind', kind,
        'args', args,
        'queue', queue,
        'priority', priority,
        'max_attempts', max_attempts,
        'run_at', (extract(epoch FROM run_at) * 1000000)::bigint,
        'callback_url', callback_url)::text, 'UTF8'))
$$;
-- +goose StatementEnd

-- Keys taken before this version carry the hash of the old Go definition;
-- recompute them so that a resend across the upgrade is still the same
-- request. run_at as sent is not stored: a task that has not run yet and is
-- scheduled after its creation was sent with run_at = scheduled_at; any
-- other is taken as sent without run_at (wrong only for a task sent with a
-- run_at that has already run: its resend gets 409, as before this version).
UPDATE tasks SET request_hash = handoff.request_hash(
    kind, args, queue, priority, max_attempts,
    CASE WHEN attempt = 0 AND scheduled_at > created_at THEN scheduled_at END,
    NULL)
WHERE idempotency_key IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION handoff_job_request_hash() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    NEW.metadata := NEW.metadata || jsonb_build_object('handoff_request_hash', encode(
        handoff.request_hash(NEW.kind, NEW.args, NEW.queue, NEW.priority, NEW.max_attempts,
                             (NEW.metadata ->> 'handoff_run_at')::timestamptz,
                             NEW.metadata ->> 'handoff_callback_url'), 'hex'));
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_request_hash
    BEFORE INSERT ON river_job
    FOR EACH ROW
    WHEN (NEW.metadata ? 'handoff_idempotency_key')
    EXECUTE FUNCTION handoff_job_request_hash();

-- As in 00010, plus tenant and callback_url.
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

-- The rules of a create request that SQL can check; internal/task checks
-- the same rules in Go (task.Prepare), and a table-driven test in
-- internal/task feeds both the same requests. Raises 22023 with the field in
-- COLUMN.
-- +goose StatementBegin
CREATE FUNCTION handoff.check_request(
    kind text, args jsonb, queue text, priority integer, max_attempts integer,
    run_at timestamptz, idempotency_key text, callback_url text, tenant text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_variable
DECLARE
    shape jsonb;
    field record;
    rule  jsonb;
    want  text;
BEGIN
    IF kind IS NULL OR kind = '' THEN
        RAISE EXCEPTION 'kind is required; known kinds: %',
            (SELECT string_agg(k.kind, ', ' ORDER BY k.kind) FROM handoff.kinds k)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'kind';
    END IF;
    SELECT k.shape INTO shape FROM handoff.kinds k WHERE k.kind = check_request.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown kind "%"; known kinds: %', left(kind, 100),
            (SELECT string_agg(k.kind, ', ' ORDER BY k.kind) FROM handoff.kinds k)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'kind';
    END IF;
    IF jsonb_typeof(args) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'args must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args';
    END IF;
    IF octet_length(args::text) > 1048576 THEN
        RAISE EXCEPTION 'args must be at most 1048576 bytes of JSON'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args';
    END IF;
    FOR field IN SELECT a.key, a.value FROM jsonb_each(args) a ORDER BY a.key LOOP
        rule := shape -> 'fields' -> field.key;
        IF rule IS NULL THEN
            RAISE EXCEPTION 'args.% is not a field of kind %; its fields: %', left(field.key, 100), kind,
                coalesce((SELECT string_agg(f, ', ' ORDER BY f) FROM jsonb_object_keys(shape -> 'fields') f), 'none')
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args.' || left(field.key, 100);
        END IF;
        want := rule ->> 'type';
        CONTINUE WHEN want = 'any' OR jsonb_typeof(field.value) = 'null';
        IF want = 'integer' THEN
            IF jsonb_typeof(field.value) <> 'number' OR field.value::numeric <> trunc(field.value::numeric) THEN
                RAISE EXCEPTION 'args.% must be an integer', field.key
                    USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args.' || field.key;
            END IF;
        ELSIF jsonb_typeof(field.value) <> want THEN
            RAISE EXCEPTION 'args.% must be a JSON %, not %', field.key, want, jsonb_typeof(field.value)
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args.' || field.key;
        END IF;
        IF want IN ('number', 'integer')
           AND (field.value::numeric < (rule ->> 'min')::numeric OR field.value::numeric > (rule ->> 'max')::numeric) THEN
            RAISE EXCEPTION 'args.% must be between % and %', field.key,
                coalesce(rule ->> 'min', '-infinity'), coalesce(rule ->> 'max', 'infinity')
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args.' || field.key;
        END IF;
    END LOOP;
    FOR field IN SELECT r.key, r.value FROM jsonb_each(shape -> 'fields') r
                 WHERE (r.value ->> 'required')::boolean ORDER BY r.key LOOP
        IF jsonb_typeof(args -> field.key) IS NULL OR jsonb_typeof(args -> field.key) = 'null' THEN
            RAISE EXCEPTION 'args.% is required', field.key
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args.' || field.key;
        END IF;
    END LOOP;
    IF queue IS NOT NULL AND NOT EXISTS (SELECT FROM handoff.queues q WHERE q.name = queue) THEN
        RAISE EXCEPTION 'unknown queue "%"; served queues: %', left(queue, 100),
            (SELECT string_agg(q.name, ', ' ORDER BY q.name) FROM handoff.queues q)
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'queue';
    END IF;
    IF priority IS NOT NULL AND priority NOT BETWEEN 1 AND 4 THEN
        RAISE EXCEPTION 'priority must be between 1 (highest) and 4'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority';
    END IF;
    IF max_attempts IS NOT NULL AND max_attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'max_attempts must be between 1 and 1000'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'max_attempts';
    END IF;
    IF run_at > now() + interval '10 years' THEN
        RAISE EXCEPTION 'run_at must be within 10 years from now'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'run_at';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        IF octet_length(idempotency_key) > 255 THEN
            RAISE EXCEPTION 'idempotency_key must be at most 255 bytes'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'idempotency_key';
        END IF;
        IF idempotency_key ~ '^[ \t\r\n\v\f]*$' THEN
            RAISE EXCEPTION 'idempotency_key must not be empty or only whitespace'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'idempotency_key';
        END IF;
    END IF;
    IF callback_url IS NOT NULL AND (octet_length(callback_url) > 2048
            OR callback_url !~ '^[hH][tT][tT][pP][sS]?://[^/?#@[:space:][:cntrl:]]+([/?#][^[:space:][:cntrl:]]*)?$') THEN
        RAISE EXCEPTION 'callback_url must be an absolute http or https URL without credentials, at most 2048 bytes'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'callback_url';
    END IF;
    IF tenant IS NOT NULL AND (octet_length(tenant) > 255 OR tenant ~ '^[ \t\r\n\v\f]*$') THEN
        RAISE EXCEPTION 'tenant must be 1 to 255 bytes, not only whitespace'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'tenant';
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION handoff.enqueue(
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

-- The row River's InsertTx writes (JobInsertFastMany in riverpgxv5's
-- river_job.sql) and the NOTIFY it sends for an available job
-- (Client.maybeNotifyInsertForQueues: topic <schema>.river_insert, payload
-- {"queue": name}).
-- +goose StatementBegin
CREATE FUNCTION handoff.insert_job(
    kind text, args jsonb, queue text, priority integer, max_attempts integer,
    scheduled_at timestamptz, metadata jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_variable
DECLARE
    job_id bigint;
BEGIN
    INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue,
                           scheduled_at, state, tags)
    VALUES (args, kind, max_attempts, metadata, priority, queue,
            coalesce(scheduled_at, now()),
            CASE WHEN scheduled_at IS NULL THEN 'available' ELSE 'scheduled' END::river_job_state,
            '{}')
    RETURNING id INTO job_id;
    IF scheduled_at IS NULL THEN
        PERFORM pg_notify(current_schema() || '.river_insert', json_build_object('queue', queue)::text);
    END IF;
    RETURN job_id;
END;
$$;
-- +goose StatementEnd

-- RFC 3339 in UTC, whatever the session's TimeZone.
-- +goose StatementBegin
CREATE FUNCTION handoff.rfc3339(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
-- +goose StatementEnd

-- The task object as the API shows it (internal/task.Task).
-- +goose StatementBegin
CREATE FUNCTION handoff.task_json(t tasks) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'kind', t.kind,
        'state', t.state,
        'args', t.args,
        'queue', t.queue,
        'priority', t.priority,
        'attempt', t.attempt,
        'max_attempts', t.max_attempts,
        'errors', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                'attempt', e -> 'attempt', 'at', e -> 'at', 'error', e -> 'error'))
                            FROM jsonb_array_elements(t.errors) e), '[]'::jsonb),
        'result', t.result,
        'progress', t.progress,
        'created_at', handoff.rfc3339(t.created_at),
        'scheduled_at', handoff.rfc3339(t.scheduled_at),
        'started_at', handoff.rfc3339(t.started_at),
        'finished_at', handoff.rfc3339(t.finished_at),
        'cancel_requested_at', handoff.rfc3339(t.cancel_requested_at),
        'callback_url', t.callback_url)
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION handoff_task_callback() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM handoff.insert_job('http',
        jsonb_build_object(
            'url', NEW.callback_url,
            'method', 'POST',
            'headers', jsonb_build_object('Content-Type', 'application/json'),
            'body', handoff.task_json(NEW)::text),
        'default', 1, 25, NULL,
        jsonb_build_object('handoff_tenant', NEW.tenant,
                           'handoff_callback_of', NEW.id,
                           'handoff_callback_attempt', NEW.attempt));
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER tasks_callback
    AFTER UPDATE ON tasks
    FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL
          AND NEW.state IN ('completed', 'discarded', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION handoff_task_callback();

-- +goose Down
DROP TRIGGER IF EXISTS tasks_callback ON tasks;
DROP FUNCTION IF EXISTS handoff_task_callback();
DROP FUNCTION IF EXISTS handoff.rfc3339(timestamptz);
DROP FUNCTION IF EXISTS handoff.task_json(tasks);
DROP FUNCTION IF EXISTS handoff.enqueue(text, jsonb, text, integer, integer, timestamptz, text, text, text);
DROP FUNCTION IF EXISTS handoff.insert_job(text, jsonb, text, integer, integer, timestamptz, jsonb);
DROP FUNCTION IF EXISTS handoff.check_request(text, jsonb, text, integer, integer, timestamptz, text, text, text);

-- The insert function as 00010 made it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff_task_insert() RETURNS trigger
LANGUAGE plpgsql
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

DROP TRIGGER IF EXISTS river_job_request_hash ON river_job;
DROP FUNCTION IF EXISTS handoff_job_request_hash();
DROP FUNCTION IF EXISTS handoff.request_hash(text, jsonb, text, integer, integer, timestamptz, text);
DROP TABLE IF EXISTS handoff.queues;
DROP TABLE IF EXISTS handoff.kinds;
-- Keys unique across tenants again: fails if two tenants share a key.
DROP INDEX IF EXISTS tasks_idempotency_key_idx;
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE tasks DROP COLUMN IF EXISTS callback_url, DROP COLUMN IF EXISTS tenant;
DROP SCHEMA IF EXISTS handoff;
