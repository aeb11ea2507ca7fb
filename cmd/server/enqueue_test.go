package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

// TestServeSQLEnqueue: serve records its kinds and queues at start-up, so
// an app's transaction can enqueue with handoff.enqueue, and the running
// server works the task.
func TestServeSQLEnqueue(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDBURL(t)
	env := map[string]string{
		"DATABASE_URL": dbURL,
		"HTTP_ADDR":    "127.0.0.1:0",
		"WORKERS":      "4",
		"QUEUES":       "reports=2",
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
	exited := false
	base := waitServing(t, &stdout, func() bool {
		select {
		case err := <-done:
			exited = true
			t.Logf("run returned %v; stderr:\n%s", err, stderr.String())
			return false
		default:
			return !exited
		}
	})

	pool, err := pgxpool.New(t.Context(), dbURL)
	require.NoError(t, err)
	defer pool.Close()
	var id int64
	require.NoError(t, pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		return tx.QueryRow(t.Context(), `SELECT handoff.enqueue('sleep', '{"seconds": 0.1}', queue => 'reports')`).Scan(&id)
	}))
	require.Eventually(t, func() bool {
		return getTask(t, base, id).State == "completed"
	}, 30*time.Second, 50*time.Millisecond)
	require.JSONEq(t, `{"slept_ms": 100, "attempt": 1}`, normalizeSleep(getTask(t, base, id).Result))

	var kinds, queues []string
	rows, err := pool.Query(t.Context(), "SELECT kind FROM handoff.kinds ORDER BY kind")
	require.NoError(t, err)
	kinds, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Subset(t, kinds, []string{"noop", "sleep"})
	rows, err = pool.Query(t.Context(), "SELECT name FROM handoff.queues ORDER BY name")
	require.NoError(t, err)
	queues, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"default", "reports"}, queues)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(45 * time.Second):
		t.Fatal("serve did not stop")
	}
}
