-- handoff.check_request refuses a callback_url that its callback could never
-- be sent to, and a run_at that is not a finite time.
--
-- The callback_url check of 00012 took any run of characters after
-- "http(s)://" up to a '/', '?' or '#', so 'http://[::1', 'http://:80/',
-- 'http://example.com:99999/' and 'http://%zz/' were accepted (over HTTP
-- too, where the Go check was the same expression), and the task's callback,
-- an http task to that URL, was discarded later as "not a valid URL": a
-- callback lost without a word. The expression is now the Go API's
-- (internal/task.CallbackURLPattern, which TestCallbackURLPatternSendable
-- holds to what the http kind can send and to this function): a host name
-- of letters, digits, non-ASCII characters and RFC 3986's unreserved and
-- sub-delimiter characters (an IPv6 address in brackets is refused: the
-- two engines cannot check its forms alike); a port from 1 to 65535 if
-- any; no ASCII space or control character and only well-formed
-- percent-escapes after it.
--
-- run_at => '-infinity' was accepted without a key (stored as it is) and
-- failed with 0A000 "cannot convert infinity to bigint" from
-- handoff.request_hash with one; 'infinity' was already refused (more than
-- 10 years ahead). Now both are 22023 with COLUMN run_at.
--
-- Only check_request changes, replaced whole as 00019 did: every other rule
-- is copied unchanged, and Down puts 00019's back.
--
-- Rolling deploy: safe. The function is replaced in place; only requests that
-- could not have run as asked are refused now.

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
    IF NOT isfinite(run_at) THEN
        RAISE EXCEPTION 'run_at must be a finite time'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'run_at';
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
            OR callback_url !~ '^[hH][tT][tT][pP][sS]?://([A-Za-z0-9._~!$&''()*+,;=-]|[^\x00-\x7F])+(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})?)?([/?#]([^%\x00-\x20\x7F]|%[0-9A-Fa-f]{2})*)?$') THEN
        RAISE EXCEPTION 'callback_url must be an absolute http or https URL without credentials, at most 2048 bytes'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'callback_url',
                  HINT = 'The host is a name (not an IPv6 address in brackets), any port is 1 to 65535, and a % starts a two-digit hex escape.';
    END IF;
    IF tenant IS NOT NULL AND tenant !~ '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'tenant must be 1 to 63 lower-case letters, digits, ''-'' or ''_'', starting with a letter or digit'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'tenant';
    END IF;
END;
$$;
-- +goose StatementEnd

-- Pinned as 00022 pins every function: FROM CURRENT above stores the
-- session's search_path, which need not name pg_temp last.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION handoff.check_request(text, jsonb, text, integer, integer, timestamptz, text, text, text) SET search_path = %s',
                   (SELECT string_agg(quote_ident(s), ', ' ORDER BY ord) || ', pg_temp'
                    FROM unnest(current_schemas(false)) WITH ORDINALITY AS t(s, ord)));
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- As 00019 made it.
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

-- Pinned as 00022 pins every function: FROM CURRENT above stores the
-- session's search_path, which need not name pg_temp last.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION handoff.check_request(text, jsonb, text, integer, integer, timestamptz, text, text, text) SET search_path = %s',
                   (SELECT string_agg(quote_ident(s), ', ' ORDER BY ord) || ', pg_temp'
                    FROM unnest(current_schemas(false)) WITH ORDINALITY AS t(s, ord)));
END;
$$;
-- +goose StatementEnd
