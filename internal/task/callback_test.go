package task_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// callbackJob is a callback as inserted by migration 00012's trigger.
type callbackJob struct {
	ID       int64
	Attempt  int // the attempt of the task whose outcome it reports
	Args     callbackArgs
	Task     task.Task // decoded from the body
	SameTx   bool      // inserted by the transaction that last wrote the task
	Kind     string
	Queue    string
	Priority int
}

type callbackArgs struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// callbacks returns the callback jobs of task id, oldest first. SameTx
// compares the transaction that wrote each job with the one that last wrote
// the task (their xmin).
func callbacks(t *testing.T, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, id int64,
) []callbackJob {
	t.Helper()
	rows, err := db.Query(t.Context(), `
		SELECT j.id, (j.metadata ->> 'handoff_callback_attempt')::int, j.args, j.kind, j.queue, j.priority,
		       j.xmin::text = t.xmin::text
		FROM river_job j JOIN task_records t ON t.id = (j.metadata ->> 'handoff_callback_of')::bigint
		WHERE t.id = $1
		ORDER BY j.id`, id)
	require.NoError(t, err)
	defer rows.Close()
	var out []callbackJob
	for rows.Next() {
		var (
			cb  callbackJob
			raw []byte
		)
		require.NoError(t, rows.Scan(&cb.ID, &cb.Attempt, &raw, &cb.Kind, &cb.Queue, &cb.Priority, &cb.SameTx))
		require.NoError(t, json.Unmarshal(raw, &cb.Args))
		require.NoError(t, json.Unmarshal([]byte(cb.Args.Body), &cb.Task))
		out = append(out, cb)
	}
	require.NoError(t, rows.Err())
	return out
}

// setupCallbacks runs workers for queue "work" only, so the callback jobs
// (kind http, queue default; the http worker is not part of this package)
// stay as the trigger inserted them.
func setupCallbacks(t *testing.T) (*pgxpool.Pool, *river.Client[pgx.Tx], *task.Service) {
	t.Helper()
	pool := pgtest.NewDB(t)
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Queues:            map[string]river.QueueConfig{"work": {MaxWorkers: 5}},
		Workers:           workers,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, client.StopAndCancel(ctx))
	})
	svc := task.NewService(pool, client, kinds, &task.ServiceOpts{Queues: []string{"default", "work"}})
	return pool, client, svc
}

func requireCallback(t *testing.T, cb callbackJob, want *task.Task) {
	t.Helper()
	require.Equal(t, "http", cb.Kind)
	require.Equal(t, "default", cb.Queue)
	require.Equal(t, "https://app.example/hooks/handoff", cb.Args.URL)
	require.Equal(t, "POST", cb.Args.Method)
	require.Equal(t, map[string]string{"Content-Type": "application/json"}, cb.Args.Headers)
	require.True(t, cb.SameTx, "callback %d was not inserted by the transaction that finished task %d", cb.ID, want.ID)

	// The body is the task object as the API shows it.
	var body map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(cb.Args.Body), &body))
	var api map[string]json.RawMessage
	raw, err := json.Marshal(want)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &api))
	require.ElementsMatch(t, keys(api), keys(body), "task object fields")
	got := cb.Task
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.State, got.State)
	require.Equal(t, want.Attempt, got.Attempt)
	require.Equal(t, want.Kind, got.Kind)
	require.JSONEq(t, string(want.Args), string(got.Args))
	require.JSONEq(t, string(want.Result), string(got.Result))
	require.Equal(t, want.CallbackURL, got.CallbackURL)
	require.Len(t, got.Errors, len(want.Errors))
	require.NotNil(t, got.FinishedAt)
	require.True(t, want.FinishedAt.Equal(*got.FinishedAt))
	require.True(t, want.CreatedAt.Equal(got.CreatedAt))
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

const hookURL = "https://app.example/hooks/handoff"

func TestCallback(t *testing.T) {
	t.Parallel()

	t.Run("CompletedSendsOneCallbackFromTheCompletingTransaction", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool, _, svc := setupCallbacks(t)

		created, _, err := svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(0.01, 0), Queue: "work", CallbackURL: hookURL})
		require.NoError(t, err)
		require.Equal(t, hookURL, *created.CallbackURL)
		require.Empty(t, callbacks(t, pool, created.ID), "no callback before the outcome")

		done := waitForState(t, svc, created.ID, "completed")
		cbs := callbacks(t, pool, created.ID)
		require.Len(t, cbs, 1)
		require.Equal(t, 1, cbs[0].Attempt)
		requireCallback(t, cbs[0], done)

		// The callback is a task too, without a callback of its own.
		cbTask, err := svc.Get(ctx, cbs[0].ID)
		require.NoError(t, err)
		require.Equal(t, "http", cbTask.Kind)
		require.Nil(t, cbTask.CallbackURL)
	})

	t.Run("DiscardedSendsOneCallback", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool, _, svc := setupCallbacks(t)

		created, _, err := svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(0.01, 5), Queue: "work", MaxAttempts: 1, CallbackURL: hookURL})
		require.NoError(t, err)
		done := waitForState(t, svc, created.ID, "discarded")
		cbs := callbacks(t, pool, created.ID)
		require.Len(t, cbs, 1)
		requireCallback(t, cbs[0], done)
		require.Len(t, cbs[0].Task.Errors, 1)
	})

	t.Run("RetriedTaskSendsOnePerOutcome", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool, _, svc := setupCallbacks(t)

		created, _, err := svc.Create(ctx, task.CreateRequest{Kind: "noop", Queue: "work", CallbackURL: hookURL})
		require.NoError(t, err)
		first := waitForState(t, svc, created.ID, "completed")
		_, err = svc.Retry(ctx, created.ID)
		require.NoError(t, err)
		second := waitForState(t, svc, created.ID, "completed")
		require.Eventually(t, func() bool {
			got, err := svc.Get(ctx, created.ID)
			require.NoError(t, err)
			return got.Attempt == 2 && got.State == "completed"
		}, 30*time.Second, 20*time.Millisecond)
		second, err = svc.Get(ctx, second.ID)
		require.NoError(t, err)

		cbs := callbacks(t, pool, created.ID)
		require.Len(t, cbs, 2)
		require.Equal(t, 1, cbs[0].Attempt)
		require.Equal(t, 1, cbs[0].Task.Attempt)
		require.True(t, first.FinishedAt.Equal(*cbs[0].Task.FinishedAt))
		require.Equal(t, 2, cbs[1].Attempt)
		requireCallback(t, cbs[1], second)
	})

	t.Run("CancelSendsOneCallbackNoneOnRollback", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool, client, svc := setupCallbacks(t)

		runAt := time.Now().Add(time.Hour)
		created, _, err := svc.Create(ctx, task.CreateRequest{Kind: "noop", Queue: "work", RunAt: &runAt, CallbackURL: hookURL})
		require.NoError(t, err)

		// An outcome that rolls back sends nothing.
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		_, err = client.JobCancelTx(ctx, tx, created.ID)
		require.NoError(t, err)
		require.Len(t, callbacks(t, tx, created.ID), 1, "the cancelling transaction sees its callback")
		require.Empty(t, callbacks(t, pool, created.ID), "nothing outside it before commit")
		require.NoError(t, tx.Rollback(ctx))
		require.Empty(t, callbacks(t, pool, created.ID))
		still, err := svc.Get(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "scheduled", still.State)

		cancelled, err := svc.Cancel(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "cancelled", cancelled.State)
		cbs := callbacks(t, pool, created.ID)
		require.Len(t, cbs, 1)
		requireCallback(t, cbs[0], cancelled)

		// Cancelling again changes nothing and sends nothing.
		_, err = svc.Cancel(ctx, created.ID)
		require.NoError(t, err)
		require.Len(t, callbacks(t, pool, created.ID), 1)
	})

	t.Run("NoCallbackURLNoCallback", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool, _, svc := setupCallbacks(t)

		created, _, err := svc.Create(ctx, task.CreateRequest{Kind: "noop", Queue: "work"})
		require.NoError(t, err)
		waitForState(t, svc, created.ID, "completed")
		tasks, jobRows := countRows(t, pool)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)
	})
}
