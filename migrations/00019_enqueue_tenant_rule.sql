-- handoff.enqueue refuses a tenant no API key can be made for.
--
-- Until this version handoff.check_request (00012), which handoff.enqueue
-- calls first, took any tenant of 1 to 255 bytes that was not only
-- whitespace, so `tenant => 'Acme Corp'` or `tenant => 'ACME'` made tasks
-- that no key could ever read (and so did the Go package enqueue, which
-- calls handoff.enqueue too). `handoff keys create --tenant` takes 1 to 63
-- lower-case letters, digits, '-' or '_', starting with a letter or digit
-- (auth.ValidTenant in internal/auth; the api_keys_tenant_check constraint
-- of 00015). check_request now applies that rule, with the same SQLSTATE
-- 22023 and COLUMN = 'tenant' as its other refusals. It also cuts the
-- names it echoes (an unknown kind, queue or args field) at 64 characters
-- and marks the cut with '…', as the HTTP API cuts every echo, where it cut
-- them at 100. Only check_request changes: handoff.enqueue and
-- handoff.request_hash (which takes no tenant) stay as 00012 made them, and
-- every other rule is copied unchanged.
--
-- Existing rows are not touched: a task already stored under such a tenant
-- stays, readable in SQL as before.
--
-- Rolling deploy: safe. No table changes. The HTTP API takes its tenant from
-- a key (or 'default'), which already obeys the rule; only an SQL or Go
-- package caller naming such a tenant is refused from now on (22023, which
-- the Go package reports as a validation error of the field tenant).

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff.check_request(
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
        RAISE EXCEPTION 'unknown kind "%"; known kinds: %', left(kind, 64) || CASE WHEN length(kind) > 64 THEN '…' ELSE '' END,
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
            RAISE EXCEPTION 'args.% is not a field of kind %; its fields: %', left(field.key, 64) || CASE WHEN length(field.key) > 64 THEN '…' ELSE '' END, kind,
                coalesce((SELECT string_agg(f, ', ' ORDER BY f) FROM jsonb_object_keys(shape -> 'fields') f), 'none')
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'args.' || left(field.key, 64) || CASE WHEN length(field.key) > 64 THEN '…' ELSE '' END;
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
        RAISE EXCEPTION 'unknown queue "%"; served queues: %', left(queue, 64) || CASE WHEN length(queue) > 64 THEN '…' ELSE '' END,
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
    IF tenant IS NOT NULL AND tenant !~ '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'tenant must be 1 to 63 lower-case letters, digits, ''-'' or ''_'', starting with a letter or digit'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'tenant';
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- The function as 00012 made it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION handoff.check_request(
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
