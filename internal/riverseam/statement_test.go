package riverseam_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam"
)

// notifySQL is River's insert notification as riverpgxv5 names it: the one
// statement allowed after the commit.
const notifySQL = "-- name: PGNotifyMany :exec\nSELECT pg_notify('probe', 'x')"

func TestRunOwnStatement(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *pgxpool.Pool {
		t.Helper()
		pool := pgtest.NewDB(t)
		_, err := pool.Exec(t.Context(), "CREATE TABLE probe (n int NOT NULL)")
		require.NoError(t, err)
		return pool
	}
	count := func(t *testing.T, pool *pgxpool.Pool) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM probe").Scan(&n))
		return n
	}
	// Each way to send the one statement, with what tells it committed.
	first := map[string]func(ctx context.Context, tx pgx.Tx) error{
		"Exec": func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO probe VALUES (1)")
			return err
		},
		"Query": func(ctx context.Context, tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "INSERT INTO probe VALUES (1) RETURNING n")
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		},
		"QueryRow": func(ctx context.Context, tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, "INSERT INTO probe VALUES (1) RETURNING n").Scan(&n)
		},
		"SendBatch": func(ctx context.Context, tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue("INSERT INTO probe VALUES (1)")
			return tx.SendBatch(ctx, b).Close()
		},
		"CopyFrom": func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"probe"}, []string{"n"}, pgx.CopyFromRows([][]any{{1}}))
			return err
		},
	}

	for name, send := range first {
		t.Run(name+"ThenSecondStatementRefused", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := setup(t)

			var secondErr error
			_, err := riverseam.RunOwnStatement(ctx, pool, func(ctx context.Context, tx pgx.Tx) error {
				if err := send(ctx, tx); err != nil {
					return err
				}
				_, secondErr = tx.Exec(ctx, "INSERT INTO probe VALUES (2)")
				return secondErr
			})
			require.ErrorIs(t, err, riverseam.ErrSecondStatement)
			require.ErrorIs(t, secondErr, riverseam.ErrSecondStatement)
			require.Equal(t, 1, count(t, pool), "the first committed, the second was never sent")
		})

		t.Run(name+"CommittedThenFailedNotifyIsLate", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := setup(t)
			// A pg_notify that fails, as when Postgres goes away after the
			// commit (TestChaosPostgresRestart).
			_, err := pool.Exec(ctx, `CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'injected: notify fails'; END $$`)
			require.NoError(t, err)

			late, err := riverseam.RunOwnStatement(ctx, pool, func(ctx context.Context, tx pgx.Tx) error {
				if err := send(ctx, tx); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "-- name: PGNotifyMany :exec\nSELECT public.pg_notify('probe', 'x')")
				return err
			})
			require.NoError(t, err, "the task committed: the notification's failure is not the caller's")
			require.ErrorContains(t, late, "injected: notify fails")
			require.Equal(t, 1, count(t, pool))
		})
	}

	t.Run("FailedFirstStatementAllowsNoOther", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool := setup(t)

		_, err := riverseam.RunOwnStatement(ctx, pool, func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO probe VALUES (NULL)")
			require.Error(t, err)
			// Not committed: even River's notification would now commit
			// on its own, apart from the failed write.
			_, err = tx.Exec(ctx, notifySQL)
			return err
		})
		require.ErrorIs(t, err, riverseam.ErrSecondStatement)
		require.Zero(t, count(t, pool))
	})

	t.Run("BeginRefused", func(t *testing.T) {
		t.Parallel()
		pool := setup(t)
		_, err := riverseam.RunOwnStatement(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Begin(ctx)
			return err
		})
		require.ErrorIs(t, err, riverseam.ErrSecondStatement)
	})
}

// TestRunOwnStatementWaiting: the statement waits at most lockWait for a
// lock (55P03 after it, nothing written); the NOTIFY after its commit and
// the connection returned to the pool have the server's lock_timeout
// again; and a fn that panics leaves no connection borrowed or changed.
func TestRunOwnStatementWaiting(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	config, err := pgxpool.ParseConfig(pgtest.NewDBURL(t))
	require.NoError(t, err)
	config.MaxConns = 1 // every statement below borrows the same connection
	pool, err := pgxpool.NewWithConfig(ctx, config)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, "CREATE TABLE probe (n int PRIMARY KEY)")
	require.NoError(t, err)
	lockTimeout := func() string {
		t.Helper()
		var v string
		require.NoError(t, pool.QueryRow(ctx, "SHOW lock_timeout").Scan(&v))
		return v
	}

	// Another transaction holds key 1, uncommitted.
	other, err := pgx.Connect(ctx, config.ConnConfig.ConnString())
	require.NoError(t, err)
	defer other.Close(context.WithoutCancel(ctx))
	holder, err := other.Begin(ctx)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, "INSERT INTO probe VALUES (1)")
	require.NoError(t, err)

	var atNotify string
	_, err = riverseam.RunOwnStatementWaiting(ctx, pool, 50*time.Millisecond, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO probe VALUES (1)")
		return err
	})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "55P03", pgErr.Code)
	require.Equal(t, "0", lockTimeout(), "the connection went back as it came")
	require.NoError(t, holder.Rollback(ctx))

	late, err := riverseam.RunOwnStatementWaiting(ctx, pool, 50*time.Millisecond, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO probe VALUES (2)"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, notifySQL)
		// What the NOTIFY runs with: the bound was for the insert only.
		require.NoError(t, tx.(interface {
			Conn() *pgx.Conn
		}).Conn().QueryRow(ctx, "SHOW lock_timeout").Scan(&atNotify))
		return err
	})
	require.NoError(t, err)
	require.NoError(t, late)
	require.Equal(t, "0", atNotify)
	require.Equal(t, "0", lockTimeout())

	require.Panics(t, func() {
		_, _ = riverseam.RunOwnStatementWaiting(ctx, pool, 50*time.Millisecond, func(context.Context, pgx.Tx) error {
			panic("boom")
		})
	})
	acquireCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pool.Acquire(acquireCtx)
	require.NoError(t, err, "the panic left the pool's one connection borrowed")
	conn.Release()
	require.Equal(t, "0", lockTimeout())
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM probe").Scan(&n))
	require.Equal(t, 1, n)
}
