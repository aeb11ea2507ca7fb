package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/migrations"
)

func TestNewDB(t *testing.T) {
	t.Parallel()

	t.Run("Migrated", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool := pgtest.NewDB(t)

		var version int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT max(version_id) FROM goose_db_version").Scan(&version))
		require.Equal(t, migrations.LatestVersion(), version)
		require.True(t, tableExists(ctx, t, pool, "river_job"))
		require.True(t, tableExists(ctx, t, pool, "tasks"))
	})

	t.Run("Isolated", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool1, pool2 := pgtest.NewDB(t), pgtest.NewDB(t)

		_, err := pool1.Exec(ctx, "CREATE TABLE pgtest_probe (id int)")
		require.NoError(t, err)
		require.True(t, tableExists(ctx, t, pool1, "pgtest_probe"))
		require.False(t, tableExists(ctx, t, pool2, "pgtest_probe"))
	})

	t.Run("DroppedAtCleanup", func(t *testing.T) {
		t.Parallel()

		// The parent's cleanup runs once the subtest and its cleanups are done.
		var name string
		t.Cleanup(func() { requireDatabaseExists(context.Background(), t, name, false) })
		t.Run("Inner", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			require.NoError(t, pgtest.NewDB(t).QueryRow(ctx, "SELECT current_database()").Scan(&name))
			requireDatabaseExists(ctx, t, name, true)
		})
	})
}

func TestNewDBURL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	conn, err := pgx.Connect(ctx, pgtest.NewDBURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass('tasks') IS NOT NULL").Scan(&exists))
	require.True(t, exists)
}

func TestNewEmptyDB(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	conn, err := pgx.Connect(ctx, pgtest.NewEmptyDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	var tables int
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT count(*) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables))
	require.Zero(t, tables)
}

func TestTx(t *testing.T) {
	t.Parallel()

	t.Run("Migrated", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		tx := pgtest.Tx(t)

		var exists bool
		require.NoError(t, tx.QueryRow(ctx, "SELECT to_regclass('river_job') IS NOT NULL").Scan(&exists))
		require.True(t, exists)
	})

	t.Run("RolledBack", func(t *testing.T) {
		t.Parallel()

		// The parent's cleanup runs once the subtest and its rollback are
		// done; had the subtest committed, this read-committed transaction
		// would see its table. The shared database serves every test binary
		// at once, so the probe's name must be unique to the transaction.
		observer := pgtest.Tx(t)
		var probe string
		t.Cleanup(func() {
			var exists bool
			require.NoError(t, observer.QueryRow(context.Background(),
				"SELECT to_regclass($1) IS NOT NULL", probe).Scan(&exists))
			require.False(t, exists)
		})
		t.Run("Inner", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			tx := pgtest.Tx(t)
			require.NoError(t, tx.QueryRow(ctx, "SELECT 'pgtest_probe_' || txid_current()").Scan(&probe))
			_, err := tx.Exec(ctx, "CREATE TABLE "+pgx.Identifier{probe}.Sanitize()+" (id int)")
			require.NoError(t, err)
		})
	})
}

func tableExists(ctx context.Context, t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists))
	return exists
}

func requireDatabaseExists(ctx context.Context, t *testing.T, name string, want bool) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())

	var exists bool
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	require.Equal(t, want, exists)
}
