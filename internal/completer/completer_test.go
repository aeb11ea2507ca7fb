package completer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/completer"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/jobs"
)

type testBundle struct {
	pool       *pgxpool.Pool
	client     *river.Client[pgx.Tx]
	middleware *completer.Middleware
}

// setup runs a River client with Handoff's kinds and the middleware on a
// fresh database whose tasks table audits every write of a result.
func setup(t *testing.T, idleBelow float64) *testBundle {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	_, err := pool.Exec(ctx, `
		CREATE TABLE result_audit (task_id bigint NOT NULL);
		CREATE FUNCTION audit_result() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO result_audit VALUES (NEW.id); RETURN NULL; END $$;
		CREATE TRIGGER audit_result AFTER UPDATE ON tasks FOR EACH ROW
			WHEN (NEW.result IS NOT NULL AND OLD.result IS DISTINCT FROM NEW.result)
			EXECUTE FUNCTION audit_result();`)
	require.NoError(t, err)

	m := completer.New(pool, pgtest.Logger(t), idleBelow)
	workers, err := jobs.Workers(jobs.Kinds(jobs.Deps{}))
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Middleware:        []rivertype.Middleware{m},
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}},
		Workers:           workers,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	})
	return &testBundle{pool: pool, client: client, middleware: m}
}

// waitFinished waits until n tasks have left the waiting and running states.
func waitFinished(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var finished int
		require.NoError(t, pool.QueryRow(t.Context(),
			"SELECT count(*) FROM tasks WHERE state IN ('completed', 'retryable', 'discarded', 'cancelled')").Scan(&finished))
		return finished == n
	}, 20*time.Second, 10*time.Millisecond)
}

// resultWrites counts tasks whose result was written once, and tasks whose
// result was written more than once.
func resultWrites(t *testing.T, pool *pgxpool.Pool) (once, more int) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT count(*) FILTER (WHERE writes = 1), count(*) FILTER (WHERE writes > 1)
		FROM (SELECT count(*) AS writes FROM result_audit GROUP BY task_id) AS w`).Scan(&once, &more))
	return once, more
}

func TestMiddleware(t *testing.T) {
	t.Parallel()

	t.Run("QuietCompletesAtOnceResultOnce", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, completer.DefaultIdleBelow)

		res, err := bundle.client.Insert(t.Context(), jobs.NoopArgs{}, nil)
		require.NoError(t, err)
		waitFinished(t, bundle.pool, 1)

		require.EqualValues(t, 1, bundle.middleware.Inline(), "completed by the middleware, not River's completer")
		var state string
		var result []byte
		require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT state, result FROM tasks WHERE id = $1", res.Job.ID).Scan(&state, &result))
		require.Equal(t, "completed", state)
		require.JSONEq(t, `{}`, string(result), "the recorded output, carried by JobCompleteTx")
		// River's completer comes later and must find nothing to do.
		time.Sleep(400 * time.Millisecond)
		once, more := resultWrites(t, bundle.pool)
		require.Equal(t, 1, once)
		require.Zero(t, more)
	})

	t.Run("BusyLeavesJobsToRiver", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, 1) // "busy" from the first completion on

		const n = 50
		params := make([]river.InsertManyParams, n)
		for i := range params {
			params[i] = river.InsertManyParams{Args: jobs.NoopArgs{}}
		}
		_, err := bundle.client.InsertMany(t.Context(), params)
		require.NoError(t, err)
		waitFinished(t, bundle.pool, n)

		require.Less(t, bundle.middleware.Inline(), int64(n/2), "most jobs completed in River's batches")
		once, more := resultWrites(t, bundle.pool)
		require.Equal(t, n, once)
		require.Zero(t, more)
	})

	t.Run("FailedJobIsLeftToRiver", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, completer.DefaultIdleBelow)

		_, err := bundle.client.Insert(t.Context(), jobs.SleepArgs{Seconds: new(0.0), FailTimes: 1}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		waitFinished(t, bundle.pool, 1)

		require.Zero(t, bundle.middleware.Inline())
		var state string
		var attempt int
		require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT state, attempt FROM tasks").Scan(&state, &attempt))
		require.Equal(t, "discarded", state)
		require.Equal(t, 1, attempt)
	})

	t.Run("Disabled", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, 0)

		_, err := bundle.client.Insert(t.Context(), jobs.NoopArgs{}, nil)
		require.NoError(t, err)
		waitFinished(t, bundle.pool, 1)
		require.Zero(t, bundle.middleware.Inline())
	})
}
