package task_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

type testBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	svc    *task.Service
}

// setup builds the real stack on a fresh database. With work set, River's
// client runs workers, tuned to pick up and retry fast.
func setup(t *testing.T, work bool, extraKinds ...jobs.Kind) *testBundle {
	t.Helper()
	pool := pgtest.NewDB(t)
	kinds := append(jobs.Kinds(jobs.Deps{Progress: live.NewProgressWriter(pool)}), extraKinds...)
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	cfg := &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Workers:           workers,
	}
	if work {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	require.NoError(t, err)
	if work {
		require.NoError(t, client.Start(t.Context()))
		t.Cleanup(func() {
			// t.Context() is already cancelled here; Stop must wait for River.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, client.StopAndCancel(ctx))
		})
	}
	return &testBundle{pool: pool, client: client, svc: task.NewService(pool, client, kinds, nil)}
}

// knownKinds is the kind list as error messages show it.
func knownKinds() string {
	var names []string
	for _, k := range jobs.Kinds(jobs.Deps{}) {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func countRows(t *testing.T, pool *pgxpool.Pool) (tasks, jobRows int) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM river_job)").Scan(&tasks, &jobRows))
	return tasks, jobRows
}

func sleepArgs(seconds float64, failTimes int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"seconds": %g, "fail_times": %d}`, seconds, failTimes))
}

func waitForState(t *testing.T, svc *task.Service, id int64, want string) *task.Task {
	t.Helper()
	var got *task.Task
	require.Eventually(t, func() bool {
		var err error
		got, err = svc.Get(t.Context(), id)
		require.NoError(t, err)
		return got.State == want
	}, 60*time.Second, 20*time.Millisecond, "task %d never reached %s", id, want)
	return got
}

func TestCreate(t *testing.T) {
	t.Parallel()

	t.Run("WritesTaskAndJobTogether", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		got, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(1, 0), Priority: 2, MaxAttempts: 3})
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, "available", got.State)
		require.Equal(t, "default", got.Queue)
		require.Equal(t, 2, got.Priority)
		require.Equal(t, 3, got.MaxAttempts)
		require.Empty(t, got.Errors)
		require.JSONEq(t, `null`, string(got.Result))

		job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(bundle.pool), jobs.SleepArgs{}, &rivertest.RequireInsertedOpts{MaxAttempts: 3, Priority: 2})
		require.Equal(t, got.ID, job.ID, "task and job share their id")
		tasks, jobRows := countRows(t, bundle.pool)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)
	})

	t.Run("AnswerIsTheStoredTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		// The answer is built from the inserted job; the stored row comes
		// from the insert trigger. A client must not see them differ.
		for _, req := range []task.CreateRequest{
			{Kind: "sleep", Args: json.RawMessage(`{ "fail_times":1,  "seconds" : 0.5 }`), Priority: 3},
			{Kind: "noop", Queue: "default", IdempotencyKey: "answer-1", MaxAttempts: 7},
			{Kind: "noop", IdempotencyKey: "answer-2", CallbackURL: "https://app.example/done", Tenant: "acme"},
		} {
			created, _, err := bundle.svc.Create(ctx, req)
			require.NoError(t, err)
			// The task is read back in its own tenant: another's is 404.
			tenant := req.Tenant
			if tenant == "" {
				tenant = task.DefaultTenant
			}
			stored, err := bundle.svc.Get(task.WithTenant(ctx, tenant), created.ID)
			require.NoError(t, err)
			createdJSON, err := json.Marshal(created)
			require.NoError(t, err)
			storedJSON, err := json.Marshal(stored)
			require.NoError(t, err)
			require.JSONEq(t, string(storedJSON), string(createdJSON))
		}
	})

	t.Run("JobInsertedWithRiverIsATask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		// A Go app may insert with River in its own domain transaction;
		// the job is a task all the same.
		tx, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		res, err := bundle.client.InsertTx(ctx, tx, jobs.SleepArgs{Seconds: new(2.0)}, &river.InsertOpts{Priority: 4})
		require.NoError(t, err)
		_, err = bundle.svc.Get(ctx, res.Job.ID)
		require.ErrorIs(t, err, task.ErrNotFound, "not visible before its transaction commits")
		require.NoError(t, tx.Commit(ctx))

		got, err := bundle.svc.Get(ctx, res.Job.ID)
		require.NoError(t, err)
		require.Equal(t, "sleep", got.Kind)
		require.Equal(t, "available", got.State)
		require.Equal(t, 4, got.Priority)
		require.JSONEq(t, `{"seconds": 2}`, string(got.Args))
	})

	t.Run("RequestThatGivesUpWritesNothing", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		// The INSERT waits on a lock past the request's deadline. It must be
		// cancelled in Postgres: were the connection merely dropped, it
		// would commit once the lock goes, after its client was told it
		// failed.
		lock, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		_, err = lock.Exec(ctx, "LOCK TABLE task_records IN EXCLUSIVE MODE")
		require.NoError(t, err)

		reqCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, _, err = bundle.svc.Create(reqCtx, task.CreateRequest{Kind: "noop"})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, lock.Rollback(ctx))

		// Had the INSERT survived, it would be running or done by now.
		require.Eventually(t, func() bool {
			var waiting int
			require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND query LIKE '%river_job%' AND state = 'active' AND pid <> pg_backend_pid()`).Scan(&waiting))
			return waiting == 0
		}, 5*time.Second, 20*time.Millisecond)
		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})

	t.Run("FailedWakeUpAfterInsertStillAccepts", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		// River follows its INSERT with a NOTIFY to wake the workers. The
		// INSERT commits on its own, so the NOTIFY failing (as when Postgres
		// shuts down between the two) must not turn an accepted task into
		// an error. A pg_notify that always fails shadows the real one for
		// new sessions of this database.
		_, err := bundle.pool.Exec(ctx, `
			CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'notify refused by test'; END $$;
			DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = public, pg_catalog', current_database()); END $$;`)
		require.NoError(t, err)
		pool, err := pgxpool.New(ctx, bundle.pool.Config().ConnString())
		require.NoError(t, err)
		defer pool.Close()
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
		require.NoError(t, err)
		svc := task.NewService(pool, client, jobs.Kinds(jobs.Deps{}), nil)

		got, created, err := svc.Create(ctx, task.CreateRequest{Kind: "noop"})
		require.NoError(t, err)
		require.True(t, created)
		stored, err := svc.Get(ctx, got.ID)
		require.NoError(t, err)
		require.Equal(t, "available", stored.State)

		var notifyErr error
		_, notifyErr = pool.Exec(ctx, "SELECT pg_notify('x', 'y')")
		require.ErrorContains(t, notifyErr, "notify refused by test", "the shadowing works, so the insert above met a failing NOTIFY")
	})

	t.Run("RunAtSchedules", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, false)

		runAt := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		got, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "noop", RunAt: &runAt})
		require.NoError(t, err)
		require.Equal(t, "scheduled", got.State)
		require.True(t, runAt.Equal(got.ScheduledAt), "scheduled_at %s, want %s", got.ScheduledAt, runAt)

		past := time.Now().Add(-time.Hour)
		got, _, err = bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "noop", RunAt: &past})
		require.NoError(t, err)
		require.Equal(t, "available", got.State, "a time already past means now")
	})

	t.Run("JobInsertFailureWritesNothing", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		_, err := bundle.pool.Exec(ctx, `
			CREATE FUNCTION refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'job insert refused by test'; END $$;
			CREATE TRIGGER refuse_job BEFORE INSERT ON river_job FOR EACH ROW EXECUTE FUNCTION refuse_job();`)
		require.NoError(t, err)

		_, _, err = bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop"})
		require.ErrorContains(t, err, "job insert refused by test")
		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})

	t.Run("TaskInsertFailureWritesNoJob", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		_, err := bundle.pool.Exec(ctx, `
			CREATE FUNCTION refuse_task() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'task insert refused by test'; END $$;
			CREATE TRIGGER refuse_task BEFORE INSERT ON task_records FOR EACH ROW EXECUTE FUNCTION refuse_task();`)
		require.NoError(t, err)

		_, _, err = bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop"})
		require.ErrorContains(t, err, "task insert refused by test")
		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})

	t.Run("RejectsInvalidRequestsWritingNothing", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, false)
		runAt := time.Now().AddDate(11, 0, 0)
		known := knownKinds()

		tests := []struct {
			req  task.CreateRequest
			want map[string]string
		}{
			{task.CreateRequest{}, map[string]string{"kind": "is required; known kinds: " + known}},
			{task.CreateRequest{Kind: "email"}, map[string]string{"kind": `unknown kind "email"; known kinds: ` + known}},
			{task.CreateRequest{Kind: "noop", IdempotencyKey: "a\x00b"}, map[string]string{"idempotency_key": "must be valid UTF-8 without NUL characters"}},
			{task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 4000}`)}, map[string]string{"args.seconds": "must be between 0 and 3600"}},
			{task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1, "extra": true}`)}, map[string]string{"args.extra": "unknown field"}},
			{task.CreateRequest{Kind: "noop", Priority: 5}, map[string]string{"priority": "must be between 1 (highest) and 4"}},
			{task.CreateRequest{Kind: "noop", Queue: "nobody-serves-this"}, map[string]string{"queue": `unknown queue "nobody-serves-this"; served queues: default`}},
			{task.CreateRequest{Kind: "noop", MaxAttempts: -1}, map[string]string{"max_attempts": "must be between 1 and 1000"}},
			{task.CreateRequest{Kind: "noop", RunAt: &runAt}, map[string]string{"run_at": "must be within 10 years from now"}},
		}
		for _, tt := range tests {
			_, _, err := bundle.svc.Create(t.Context(), tt.req)
			var validation *task.ValidationError
			require.ErrorAs(t, err, &validation, "request %+v", tt.req)
			require.Equal(t, tt.want, validation.Fields)
		}
		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})
}

func TestCreateIdempotency(t *testing.T) {
	t.Parallel()

	t.Run("SameRequestSameTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		first, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds":1,"fail_times":0}`), IdempotencyKey: "k1"})
		require.NoError(t, err)
		require.True(t, created)
		// Field order and defaults spelled out do not make it another request.
		again, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"fail_times":0, "seconds":1.0}`), IdempotencyKey: "k1", Queue: "default"})
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, first.ID, again.ID)

		_, _, err = bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(2, 0), IdempotencyKey: "k1"})
		require.ErrorIs(t, err, task.ErrIdempotencyConflict)

		tasks, jobRows := countRows(t, bundle.pool)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)
	})

	t.Run("ConcurrentRepeatsMakeOneTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		const n = 20
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			ids     = make([]int64, n)
			created = make([]bool, n)
			errs    = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				var got *task.Task
				got, created[i], errs[i] = bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "same"})
				if got != nil {
					ids[i] = got.ID
				}
			})
		}
		close(start)
		wg.Wait()

		createdCount := 0
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i])
			if created[i] {
				createdCount++
			}
		}
		require.Equal(t, 1, createdCount)
		tasks, jobRows := countRows(t, bundle.pool)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)
	})
}

func TestWork(t *testing.T) {
	t.Parallel()

	t.Run("RetriesUntilSuccessKeepingErrors", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, true)

		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "sleep", Args: sleepArgs(0.05, 2)})
		require.NoError(t, err)
		done := waitForState(t, bundle.svc, created.ID, "completed")

		require.Equal(t, 3, done.Attempt)
		require.Len(t, done.Errors, 2)
		for i, e := range done.Errors {
			require.Equal(t, i+1, e.Attempt)
			require.Contains(t, e.Error, fmt.Sprintf("planned failure: attempt %d of 2", i+1))
		}
		var result jobs.SleepResult
		require.NoError(t, json.Unmarshal(done.Result, &result))
		require.Equal(t, 3, result.Attempt)
		require.GreaterOrEqual(t, result.SleptMS, int64(50))
		require.NotNil(t, done.StartedAt)
		require.NotNil(t, done.FinishedAt)
		require.JSONEq(t, `{"done": 50, "total": 50, "message": "slept 0.1 s of 0.1 s"}`, string(done.Progress))
	})

	t.Run("DiscardsAfterMaxAttempts", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, true)

		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "sleep", Args: sleepArgs(0, 5), MaxAttempts: 2})
		require.NoError(t, err)
		done := waitForState(t, bundle.svc, created.ID, "discarded")
		require.Equal(t, 2, done.Attempt)
		require.Len(t, done.Errors, 2)
		require.JSONEq(t, `null`, string(done.Result))
		require.NotNil(t, done.FinishedAt)
	})

	t.Run("TaskOutlivesItsJob", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, true)

		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop"})
		require.NoError(t, err)
		waitForState(t, bundle.svc, created.ID, "completed")

		// What River's cleaner does once the retention period has passed.
		_, err = bundle.client.JobDelete(ctx, created.ID)
		require.NoError(t, err)
		_, jobRows := countRows(t, bundle.pool)
		require.Zero(t, jobRows)

		got, err := bundle.svc.Get(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "completed", got.State)
		require.JSONEq(t, `{}`, string(got.Result))

		_, err = bundle.svc.Retry(ctx, created.ID)
		require.ErrorIs(t, err, task.ErrJobDeleted)
		got, err = bundle.svc.Cancel(ctx, created.ID)
		require.NoError(t, err, "cancelling a finished task returns it unchanged")
		require.Equal(t, "completed", got.State)
	})

	t.Run("RetryRunsAFinishedTaskAgain", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, true)

		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(0, 5), MaxAttempts: 1})
		require.NoError(t, err)
		waitForState(t, bundle.svc, created.ID, "discarded")

		// The retried attempt is attempt 2, which fail_times 5 also fails;
		// the point is that it runs again and its error is kept.
		retried, err := bundle.svc.Retry(ctx, created.ID)
		require.NoError(t, err)
		require.Contains(t, []string{"available", "running", "discarded"}, retried.State)
		require.Eventually(t, func() bool {
			got, err := bundle.svc.Get(ctx, created.ID)
			require.NoError(t, err)
			return got.State == "discarded" && len(got.Errors) == 2
		}, 30*time.Second, 20*time.Millisecond)
	})

	t.Run("CancelRunningTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, true)

		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(60, 0)})
		require.NoError(t, err)
		waitForState(t, bundle.svc, created.ID, "running")

		flagged, err := bundle.svc.Cancel(ctx, created.ID)
		require.NoError(t, err)
		require.NotNil(t, flagged.CancelRequestedAt, "a running task shows that it was asked to cancel")
		done := waitForState(t, bundle.svc, created.ID, "cancelled")
		require.NotNil(t, done.FinishedAt)
		require.NotNil(t, done.CancelRequestedAt)

		// A retry clears the old request: the next attempt was not asked
		// to cancel, and a later cancel shows its own time.
		retried, err := bundle.svc.Retry(ctx, created.ID)
		require.NoError(t, err)
		require.Nil(t, retried.CancelRequestedAt, "a retry clears the previous attempt's cancel request")
		running := waitForState(t, bundle.svc, created.ID, "running")
		require.Equal(t, 2, running.Attempt)
		require.Nil(t, running.CancelRequestedAt)
		again, err := bundle.svc.Cancel(ctx, created.ID)
		require.NoError(t, err)
		require.NotNil(t, again.CancelRequestedAt)
		require.True(t, again.CancelRequestedAt.After(*done.CancelRequestedAt), "the second cancel shows its own time")
		waitForState(t, bundle.svc, created.ID, "cancelled")
	})
}

func TestControl(t *testing.T) {
	t.Parallel()

	t.Run("CancelAndRetryScheduledTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		runAt := time.Now().Add(time.Hour)
		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", RunAt: &runAt})
		require.NoError(t, err)

		cancelled, err := bundle.svc.Cancel(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "cancelled", cancelled.State)
		require.NotNil(t, cancelled.FinishedAt)

		retried, err := bundle.svc.Retry(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "available", retried.State)
		require.Nil(t, retried.FinishedAt)
		require.WithinDuration(t, time.Now(), retried.ScheduledAt, time.Minute)
	})

	t.Run("DeletedJobCancelsItsTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop"})
		require.NoError(t, err)
		// As River UI's delete button does.
		_, err = bundle.client.JobDelete(ctx, created.ID)
		require.NoError(t, err)

		got, err := bundle.svc.Get(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "cancelled", got.State)
		require.NotNil(t, got.FinishedAt)
		require.Len(t, got.Errors, 1)
		require.Equal(t, "job deleted before it finished", got.Errors[0].Error)
	})

	t.Run("UnknownTask", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		_, err := bundle.svc.Get(ctx, 12345)
		require.ErrorIs(t, err, task.ErrNotFound)
		_, err = bundle.svc.Cancel(ctx, 12345)
		require.ErrorIs(t, err, task.ErrNotFound)
		_, err = bundle.svc.Retry(ctx, 12345)
		require.ErrorIs(t, err, task.ErrNotFound)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)

	var ids []int64
	for i := range 5 {
		kind, args := "noop", json.RawMessage(nil)
		if i%2 == 0 {
			kind, args = "sleep", sleepArgs(1, 0)
		}
		created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: kind, Args: args})
		require.NoError(t, err)
		ids = append(ids, created.ID)
	}
	_, err := bundle.svc.Cancel(ctx, ids[4])
	require.NoError(t, err)

	taskIDs := func(tasks []*task.Task) []int64 {
		out := make([]int64, len(tasks))
		for i, tk := range tasks {
			out[i] = tk.ID
		}
		return out
	}

	page, next, err := bundle.svc.List(ctx, task.ListParams{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[4], ids[3]}, taskIDs(page), "newest first")
	page, next, err = bundle.svc.List(ctx, task.ListParams{Limit: 2, AfterID: next})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[2], ids[1]}, taskIDs(page))
	page, next, err = bundle.svc.List(ctx, task.ListParams{Limit: 2, AfterID: next})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[0]}, taskIDs(page))
	require.Zero(t, next, "last page has no next cursor")

	page, _, err = bundle.svc.List(ctx, task.ListParams{Kind: "sleep"})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[4], ids[2], ids[0]}, taskIDs(page))
	// A kind's pages merge its states (ids[4] is cancelled, the rest available).
	page, next, err = bundle.svc.List(ctx, task.ListParams{Kind: "sleep", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[4], ids[2]}, taskIDs(page))
	page, next, err = bundle.svc.List(ctx, task.ListParams{Kind: "sleep", Limit: 2, AfterID: next})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[0]}, taskIDs(page))
	require.Zero(t, next)
	page, _, err = bundle.svc.List(ctx, task.ListParams{State: "available"})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[3], ids[2], ids[1], ids[0]}, taskIDs(page))
	page, _, err = bundle.svc.List(ctx, task.ListParams{Kind: "sleep", State: "cancelled"})
	require.NoError(t, err)
	require.Equal(t, []int64{ids[4]}, taskIDs(page))
}

// TestListEveryState pages through tasks in every state River has, running
// included (a running task's record says 'available', migration 00017): the
// unfiltered list, and a kind's list, which walks the kind+state index once
// per state (migration 00018) and must merge them all, newest first, across
// page boundaries.
func TestListEveryState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)

	var states []string
	require.NoError(t, bundle.pool.QueryRow(ctx,
		`SELECT array_agg(s::text ORDER BY s) FROM unnest(enum_range(NULL::river_job_state)) AS s`).Scan(&states))
	// The records take River's states: the list's walk over the enum covers
	// every state a record can hold.
	var allowed string
	require.NoError(t, bundle.pool.QueryRow(ctx,
		`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'tasks_state_check'`).Scan(&allowed))
	for _, s := range states {
		require.Contains(t, allowed, "'"+s+"'")
	}
	require.Equal(t, len(states), strings.Count(allowed, "'::text"), "a record state River does not have: %s", allowed)

	// One sleep and one noop task per state, interleaved.
	var ids []int64
	for range states {
		for _, kind := range []string{"sleep", "noop"} {
			args := json.RawMessage(nil)
			if kind == "sleep" {
				args = sleepArgs(1, 0)
			}
			created, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: kind, Args: args})
			require.NoError(t, err)
			ids = append(ids, created.ID)
		}
	}
	for i, state := range states {
		for _, id := range ids[2*i : 2*i+2] {
			_, err := bundle.pool.Exec(ctx, `UPDATE river_job SET state = $2::river_job_state,
				attempt = CASE WHEN $2 = 'running' THEN 1 ELSE attempt END,
				attempted_at = CASE WHEN $2 = 'running' THEN now() END,
				finalized_at = CASE WHEN $2 IN ('completed', 'discarded', 'cancelled') THEN now() END
				WHERE id = $1`, id, state)
			require.NoError(t, err)
		}
	}

	list := func(params task.ListParams) ([]int64, []string) {
		var gotIDs []int64
		var gotStates []string
		params.Limit = 3
		for {
			page, next, err := bundle.svc.List(ctx, params)
			require.NoError(t, err)
			for _, tk := range page {
				gotIDs = append(gotIDs, tk.ID)
				gotStates = append(gotStates, tk.State)
			}
			if next == 0 {
				return gotIDs, gotStates
			}
			params.AfterID = next
		}
	}
	wantIDs := slices.Clone(ids)
	slices.Reverse(wantIDs)
	gotIDs, gotStates := list(task.ListParams{})
	require.Equal(t, wantIDs, gotIDs, "every task, newest first")
	for i, id := range gotIDs {
		require.Equal(t, states[slices.Index(ids, id)/2], gotStates[i], "task %d", id)
	}

	var wantSleep []int64
	for i := len(ids) - 2; i >= 0; i -= 2 {
		wantSleep = append(wantSleep, ids[i])
	}
	gotIDs, _ = list(task.ListParams{Kind: "sleep"})
	require.Equal(t, wantSleep, gotIDs, "every sleep task, newest first")
}
