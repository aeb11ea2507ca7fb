package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/store"
	"github.com/handoff/handoff/jobs"
)

func seconds(s float64) *float64 { return &s }

func TestSleepWorker(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		tx     pgx.Tx
		worker *rivertest.Worker[jobs.SleepArgs, pgx.Tx]
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := pgtest.Tx(t)
		w := &jobs.SleepWorker{
			Progress:      live.NewProgressWriter(tx),
			ProgressEvery: 20 * time.Millisecond,
		}
		return &testBundle{tx: tx, worker: rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, w)}
	}
	insert := func(ctx context.Context, t *testing.T, bundle *testBundle, args jobs.SleepArgs) *rivertype.JobRow {
		t.Helper()
		client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
		require.NoError(t, err)
		res, err := client.InsertTx(ctx, bundle.tx, args, nil)
		require.NoError(t, err)
		return res.Job
	}

	t.Run("SleepsReportsProgressAndRecordsResult", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)

		job := insert(ctx, t, bundle, jobs.SleepArgs{Seconds: seconds(0.1)})
		res, err := bundle.worker.WorkJob(ctx, t, bundle.tx, job)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)

		var result jobs.SleepResult
		require.NoError(t, json.Unmarshal(res.Job.Output(), &result))
		require.Equal(t, 1, result.Attempt)
		require.GreaterOrEqual(t, result.SleptMS, int64(100))

		// The trigger copied the result into the task row in the same
		// transaction that completed the job.
		row, err := store.New().TaskGetByID(ctx, bundle.tx, job.ID)
		require.NoError(t, err)
		require.Equal(t, "completed", row.State)
		require.JSONEq(t, string(res.Job.Output()), string(row.Result))
		require.NotNil(t, row.FinishedAt)

		// The last report landed, throttle or not.
		var progress jobs.Progress
		require.NoError(t, json.Unmarshal(row.Progress, &progress))
		require.InDelta(t, 100.0, progress.Done, 0.001)
		require.InDelta(t, 100.0, progress.Total, 0.001)
		require.Equal(t, "slept 0.1 s of 0.1 s", progress.Message)
	})

	t.Run("FailsPlannedAttempts", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t)

		job := insert(ctx, t, bundle, jobs.SleepArgs{Seconds: seconds(0), FailTimes: 1})
		before := time.Now()
		res, err := bundle.worker.WorkJob(ctx, t, bundle.tx, job)
		require.ErrorContains(t, err, "planned failure: attempt 1 of 1")
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		// A retry due within River's scheduler interval goes straight back
		// to available, scheduled for later.
		require.Contains(t, []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateRetryable}, res.Job.State)
		require.False(t, res.Job.ScheduledAt.Before(before.Add(time.Second)), "retry is scheduled after a backoff of at least 1 s")

		row, err := store.New().TaskGetByID(ctx, bundle.tx, job.ID)
		require.NoError(t, err)
		require.Equal(t, string(res.Job.State), row.State)
		require.Equal(t, int16(1), row.Attempt)
		require.Contains(t, string(row.Errors), "planned failure")
		require.Nil(t, row.Result)
	})

	t.Run("StopsWhenCancelled", func(t *testing.T) {
		t.Parallel()
		// Work called directly, without rivertest and the database: a
		// deadline firing during rivertest's own query would close the
		// connection under the test's transaction.
		job := &river.Job[jobs.SleepArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1}, Args: jobs.SleepArgs{Seconds: seconds(60)}}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := (&jobs.SleepWorker{}).Work(ctx, job)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// Not a timing check: a sleep that ignored its context would run
		// the full 60 s.
		require.Less(t, time.Since(start), 30*time.Second)
	})
}

func TestSleepWorkerNextRetry(t *testing.T) {
	t.Parallel()

	w := &jobs.SleepWorker{}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 20: time.Minute} {
		// Up to 10 % jitter on top of the doubling backoff; before and after
		// bracket the call, so a pause of the test changes nothing.
		before := time.Now()
		at := w.NextRetry(&river.Job[jobs.SleepArgs]{JobRow: &rivertype.JobRow{Attempt: attempt}})
		after := time.Now()
		require.False(t, at.Before(before.Add(want)), "attempt %d: retry at %v, before %v", attempt, at, before.Add(want))
		require.False(t, at.After(after.Add(want+want/10)), "attempt %d: retry at %v, after %v", attempt, at, after.Add(want+want/10))
	}
}

func TestSleepWorkerTimeout(t *testing.T) {
	t.Parallel()

	w := &jobs.SleepWorker{}
	got := w.Timeout(&river.Job[jobs.SleepArgs]{Args: jobs.SleepArgs{Seconds: seconds(3600)}})
	require.Greater(t, got, time.Hour, "a sleep must be allowed its full length")
}

func TestNoopWorker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	tx := pgtest.Tx(t)

	worker := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &jobs.NoopWorker{})
	res, err := worker.Work(ctx, t, tx, jobs.NoopArgs{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.JSONEq(t, `{}`, string(res.Job.Output()))
}
