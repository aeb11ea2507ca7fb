package riverseam_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

type testBundle struct {
	pool       *pgxpool.Pool
	client     *river.Client[pgx.Tx]
	middleware *riverseam.Middleware
	svc        *task.Service
}

// setup runs a River client with Handoff's kinds and the middleware on a
// fresh database that audits every completion of a job and every write of a
// completed task's result.
func setup(t *testing.T, idleBelow float64) *testBundle {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	_, err := pool.Exec(ctx, `
		CREATE TABLE completion_audit (job_id bigint, attempt int, attempted_at timestamptz, finalized_at timestamptz);
		CREATE FUNCTION audit_completion() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO completion_audit VALUES (NEW.id, NEW.attempt, NEW.attempted_at, NEW.finalized_at); RETURN NULL; END $$;
		CREATE TRIGGER audit_completion AFTER UPDATE ON river_job FOR EACH ROW
			WHEN (NEW.state = 'completed' AND OLD.state <> 'completed')
			EXECUTE FUNCTION audit_completion();
		CREATE TABLE result_audit (task_id bigint NOT NULL);
		CREATE FUNCTION audit_result() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO result_audit VALUES (NEW.id); RETURN NULL; END $$;
		CREATE TRIGGER audit_result AFTER UPDATE ON task_records FOR EACH ROW
			WHEN (NEW.state = 'completed' AND NEW.result IS NOT NULL)
			EXECUTE FUNCTION audit_result();`)
	require.NoError(t, err)

	m := riverseam.NewMiddleware(pool, pgtest.Logger(t), idleBelow)
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
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
	t.Cleanup(func() { stop(t, client) })
	return &testBundle{pool: pool, client: client, middleware: m, svc: task.NewService(pool, client, kinds, nil)}
}

// stop stops the client, which first writes every completion River's
// completer still holds; stopping twice is fine.
func stop(t *testing.T, client *river.Client[pgx.Tx]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, client.Stop(ctx))
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

// requireInline waits until the middleware counts n jobs completed by
// itself. It counts a job just after its transaction commits, so a test
// that sees the task completed may look a moment too early.
func requireInline(t *testing.T, m *riverseam.Middleware, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return m.Inline() == n }, 5*time.Second, time.Millisecond,
		"want %d jobs completed by the middleware, not River's completer", n)
}

// requireWrittenOnce checks that every one of n jobs was completed once per
// attempt, and every completed task's result written once.
func requireWrittenOnce(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	var completions, completedTwice, results, resultTwice int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM completion_audit),
		(SELECT count(*) FROM (SELECT 1 FROM completion_audit GROUP BY job_id, attempt HAVING count(*) > 1) AS x),
		(SELECT count(*) FROM result_audit),
		(SELECT count(*) FROM (SELECT 1 FROM result_audit GROUP BY task_id HAVING count(*) > 1) AS y)`).
		Scan(&completions, &completedTwice, &results, &resultTwice))
	require.Equal(t, n, completions, "completions")
	require.Zero(t, completedTwice, "jobs completed twice in one attempt")
	require.Equal(t, n, results, "result writes")
	require.Zero(t, resultTwice, "results written twice")
}

func TestMiddleware(t *testing.T) {
	t.Parallel()

	t.Run("QuietCompletesAtOnceResultOnce", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, riverseam.DefaultIdleBelow)

		res, err := bundle.client.Insert(t.Context(), jobs.NoopArgs{}, nil)
		require.NoError(t, err)
		waitFinished(t, bundle.pool, 1)

		requireInline(t, bundle.middleware, 1)
		var state string
		var result []byte
		require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT state, result FROM tasks WHERE id = $1", res.Job.ID).Scan(&state, &result))
		require.Equal(t, "completed", state)
		require.JSONEq(t, `{}`, string(result), "the recorded output, carried by JobCompleteTx")
		// River's completer writes its own completion at the latest when
		// the client stops; it must change nothing.
		stop(t, bundle.client)
		requireWrittenOnce(t, bundle.pool, 1)
	})

	t.Run("RetryAtOnceIsNotCompletedByTheLastAttempt", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, riverseam.DefaultIdleBelow)

		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 0.3}`)})
		require.NoError(t, err)
		waitFinished(t, bundle.pool, 1)
		requireInline(t, bundle.middleware, 1)

		// Retried the moment it shows completed, while River's own
		// completion of attempt 1 is still queued.
		_, err = bundle.svc.Retry(ctx, created.ID)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			got, err := bundle.svc.Get(ctx, created.ID)
			require.NoError(t, err)
			return got.Attempt == 2 && got.State == "completed"
		}, 20*time.Second, 10*time.Millisecond)
		stop(t, bundle.client)

		// Attempt 2 was completed by its own end, after its 0.3 s sleep,
		// and its result is attempt 2's.
		var ran time.Duration
		require.NoError(t, bundle.pool.QueryRow(ctx,
			"SELECT finalized_at - attempted_at FROM completion_audit WHERE job_id = $1 AND attempt = 2", created.ID).Scan(&ran))
		require.GreaterOrEqual(t, ran, 300*time.Millisecond)
		got, err := bundle.svc.Get(ctx, created.ID)
		require.NoError(t, err)
		// A sleep takes a little longer than asked, so slept_ms is a range.
		var result jobs.SleepResult
		require.NoError(t, json.Unmarshal(got.Result, &result))
		require.Equal(t, 2, result.Attempt, "attempt 2's result")
		require.GreaterOrEqual(t, result.SleptMS, int64(300))
		require.Less(t, result.SleptMS, int64(10_000), "milliseconds, not a finer unit")
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

		stop(t, bundle.client) // every worker has returned: the count is final
		require.Less(t, bundle.middleware.Inline(), int64(n/2), "most jobs completed in River's batches")
		requireWrittenOnce(t, bundle.pool, n)
	})

	t.Run("FailedJobIsLeftToRiver", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, riverseam.DefaultIdleBelow)

		_, err := bundle.client.Insert(t.Context(), jobs.SleepArgs{Seconds: new(0.0), FailTimes: 1}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		waitFinished(t, bundle.pool, 1)

		stop(t, bundle.client) // every worker has returned: the count is final
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
		stop(t, bundle.client) // every worker has returned: the count is final
		require.Zero(t, bundle.middleware.Inline())
	})
}
