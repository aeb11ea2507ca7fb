package migrations_test

import (
	"context"
	"database/sql"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/migrations"
	"github.com/handoff/handoff/migrations/internal/riversql"
)

type testBundle struct {
	pool     *pgxpool.Pool
	provider *goose.Provider
}

// setup opens an empty database and a locking provider on it, as the server
// builds one.
func setup(t *testing.T) *testBundle {
	t.Helper()

	config, err := pgxpool.ParseConfig(pgtest.NewEmptyDB(t))
	require.NoError(t, err)
	migrations.SetSearchPath(config.ConnConfig)
	pool, err := pgxpool.NewWithConfig(t.Context(), config)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = db.Close() })
	provider, err := migrations.NewProvider(db, &migrations.ProviderOpts{Lock: true})
	require.NoError(t, err)

	return &testBundle{pool: pool, provider: provider}
}

func TestMigrations(t *testing.T) {
	t.Parallel()

	t.Run("UpDownUp", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)

		requireUp(ctx, t, bundle)

		_, err := bundle.provider.DownTo(ctx, 0)
		require.NoError(t, err)
		version, err := bundle.provider.GetDBVersion(ctx)
		require.NoError(t, err)
		require.Zero(t, version)
		// Only goose's own bookkeeping may remain.
		require.Equal(t, []string{"goose_db_version"}, queryStrings(ctx, t, bundle.pool, `
			SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
			ORDER BY 1`))
		require.Empty(t, queryStrings(ctx, t, bundle.pool, `
			SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = 'public'`))
		require.Empty(t, queryStrings(ctx, t, bundle.pool, `
			SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE n.nspname = 'public' AND t.typtype = 'e'`))

		requireUp(ctx, t, bundle)

		// 00011's down restores 00009's functions, unpinned, and drops
		// the guard.
		_, err = bundle.provider.DownTo(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"handoff_task_insert"}, queryStrings(ctx, t, bundle.pool, `
			SELECT proname FROM pg_proc
			WHERE proname LIKE 'handoff\_%' AND EXISTS (SELECT 1 FROM unnest(proconfig) c WHERE c LIKE 'search_path=%')`))
		require.ElementsMatch(t, []string{"river_job_task_sync", "river_job_task_deleted", "river_job_task_insert"}, queryStrings(ctx, t, bundle.pool,
			"SELECT tgname FROM pg_trigger WHERE tgrelid = 'river_job'::regclass AND NOT tgisinternal"))
		requireUp(ctx, t, bundle)
	})

	t.Run("RiverMigrateAgrees", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)

		_, err := bundle.provider.Up(ctx)
		require.NoError(t, err)

		migrator, err := rivermigrate.New(riverpgxv5.New(bundle.pool), nil)
		require.NoError(t, err)
		res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		require.NoError(t, err)
		require.Empty(t, res.Versions, "rivermigrate found versions goose had not recorded")

		// River's own down migration finds the rows goose wrote and removes
		// the schema they describe.
		res, err = migrator.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{MaxSteps: 1})
		require.NoError(t, err)
		require.Len(t, res.Versions, 1)
		require.Equal(t, len(migrator.AllVersions()), res.Versions[0].Version)
		validation, err := migrator.Validate(ctx, nil)
		require.NoError(t, err)
		require.False(t, validation.OK)
	})

	t.Run("ConcurrentUp", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)

		// Replicas starting together share one database; the session lock
		// makes all but one find nothing left to do.
		errs := make(chan error, 3)
		for range cap(errs) {
			go func() {
				db := stdlib.OpenDBFromPool(bundle.pool)
				defer db.Close()
				provider, err := migrations.NewProvider(db, &migrations.ProviderOpts{Lock: true})
				if err == nil {
					_, err = provider.Up(ctx)
				}
				errs <- err
			}()
		}
		for range cap(errs) {
			require.NoError(t, <-errs)
		}
		requireValid(ctx, t, bundle.pool)
	})
}

func TestLatestVersion(t *testing.T) {
	t.Parallel()

	db, err := sql.Open("pgx", "postgres://unused")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	provider, err := migrations.NewProvider(db, nil)
	require.NoError(t, err)

	sources := provider.ListSources()
	require.Equal(t, sources[len(sources)-1].Version, migrations.LatestVersion())
}

// TestRiverFilesCurrent fails when the committed River migrations differ from
// what the River module in go.mod generates: run `go generate ./migrations/...`.
func TestRiverFilesCurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	// A test binary carries no module versions, so ask the go command which
	// River version go.mod selects, as the generator's build does.
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", riversql.DriverModule).Output() //nolint:gosec // Constant arguments.
	require.NoError(t, err)
	files, err := riversql.Render(strings.TrimSpace(string(out)))
	require.NoError(t, err)

	want := make(map[string]string, len(files))
	for _, file := range files {
		want[file.Name] = string(file.Content)
	}
	got := make(map[string]string)
	names, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	for _, name := range names {
		if riversql.IsGenerated(name) {
			content, err := fs.ReadFile(migrations.FS, name)
			require.NoError(t, err)
			got[name] = string(content)
		}
	}
	require.Equal(t, want, got, "River migrations are stale: run `go generate ./migrations/...`")
}

func requireUp(ctx context.Context, t *testing.T, bundle *testBundle) {
	t.Helper()

	_, err := bundle.provider.Up(ctx)
	require.NoError(t, err)
	version, err := bundle.provider.GetDBVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, migrations.LatestVersion(), version)

	requireValid(ctx, t, bundle.pool)
	require.Equal(t, []string{"tasks"}, queryStrings(ctx, t, bundle.pool,
		"SELECT relname FROM pg_class WHERE oid = to_regclass('tasks')"))
	require.ElementsMatch(t, []string{
		"river_job_task_sync", "river_job_task_deleted", "river_job_task_insert",
		"river_job_attempt_guard", "river_job_attempt_start", "river_job_request_hash",
	}, queryStrings(ctx, t, bundle.pool,
		"SELECT tgname FROM pg_trigger WHERE tgrelid = 'river_job'::regclass AND NOT tgisinternal"))
	// Every trigger function finds tasks where the migration made it,
	// whatever the caller's search_path (00010, 00011, 00012, 00014).
	require.ElementsMatch(t, []string{
		"handoff_task_sync", "handoff_task_job_deleted", "handoff_task_insert",
		"handoff_job_attempt_mismatch", "handoff_job_attempt_start",
		"handoff_job_request_hash", "handoff_task_callback",
		"handoff_task_notify_row", "handoff_notify_watchers", "handoff_tasks_view_update",
	}, queryStrings(ctx, t, bundle.pool, `
		SELECT proname FROM pg_proc
		WHERE proname LIKE 'handoff\_%' AND EXISTS (SELECT 1 FROM unnest(proconfig) c WHERE c LIKE 'search_path=%')`))
}

// requireValid checks that River's migrator, and so River UI and River's
// CLI, consider the schema current.
func requireValid(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	require.NoError(t, err)
	validation, err := migrator.Validate(ctx, nil)
	require.NoError(t, err)
	require.True(t, validation.OK, validation.Messages)

	existing, err := migrator.ExistingVersions(ctx)
	require.NoError(t, err)
	require.Len(t, existing, len(migrator.AllVersions()))
}

func queryStrings(ctx context.Context, t *testing.T, pool *pgxpool.Pool, sql string) []string {
	t.Helper()

	rows, err := pool.Query(ctx, sql)
	require.NoError(t, err)
	var values []string
	for rows.Next() {
		var value string
		require.NoError(t, rows.Scan(&value))
		values = append(values, value)
	}
	require.NoError(t, rows.Err())
	return values
}
