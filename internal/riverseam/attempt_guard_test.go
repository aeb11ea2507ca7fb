package riverseam_test

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/handoff/handoff/internal/riverseam/seamtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// gateArgs is a job whose second attempt runs until River has tried to
// write a stale completion onto it (the stale_write table says so), so that
// the race the guard closes is hit on every run, not by luck of timing.
type gateArgs struct{}

func (gateArgs) Kind() string { return "test_gate" }

// gateResult is what each attempt records: its own number.
type gateResult struct {
	Attempt int `json:"attempt"`
}

type gateWorker struct {
	river.WorkerDefaults[gateArgs]

	pool *pgxpool.Pool
}

func (w *gateWorker) Work(ctx context.Context, job *river.Job[gateArgs]) error {
	if err := river.RecordOutput(ctx, gateResult{Attempt: job.Attempt}); err != nil {
		return err
	}
	if job.Attempt != 2 {
		return nil
	}
	for {
		var seen bool
		if err := w.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM stale_write WHERE job_id = $1 AND old_attempt = 2)", job.ID).Scan(&seen); err != nil {
			return err
		}
		if seen {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type guardBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	svc    *task.Service
}

// setupGuard runs a River client with Handoff's middleware on a database
// where River's own completion of attempt 1, written after the middleware
// completed the job, fails (a BEFORE UPDATE trigger raises) as long as the
// job has not started attempt 2, so River's batch completer retries it
// until it lands on attempt 2, running; and where every attempt at a completion of another
// attempt than the running one is logged in stale_write, and every
// completion of a running job in completion.
func setupGuard(t *testing.T) *guardBundle {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION fail_completion() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION 'injected: completion write of job % fails', NEW.id;
		END $$;
		CREATE TRIGGER a_fail_completion BEFORE UPDATE ON river_job FOR EACH ROW
			WHEN (OLD.state <> 'running' AND NEW.state = OLD.state
			      AND OLD.attempt = 1 AND NEW.metadata -> 'handoff_attempt' = '1')
			EXECUTE FUNCTION fail_completion();

		CREATE TABLE stale_write (job_id bigint, old_state text, old_attempt int, marker jsonb);
		CREATE FUNCTION log_stale_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO stale_write VALUES (NEW.id, OLD.state, OLD.attempt, NEW.metadata -> 'handoff_attempt');
			RETURN NEW;
		END $$;
		CREATE TRIGGER a_log_stale_write BEFORE UPDATE ON river_job FOR EACH ROW
			WHEN (OLD.state = 'running' AND NEW.state <> 'running'
			      AND NEW.metadata -> 'handoff_attempt' IS DISTINCT FROM to_jsonb(OLD.attempt))
			EXECUTE FUNCTION log_stale_write();

		CREATE TABLE completion (job_id bigint, attempt int, marker jsonb, output jsonb);
		CREATE FUNCTION log_completion() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO completion VALUES (NEW.id, NEW.attempt, NEW.metadata -> 'handoff_attempt', NEW.metadata -> 'output');
			RETURN NULL;
		END $$;
		CREATE TRIGGER log_completion AFTER UPDATE ON river_job FOR EACH ROW
			WHEN (OLD.state = 'running' AND NEW.state = 'completed')
			EXECUTE FUNCTION log_completion();`)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, &gateWorker{pool: pool})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Middleware:        []rivertype.Middleware{riverseam.NewMiddleware(pool, pgtest.Logger(t), riverseam.DefaultIdleBelow)},
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}},
		Workers:           workers,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { stop(t, client) })
	return &guardBundle{pool: pool, client: client, svc: task.NewService(pool, client, jobs.Kinds(jobs.Deps{}), nil)}
}

// TestStaleCompletion is the reproduction of issue 8: River's completion of
// attempt 1 fails and its batch completer retries it; the task is retried
// the moment it shows completed, by Handoff's API or River's JobRetry (what
// River UI calls). The retried completion lands on attempt 2 while it runs.
// Attempt 2 must end completed with its own result, and the tasks row agree
// with River's.
func TestStaleCompletion(t *testing.T) {
	t.Parallel()

	retries := map[string]func(ctx context.Context, bundle *guardBundle, id int64) error{
		"RetryByAPI": func(ctx context.Context, bundle *guardBundle, id int64) error {
			_, err := bundle.svc.Retry(ctx, id)
			return err
		},
		"RetryByRiverJobRetry": func(ctx context.Context, bundle *guardBundle, id int64) error {
			_, err := bundle.client.JobRetry(ctx, id)
			return err
		},
	}
	for name, retry := range retries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			bundle := setupGuard(t)

			res, err := bundle.client.Insert(ctx, gateArgs{}, nil)
			require.NoError(t, err)
			id := res.Job.ID
			waitTaskState(t, bundle.pool, id, 1, "completed")

			require.NoError(t, retry(ctx, bundle, id))

			// Attempt 2 returns only once River's retried completion of
			// attempt 1 was tried on it, running.
			waitTaskState(t, bundle.pool, id, 2, "completed")
			stop(t, bundle.client)

			var staleState string
			var marker int
			require.NoError(t, bundle.pool.QueryRow(ctx,
				"SELECT old_state, marker::int FROM stale_write WHERE job_id = $1 AND old_attempt = 2", id).Scan(&staleState, &marker))
			require.Equal(t, "running", staleState)
			require.Equal(t, 1, marker, "the stale write was attempt 1's")

			// Each attempt was completed once, by its own outcome: attempt
			// 2 was not completed by attempt 1's while it ran.
			rows, err := bundle.pool.Query(ctx, "SELECT attempt, marker::int, output FROM completion WHERE job_id = $1 ORDER BY attempt", id)
			require.NoError(t, err)
			type completion struct {
				Attempt, Marker int
				Output          gateResult
			}
			completions, err := pgx.CollectRows(rows, pgx.RowToStructByPos[completion])
			require.NoError(t, err)
			require.Equal(t, []completion{{1, 1, gateResult{1}}, {2, 2, gateResult{2}}}, completions)

			got, err := bundle.svc.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, "completed", got.State)
			require.Equal(t, 2, got.Attempt)
			var result gateResult
			require.NoError(t, json.Unmarshal(got.Result, &result))
			require.Equal(t, 2, result.Attempt, "attempt 2's own result")
			seamtest.RequireNoDrift(t, bundle.pool, id)
		})
	}
}

// waitTaskState waits until the task shows attempt in state.
func waitTaskState(t *testing.T, pool *pgxpool.Pool, id int64, attempt int, state string) {
	t.Helper()
	var gotState string
	var gotAttempt int
	require.Eventually(t, func() bool {
		err := pool.QueryRow(t.Context(), "SELECT state, attempt FROM tasks WHERE id = $1", id).Scan(&gotState, &gotAttempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return gotState == state && gotAttempt == attempt
	}, 30*time.Second, 5*time.Millisecond, "task %d: want attempt %d %s", id, attempt, state)
}
