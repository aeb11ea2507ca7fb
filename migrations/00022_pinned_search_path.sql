-- Handoff's functions resolve names in Handoff's schemas only.
--
-- Every function that pinned its search_path with `SET search_path FROM
-- CURRENT` (migrations 00009-00021) stored `"$user", public`. Two things in
-- that list follow the caller rather than the migration: `"$user"` is the
-- calling role's own schema, when it has one, and `pg_temp`, which the list
-- does not name, is searched before it. So a session with a temporary table
-- named task_records, or a role with a schema of its own name holding one,
-- got Handoff's writes and lookups: an idempotency key that made two tasks,
-- a task id the API never found. Each such function now pins the schemas
-- the migration's own session resolved, by name, with pg_temp last (where
-- it is searched only for what nothing else names): `public, pg_temp` for a
-- database migrated with the default search_path.
--
-- The functions still run as their caller (SECURITY INVOKER): an app's role
-- needs the grants the README lists. Running them as their owner would let
-- an app's role that may create objects in schema public (the default
-- before PostgreSQL 15, and common for an app's own tables) plant a
-- function that they call, such as an exact-typed jsonb_build_object, and
-- run it as the owner; docs/security.md says which roles to trust.
--
-- A function added or replaced by a later migration must pin its path the
-- same way; TestFunctionsPinSearchPath fails otherwise.
--
-- Rolling deploy: safe. The functions do what they did for every caller
-- whose names resolved to Handoff's tables, which is every caller the
-- server and the documented grants ever made.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    path text;
    f regprocedure;
BEGIN
    -- A role named handoff that migrated with Postgres's default search_path
    -- ("$user", public) made what later migrations name without a schema in
    -- schema handoff (made by 00012), beside the first versions in public,
    -- and River's triggers kept calling those (every job insert fails since
    -- 00017). The server now replaces that default with public, pg_temp
    -- (migrations.SetSearchPath).
    IF to_regclass('handoff.tasks') IS NOT NULL OR to_regclass('handoff.task_records') IS NOT NULL
       OR to_regprocedure('handoff.handoff_task_sync()') IS NOT NULL THEN
        RAISE EXCEPTION 'this database was migrated with its objects split between schemas public and handoff, and cannot hold tasks'
            USING HINT = 'It was migrated by a role named handoff with the default search_path (docker-compose.yml before this release). Drop it and migrate a new database with this release: see CHANGELOG.md.';
    END IF;
    SELECT string_agg(quote_ident(s), ', ' ORDER BY ord) || ', pg_temp' INTO path
    FROM unnest(current_schemas(false)) WITH ORDINALITY AS t(s, ord);
    IF path IS NULL OR to_regclass('task_records') IS NULL
       OR NOT (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.oid = to_regclass('task_records')) = ANY (current_schemas(false)) THEN
        RAISE EXCEPTION 'migrate with a search_path that finds task_records (it is %)', current_setting('search_path');
    END IF;
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        WHERE EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
          AND (p.pronamespace = 'handoff'::regnamespace
               OR (p.proname LIKE 'handoff\_%'
                   AND p.pronamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'task_records'::regclass)))
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %s', f, path);
    END LOOP;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        WHERE EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
          AND (p.pronamespace = 'handoff'::regnamespace
               OR (p.proname LIKE 'handoff\_%'
                   AND p.pronamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'task_records'::regclass)))
    LOOP
        -- What SET search_path FROM CURRENT stored under the default path.
        EXECUTE format('ALTER FUNCTION %s SET search_path = "$user", public', f);
    END LOOP;
END;
$$;
-- +goose StatementEnd
