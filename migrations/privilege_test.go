package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/migrations"
)

// registerNoop records kind noop and queue default, as a server would at
// start-up, for handoff.enqueue.
const registerNoop = `INSERT INTO handoff.kinds (kind, shape) VALUES ('noop', '{"fields": {}}'); INSERT INTO handoff.queues (name) VALUES ('default')`

// TestFunctionsPinSearchPath: every Handoff function that names tables pins
// its search_path to the migration's schemas with pg_temp last (migration
// 00022), so neither a caller's temporary tables nor a schema named after
// the calling role ("$user") can stand in for Handoff's. A function added
// later without a pinned path fails here; the two that set none are
// IMMUTABLE SQL of built-in functions only, which Postgres inlines.
func TestFunctionsPinSearchPath(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t)
	_, err := bundle.provider.Up(ctx)
	require.NoError(t, err)

	configs := handoffFunctionPaths(ctx, t, bundle.pool)
	require.Len(t, configs, 17, "every Handoff function is listed: %v", configs)
	for f, path := range configs {
		switch f {
		case "handoff.request_hash(text,jsonb,text,integer,integer,timestamp with time zone,text)",
			"handoff.rfc3339(timestamp with time zone)":
			require.Empty(t, path, f)
		default:
			require.Equal(t, "public, pg_temp", path, f)
		}
	}

	// Down puts back what SET search_path FROM CURRENT stored.
	_, err = bundle.provider.DownTo(ctx, 21)
	require.NoError(t, err)
	for f, path := range handoffFunctionPaths(ctx, t, bundle.pool) {
		if path != "" {
			require.Equal(t, `"$user", public`, path, f)
		}
	}
	var definers int
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE prosecdef AND (pronamespace = 'handoff'::regnamespace OR proname LIKE 'handoff\_%')`).Scan(&definers))
	require.Zero(t, definers, "Down makes every function the caller's again")
}

// handoffFunctionPaths maps each of Handoff's functions to the search_path
// it pins ("" for none).
func handoffFunctionPaths(ctx context.Context, t *testing.T, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
},
) map[string]string {
	t.Helper()
	rows, err := db.Query(ctx, `
		SELECT p.oid::regprocedure::text,
		       coalesce((SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) c
		                 WHERE c LIKE 'search\_path=%'), '')
		FROM pg_proc p
		WHERE p.pronamespace = 'handoff'::regnamespace
		   OR (p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'handoff\_%')`)
	require.NoError(t, err)
	paths := map[string]string{}
	for rows.Next() {
		var f, path string
		require.NoError(t, rows.Scan(&f, &path))
		paths[f] = path
	}
	require.NoError(t, rows.Err())
	return paths
}

// TestSQLEnqueueShadowTables: before migration 00022, a session whose own
// temporary task_records came first in its search_path got Handoff's
// writes and lookups, so one idempotency key made two tasks and the API
// found neither; after it, the key makes one task, in Handoff's table.
func TestSQLEnqueueShadowTables(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Migrated as releases before 00022 migrated, with Postgres's default
	// search_path (not migrations.SetSearchPath), which the functions'
	// `SET search_path FROM CURRENT` stored.
	pool, err := pgxpool.New(ctx, pgtest.NewEmptyDB(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	provider, err := migrations.NewProvider(stdlib.OpenDBFromPool(pool), nil)
	require.NoError(t, err)
	bundle := &testBundle{pool: pool, provider: provider}
	_, err = bundle.provider.UpTo(ctx, 21)
	require.NoError(t, err)
	_, err = bundle.pool.Exec(ctx, registerNoop)
	require.NoError(t, err)

	// enqueueTwice enqueues with key twice in a session holding a temporary
	// task_records, and counts the key's rows in Handoff's table.
	enqueueTwice := func(key string) (first, second int64, records int) {
		t.Helper()
		conn, err := bundle.pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, `CREATE TEMP TABLE task_records (LIKE public.task_records INCLUDING DEFAULTS) ON COMMIT DROP`)
		require.NoError(t, err)
		require.NoError(t, tx.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', idempotency_key => $1)`, key).Scan(&first))
		require.NoError(t, tx.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', idempotency_key => $1)`, key).Scan(&second))
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM public.task_records WHERE idempotency_key = $1`, key).Scan(&records))
		return first, second, records
	}

	first, second, records := enqueueTwice("before")
	require.NotEqual(t, first, second, "before 00022 the temporary table shadowed Handoff's (the defect)")
	require.Zero(t, records)

	_, err = bundle.provider.UpTo(ctx, 22)
	require.NoError(t, err)
	first, second, records = enqueueTwice("after")
	require.Equal(t, first, second, "one key, one task")
	require.Equal(t, 1, records, "written to Handoff's table")
}

// readmeGrants are the README's grants to an app's role named app ("SQL").
var readmeGrants = []string{
	"GRANT USAGE ON SCHEMA handoff TO app",
	"GRANT SELECT ON handoff.kinds, handoff.queues TO app",
	"GRANT SELECT, INSERT ON river_job TO app",
	"GRANT INSERT ON task_records TO app",
	"GRANT USAGE ON SEQUENCE river_job_id_seq TO app",
	"GRANT SELECT ON tasks TO app",
}

// TestSQLEnqueueAppRole: an app's role with exactly the README's grants
// enqueues, repeats with a key and reads its task (the list the README gave
// before did not work: permission denied for table kinds, then the
// sequence, then task_records); and neither its temporary tables nor a
// schema of its own name, holding a task_records or an unrelated tasks
// table, change what Handoff writes.
func TestSQLEnqueueAppRole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t)
	_, err := bundle.provider.Up(ctx)
	require.NoError(t, err)
	_, err = bundle.pool.Exec(ctx, registerNoop)
	require.NoError(t, err)

	// Roles belong to the cluster: this one lives in a transaction that is
	// rolled back, with everything it made.
	role := fmt.Sprintf("app_%d", time.Now().UnixNano())
	conn, err := bundle.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	exec := func(sql string, args ...any) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err //nolint:wrapcheck // the test inspects the PgError
	}
	ident := pgx.Identifier{role}.Sanitize()
	require.NoError(t, exec(`CREATE ROLE `+ident+` NOLOGIN`))
	// The README's grants, and nothing else.
	for _, grant := range readmeGrants {
		require.NoError(t, exec(strings.ReplaceAll(grant, "app", ident)), grant)
	}
	// A schema of the role's own name, which "$user" used to find first.
	require.NoError(t, exec(`CREATE SCHEMA `+ident+` AUTHORIZATION `+ident))

	require.NoError(t, exec(`SET LOCAL ROLE `+ident))
	require.NoError(t, exec(`CREATE TEMP TABLE task_records AS SELECT * FROM tasks WHERE false`))
	require.NoError(t, exec(`CREATE TABLE `+ident+`.task_records AS SELECT * FROM tasks WHERE false`))
	require.NoError(t, exec(`CREATE TABLE `+ident+`.tasks (id bigint, title text)`))

	var first, second int64
	require.NoError(t, tx.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', idempotency_key => 'k', tenant => 'acme')`).Scan(&first))
	require.NoError(t, tx.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', idempotency_key => 'k', tenant => 'acme')`).Scan(&second))
	require.Equal(t, first, second, "a repeat is the same task")
	var state string
	require.NoError(t, tx.QueryRow(ctx, `SELECT state FROM public.tasks WHERE id = $1`, first).Scan(&state))
	require.Equal(t, "available", state)

	// A bad call still raises the documented error. Each statement that
	// fails here rolls back to a savepoint, so the transaction goes on.
	require.NoError(t, exec(`SAVEPOINT s`))
	err = exec(`SELECT handoff.enqueue('nope', '{}')`)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "22023", pgErr.Code)
	require.Equal(t, "kind", pgErr.ColumnName)
	require.NoError(t, exec(`ROLLBACK TO SAVEPOINT s`))

	require.NoError(t, exec(`RESET ROLE`))
	var records, shadows int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM public.task_records WHERE idempotency_key = 'k' AND tenant = 'acme'`).Scan(&records))
	require.Equal(t, 1, records)
	require.NoError(t, tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_temp.task_records) + (SELECT count(*) FROM `+ident+`.task_records) + (SELECT count(*) FROM `+ident+`.tasks)`).Scan(&shadows))
	require.Zero(t, shadows, "the app's own tables were not written")
}

// TestMigrateAsRoleNamedHandoff: a role named handoff (docker-compose.yml's)
// that migrated with Postgres's default search_path, `"$user", public`,
// found schema handoff (made by migration 00012) first, so the later
// migrations made their tables, views and functions there, beside the first
// versions in public, and every job insert failed. With the session's
// search_path set (migrations.SetSearchPath), as the server's is, it
// migrates as any other role; a database split the old way is refused by
// 00022 with a message saying what to do.
func TestMigrateAsRoleNamedHandoff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	// migrateAs migrates a new database up to version as role handoff, the
	// search_path set or not, and returns a pool of that role and the
	// provider.
	migrateAs := func(setSearchPath bool, version int64) (*pgxpool.Pool, *goose.Provider, error) {
		t.Helper()
		dbURL := pgtest.NewEmptyDB(t)
		admin, err := pgxpool.New(ctx, dbURL)
		require.NoError(t, err)
		t.Cleanup(admin.Close)
		// A role belongs to the cluster: made once, kept (it cannot log in).
		_, err = admin.Exec(ctx, `DO $$ BEGIN CREATE ROLE handoff NOLOGIN;
			EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
		require.NoError(t, err)
		_, err = admin.Exec(ctx, `ALTER SCHEMA public OWNER TO handoff; GRANT CREATE ON DATABASE `+
			pgx.Identifier{admin.Config().ConnConfig.Database}.Sanitize()+` TO handoff`)
		require.NoError(t, err)

		config, err := pgxpool.ParseConfig(dbURL)
		require.NoError(t, err)
		if setSearchPath {
			migrations.SetSearchPath(config.ConnConfig)
		}
		config.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, `SET ROLE handoff`)
			return err //nolint:wrapcheck // a test's connection
		}
		pool, err := pgxpool.NewWithConfig(ctx, config)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		provider, err := migrations.NewProvider(stdlib.OpenDBFromPool(pool), nil)
		require.NoError(t, err)
		_, err = provider.UpTo(ctx, version)
		return pool, provider, err //nolint:wrapcheck // the test inspects it
	}

	t.Run("Default search_path", func(t *testing.T) {
		t.Parallel()
		pool, provider, err := migrateAs(false, 21)
		require.NoError(t, err)
		var split bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('handoff.tasks') IS NOT NULL`).Scan(&split))
		require.True(t, split, "the defect: the tasks view went to schema handoff")

		_, err = provider.UpTo(ctx, 22)
		require.ErrorContains(t, err, "split between schemas public and handoff")
	})

	t.Run("SetSearchPath", func(t *testing.T) {
		t.Parallel()
		pool, _, err := migrateAs(true, migrations.LatestVersion())
		require.NoError(t, err)
		var stray int
		require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'handoff'::regnamespace AND relname NOT IN ('kinds', 'kinds_pkey', 'queues', 'queues_pkey'))
			+ (SELECT count(*) FROM pg_proc WHERE pronamespace = 'handoff'::regnamespace AND proname LIKE 'handoff\_%')`).Scan(&stray))
		require.Zero(t, stray, "schema handoff holds only what the migrations put there by name")
		_, err = pool.Exec(ctx, registerNoop)
		require.NoError(t, err)
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', tenant => 'acme', callback_url => 'https://app.test/done')`).Scan(&id))
		var tenant, callback string
		require.NoError(t, pool.QueryRow(ctx, `SELECT tenant, callback_url FROM tasks WHERE id = $1`, id).Scan(&tenant, &callback))
		require.Equal(t, "acme", tenant)
		require.Equal(t, "https://app.test/done", callback)
	})
}

// TestSetSearchPath: Handoff's sessions replace Postgres's default
// search_path only; a path chosen in the connection string (either way) is
// kept, so a deployment whose objects live elsewhere is not migrated anew
// into public.
func TestSetSearchPath(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.NewEmptyDB(t)
	for _, tc := range []struct{ param, value, want string }{
		{"", "", "public, pg_temp"},
		{"search_path", "elsewhere", "elsewhere"},
		{"options", "-c search_path=elsewhere", "elsewhere"},
	} {
		config, err := pgx.ParseConfig(dbURL)
		require.NoError(t, err)
		if tc.param != "" {
			config.RuntimeParams[tc.param] = tc.value
		}
		migrations.SetSearchPath(config)
		conn, err := pgx.ConnectConfig(ctx, config)
		require.NoError(t, err, tc.param)
		var got string
		require.NoError(t, conn.QueryRow(ctx, `SHOW search_path`).Scan(&got))
		require.NoError(t, conn.Close(ctx))
		require.Equal(t, tc.want, got, tc.param)
	}
}
