package riverseam_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/riverseam/seamtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// seamArgs is the conformance suite's job: each field picks a River
// transition its worker leads to. Every attempt that succeeds records its
// own number as output, so a result names the attempt that produced it.
type seamArgs struct {
	// FailTimes is how many attempts fail before one succeeds.
	FailTimes int `json:"fail_times,omitempty"`
	// SnoozeOnce snoozes the first time the job runs.
	SnoozeOnce bool `json:"snooze_once,omitempty"`
	// Block runs until the job's context ends (cancel, shutdown).
	Block bool `json:"block,omitempty"`
}

func (seamArgs) Kind() string { return "test_seam" }

type seamWorker struct {
	river.WorkerDefaults[seamArgs]
}

func (w *seamWorker) Work(ctx context.Context, job *river.Job[seamArgs]) error {
	switch {
	case job.Args.Block:
		<-ctx.Done()
		return ctx.Err()
	case job.Args.SnoozeOnce && snoozes(job.Metadata) == 0:
		return river.JobSnooze(time.Millisecond)
	case job.Attempt <= job.Args.FailTimes:
		return errFailed
	}
	return river.RecordOutput(ctx, gateResult{Attempt: job.Attempt})
}

type failedError struct{}

func (failedError) Error() string { return "failed on purpose" }

var errFailed = failedError{}

func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	return m.Snoozes
}

type seamBundle struct {
	pool       *pgxpool.Pool
	client     *river.Client[pgx.Tx]
	middleware *riverseam.Middleware
	svc        *task.Service
}

type seamOpts struct {
	idleBelow float64 // the middleware's; 0 leaves completion to River's batches
	periodic  []*river.PeriodicJob
	noStart   bool
}

func newSeamClient(t *testing.T, pool *pgxpool.Pool, m *riverseam.Middleware, periodic []*river.PeriodicJob) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	river.AddWorker(workers, &seamWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Middleware:        []rivertype.Middleware{m},
		PeriodicJobs:      periodic,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:           workers,
	})
	require.NoError(t, err)
	return client
}

func setupSeam(t *testing.T, opts seamOpts) *seamBundle {
	t.Helper()
	pool := pgtest.NewDB(t)
	m := riverseam.NewMiddleware(pool, pgtest.Logger(t), opts.idleBelow)
	client := newSeamClient(t, pool, m, opts.periodic)
	if !opts.noStart {
		require.NoError(t, client.Start(t.Context()))
		t.Cleanup(func() { stop(t, client) })
	}
	return &seamBundle{pool: pool, client: client, middleware: m, svc: task.NewService(pool, client, jobs.Kinds(jobs.Deps{}), nil)}
}

// waitJob waits until the job satisfies cond and returns it.
func waitJob(t *testing.T, pool *pgxpool.Pool, id int64, what string, cond func(job *rivertype.JobRow) bool) *rivertype.JobRow {
	t.Helper()
	exec := riverpgxv5.New(pool).GetExecutor()
	var job *rivertype.JobRow
	require.Eventually(t, func() bool {
		var err error
		job, err = exec.JobGetByID(t.Context(), &riverdriver.JobGetByIDParams{ID: id})
		require.NoError(t, err)
		return cond(job)
	}, 30*time.Second, 5*time.Millisecond, "job %d: %s", id, what)
	return job
}

func inState(state rivertype.JobState) func(*rivertype.JobRow) bool {
	return func(job *rivertype.JobRow) bool { return job.State == state }
}

// requireOwnResult checks that a completed job's result names its attempt.
func requireOwnResult(t *testing.T, pool *pgxpool.Pool, id int64) {
	t.Helper()
	var state string
	var attempt int
	var result []byte
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT state, attempt, result FROM tasks WHERE id = $1", id).Scan(&state, &attempt, &result))
	require.Equal(t, "completed", state)
	var got gateResult
	require.NoError(t, json.Unmarshal(result, &got))
	require.Equal(t, attempt, got.Attempt, "task %d: result of attempt %d shown for attempt %d", id, got.Attempt, attempt)
}

var future = time.Now().Add(time.Hour)

// TestConformance drives every River transition of the pinned version
// (v0.51.2) through the river_job <-> tasks seam and checks after each that
// the tasks row agrees with River's (seamtest.RequireNoDrift). It is the
// first thing a River upgrade runs (CHANGELOG.md, "River upgrade
// checklist").
func TestConformance(t *testing.T) {
	t.Parallel()

	t.Run("Insert", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{})
		res, err := bundle.client.Insert(t.Context(), seamArgs{}, &river.InsertOpts{ScheduledAt: future, Priority: 3, MaxAttempts: 7})
		require.NoError(t, err)
		job := seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)[0]
		require.Equal(t, rivertype.JobStateScheduled, job.State)
	})

	t.Run("InsertWithTaskMetadata", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{noStart: true})
		// What Service.Create and migration 00012 put in a job's metadata;
		// the BEFORE INSERT trigger adds the request hash.
		meta := fmt.Sprintf(`{%q: "acme", %q: "k-1", %q: "https://app.example/cb", %q: %q}`,
			riverseam.MetadataKeyTenant, riverseam.MetadataKeyIdempotencyKey,
			riverseam.MetadataKeyCallbackURL, riverseam.MetadataKeyRunAt, future.UTC().Format(time.RFC3339Nano))
		res, err := bundle.client.Insert(t.Context(), seamArgs{}, &river.InsertOpts{ScheduledAt: future, Metadata: []byte(meta)})
		require.NoError(t, err)
		want, err := riverseam.TaskRow(res.Job)
		require.NoError(t, err)
		require.Equal(t, "acme", want.Tenant)
		require.Len(t, want.RequestHash, 32, "the job River returns carries the hash")
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
	})

	t.Run("SQLEnqueueAndCallback", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{idleBelow: riverseam.DefaultIdleBelow})
		_, err := bundle.pool.Exec(ctx, `INSERT INTO handoff.kinds (kind, shape) VALUES ('test_seam', '{"fields": {}}'); INSERT INTO handoff.queues (name) VALUES ('default')`)
		require.NoError(t, err)
		var scheduled, id int64
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('test_seam', '{}', run_at => $1, idempotency_key => 'k', tenant => 'acme')`, future).Scan(&scheduled))
		seamtest.RequireNoDrift(t, bundle.pool, scheduled)
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('test_seam', '{}', callback_url => 'https://app.example/cb')`).Scan(&id))
		waitJob(t, bundle.pool, id, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)
		seamtest.RequireNoDrift(t, bundle.pool, id)
		var callback int64
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'http' AND (metadata ->> 'handoff_callback_of')::bigint = $1`, id).Scan(&callback))
		seamtest.RequireNoDrift(t, bundle.pool, callback)
	})

	t.Run("InsertMany", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{})
		results, err := bundle.client.InsertMany(t.Context(), []river.InsertManyParams{
			{Args: seamArgs{}, InsertOpts: &river.InsertOpts{ScheduledAt: future}},
			{Args: seamArgs{FailTimes: 1}, InsertOpts: &river.InsertOpts{ScheduledAt: future, Priority: 2}},
			{Args: seamArgs{}},
		})
		require.NoError(t, err)
		for _, res := range results {
			seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		}
		waitJob(t, bundle.pool, results[2].Job.ID, "completed", inState(rivertype.JobStateCompleted))
		seamtest.RequireNoDrift(t, bundle.pool, results[2].Job.ID)
	})

	t.Run("InsertManyFast", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{})
		n, err := bundle.client.InsertManyFast(ctx, []river.InsertManyParams{
			{Args: seamArgs{}, InsertOpts: &river.InsertOpts{ScheduledAt: future}},
			{Args: seamArgs{}, InsertOpts: &river.InsertOpts{ScheduledAt: future, Queue: "elsewhere"}},
		})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		rows, err := bundle.pool.Query(ctx, "SELECT id FROM river_job")
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Len(t, ids, 2)
		seamtest.RequireNoDrift(t, bundle.pool, ids...)
	})

	t.Run("Fetch", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{})
		res, err := bundle.client.Insert(t.Context(), seamArgs{Block: true}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "running", inState(rivertype.JobStateRunning))
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
	})

	t.Run("CompletionBatched", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{idleBelow: 0})
		res, err := bundle.client.Insert(t.Context(), seamArgs{}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)
		require.Zero(t, bundle.middleware.Inline(), "River's batch completed it")
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		requireOwnResult(t, bundle.pool, res.Job.ID)
	})

	t.Run("CompletionInline", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{idleBelow: riverseam.DefaultIdleBelow})
		res, err := bundle.client.Insert(t.Context(), seamArgs{}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "completed", inState(rivertype.JobStateCompleted))
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		// River's own completion of the job follows; it changes nothing.
		stop(t, bundle.client)
		require.Equal(t, int64(1), bundle.middleware.Inline())
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		requireOwnResult(t, bundle.pool, res.Job.ID)
	})

	t.Run("ErrorAndRetry", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{idleBelow: riverseam.DefaultIdleBelow})
		res, err := bundle.client.Insert(t.Context(), seamArgs{FailTimes: 1}, &river.InsertOpts{MaxAttempts: 3})
		require.NoError(t, err)
		job := waitJob(t, bundle.pool, res.Job.ID, "failed once", func(job *rivertype.JobRow) bool { return len(job.Errors) == 1 })
		require.Equal(t, 1, job.Errors[0].Attempt)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		waitJob(t, bundle.pool, res.Job.ID, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)
		job = seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)[0]
		require.Equal(t, 2, job.Attempt)
		requireOwnResult(t, bundle.pool, res.Job.ID)
	})

	t.Run("Discard", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{})
		res, err := bundle.client.Insert(t.Context(), seamArgs{FailTimes: 5}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "discarded", inState(rivertype.JobStateDiscarded))
		stop(t, bundle.client)
		job := seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)[0]
		require.Len(t, job.Errors, 1)
	})

	t.Run("Snooze", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{idleBelow: riverseam.DefaultIdleBelow})
		res, err := bundle.client.Insert(t.Context(), seamArgs{SnoozeOnce: true}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)
		job := seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)[0]
		require.Equal(t, 1, snoozes(job.Metadata))
		require.Equal(t, 1, job.Attempt, "a snooze gives its attempt back")
		requireOwnResult(t, bundle.pool, res.Job.ID)
	})

	t.Run("CancelByAPI", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{})
		res, err := bundle.client.Insert(ctx, seamArgs{Block: true}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "running", inState(rivertype.JobStateRunning))
		_, err = bundle.svc.Cancel(ctx, res.Job.ID)
		require.NoError(t, err)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		waitJob(t, bundle.pool, res.Job.ID, "cancelled", inState(rivertype.JobStateCancelled))
		stop(t, bundle.client)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
	})

	t.Run("CancelByJobCancel", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{})
		scheduled, err := bundle.client.Insert(ctx, seamArgs{}, &river.InsertOpts{ScheduledAt: future})
		require.NoError(t, err)
		running, err := bundle.client.Insert(ctx, seamArgs{Block: true}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, running.Job.ID, "running", inState(rivertype.JobStateRunning))

		_, err = bundle.client.JobCancel(ctx, scheduled.Job.ID)
		require.NoError(t, err)
		_, err = bundle.client.JobCancel(ctx, running.Job.ID)
		require.NoError(t, err)
		waitJob(t, bundle.pool, running.Job.ID, "cancelled", inState(rivertype.JobStateCancelled))
		stop(t, bundle.client)
		for _, job := range seamtest.RequireNoDrift(t, bundle.pool, scheduled.Job.ID, running.Job.ID) {
			require.Equal(t, rivertype.JobStateCancelled, job.State)
		}
	})

	t.Run("JobRetry", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{idleBelow: riverseam.DefaultIdleBelow})
		res, err := bundle.client.Insert(ctx, seamArgs{}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "completed", inState(rivertype.JobStateCompleted))

		// What River UI calls: at once, no wait.
		_, err = bundle.client.JobRetry(ctx, res.Job.ID)
		require.NoError(t, err)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		waitJob(t, bundle.pool, res.Job.ID, "attempt 2 completed", func(job *rivertype.JobRow) bool {
			return job.Attempt == 2 && job.State == rivertype.JobStateCompleted
		})
		stop(t, bundle.client)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		requireOwnResult(t, bundle.pool, res.Job.ID)
	})

	t.Run("JobDelete", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{})
		scheduled, err := bundle.client.Insert(ctx, seamArgs{}, &river.InsertOpts{ScheduledAt: future})
		require.NoError(t, err)
		finished, err := bundle.client.Insert(ctx, seamArgs{}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, finished.Job.ID, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)
		seamtest.RequireNoDrift(t, bundle.pool, scheduled.Job.ID, finished.Job.ID)

		_, err = bundle.client.JobDelete(ctx, scheduled.Job.ID)
		require.NoError(t, err)
		_, err = bundle.client.JobDelete(ctx, finished.Job.ID)
		require.NoError(t, err)
		got := seamtest.RequireDeleted(t, bundle.pool, scheduled.Job.ID, "cancelled")
		require.Contains(t, string(got.Errors), "job deleted before it finished")
		got = seamtest.RequireDeleted(t, bundle.pool, finished.Job.ID, "completed")
		require.JSONEq(t, `{"attempt": 1}`, string(got.Result), "a finished task keeps its result")
	})

	t.Run("JobDeleteMany", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{noStart: true})
		results, err := bundle.client.InsertMany(ctx, []river.InsertManyParams{
			{Args: seamArgs{}}, {Args: seamArgs{}, InsertOpts: &river.InsertOpts{ScheduledAt: future}},
		})
		require.NoError(t, err)
		ids := []int64{results[0].Job.ID, results[1].Job.ID}
		seamtest.RequireNoDrift(t, bundle.pool, ids...)
		deleted, err := bundle.client.JobDeleteMany(ctx, river.NewJobDeleteManyParams().IDs(ids...))
		require.NoError(t, err)
		require.Len(t, deleted.Jobs, 2)
		for _, id := range ids {
			seamtest.RequireDeleted(t, bundle.pool, id, "cancelled")
		}
	})

	t.Run("RescueAfterSIGKILL", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		pool := pgtest.NewDB(t)
		m := riverseam.NewMiddleware(pool, pgtest.Logger(t), riverseam.DefaultIdleBelow)
		// Not started: it inserts, and later rescues.
		inserter := newSeamClient(t, pool, m, nil)
		res, err := inserter.Insert(ctx, seamArgs{}, nil)
		require.NoError(t, err)
		id := res.Job.ID

		// A real process of its own works attempt 1 and is killed with
		// SIGKILL while it runs.
		cmd := exec.Command(os.Args[0]) //nolint:gosec,noctx // the test binary itself (TestMain), stopped by SIGKILL
		cmd.Env = append(os.Environ(), "HANDOFF_SEAM_WORKER_DB="+dbURL(t, pool))
		cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitJob(t, pool, id, "running in the worker process", inState(rivertype.JobStateRunning))
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		seamtest.RequireNoDrift(t, pool, id)

		// River's rescuer finds the job stuck and retries it; a client here
		// works attempt 2. The rescuer looks when its client starts (then
		// every 30 s), so it starts once the job is past RescueStuckJobsAfter.
		const rescueAfter = time.Second
		require.Eventually(t, func() bool {
			var stuck bool
			require.NoError(t, pool.QueryRow(ctx, "SELECT attempted_at < now() - $1::interval FROM river_job WHERE id = $2",
				(rescueAfter+200*time.Millisecond).String(), id).Scan(&stuck))
			return stuck
		}, 10*time.Second, 20*time.Millisecond)
		workers := river.NewWorkers()
		river.AddWorker(workers, &seamWorker{})
		rescuer, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			FetchCooldown:        5 * time.Millisecond,
			FetchPollInterval:    50 * time.Millisecond,
			JobTimeout:           rescueAfter,
			Logger:               pgtest.Logger(t),
			Middleware:           []rivertype.Middleware{m},
			Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
			RescueStuckJobsAfter: rescueAfter,
			Workers:              workers,
		})
		require.NoError(t, err)
		require.NoError(t, rescuer.Start(ctx))
		t.Cleanup(func() { stop(t, rescuer) })

		job := waitJob(t, pool, id, "attempt 2 completed", func(job *rivertype.JobRow) bool {
			return job.Attempt == 2 && job.State == rivertype.JobStateCompleted
		})
		require.Len(t, job.Errors, 1, "the rescue's error")
		require.Equal(t, 1, job.Errors[0].Attempt)
		stop(t, rescuer)
		seamtest.RequireNoDrift(t, pool, id)
		requireOwnResult(t, pool, id)
	})

	t.Run("PeriodicJob", func(t *testing.T) {
		t.Parallel()
		bundle := setupSeam(t, seamOpts{
			idleBelow: riverseam.DefaultIdleBelow,
			periodic: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
				func() (river.JobArgs, *river.InsertOpts) { return seamArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true})},
		})
		var id int64
		require.Eventually(t, func() bool {
			err := bundle.pool.QueryRow(t.Context(), "SELECT id FROM tasks WHERE kind = 'test_seam'").Scan(&id)
			return err == nil
		}, 30*time.Second, 10*time.Millisecond, "River's periodic enqueuer inserts the job, and so its task")
		waitJob(t, bundle.pool, id, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)
		seamtest.RequireNoDrift(t, bundle.pool, id)
		requireOwnResult(t, bundle.pool, id)
	})

	t.Run("JobUpdateOutput", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{idleBelow: riverseam.DefaultIdleBelow})
		res, err := bundle.client.Insert(ctx, seamArgs{}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "completed", inState(rivertype.JobStateCompleted))
		stop(t, bundle.client)

		_, err = bundle.client.JobUpdate(ctx, res.Job.ID, &river.JobUpdateParams{Output: map[string]any{"attempt": 1, "amended": true}})
		require.NoError(t, err)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)
		got, err := bundle.svc.Get(ctx, res.Job.ID)
		require.NoError(t, err)
		require.JSONEq(t, `{"attempt": 1, "amended": true}`, string(got.Result))
	})

	t.Run("InterruptedAtShutdown", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{})
		res, err := bundle.client.Insert(ctx, seamArgs{Block: true}, nil)
		require.NoError(t, err)
		waitJob(t, bundle.pool, res.Job.ID, "running", inState(rivertype.JobStateRunning))

		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		require.NoError(t, bundle.client.StopAndCancel(stopCtx))
		job := seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)[0]
		require.Equal(t, rivertype.JobStateAvailable, job.State, "put back for another process")
		require.Zero(t, job.Attempt, "without using up an attempt")
	})

	t.Run("CallerSearchPath", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setupSeam(t, seamOpts{noStart: true})
		res, err := bundle.client.Insert(ctx, seamArgs{}, &river.InsertOpts{ScheduledAt: future})
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `CREATE SCHEMA app; CREATE TABLE app.tasks (LIKE public.tasks INCLUDING ALL)`)
		require.NoError(t, err)

		// An app whose sessions find its own tasks table first cancels a
		// job, then deletes another, through River.
		config := bundle.pool.Config().Copy()
		config.ConnConfig.RuntimeParams["search_path"] = "app, public"
		appPool, err := pgxpool.NewWithConfig(ctx, config)
		require.NoError(t, err)
		t.Cleanup(appPool.Close)
		appClient, err := river.NewClient(riverpgxv5.New(appPool), &river.Config{Logger: pgtest.Logger(t)})
		require.NoError(t, err)
		_, err = appClient.JobCancel(ctx, res.Job.ID)
		require.NoError(t, err)
		seamtest.RequireNoDrift(t, bundle.pool, res.Job.ID)

		other, err := bundle.client.Insert(ctx, seamArgs{}, &river.InsertOpts{ScheduledAt: future})
		require.NoError(t, err)
		_, err = appClient.JobDelete(ctx, other.Job.ID)
		require.NoError(t, err)
		seamtest.RequireDeleted(t, bundle.pool, other.Job.ID, "cancelled")
		var appRows int
		require.NoError(t, bundle.pool.QueryRow(ctx, "SELECT count(*) FROM app.tasks").Scan(&appRows))
		require.Zero(t, appRows, "the app's own table was not written")
	})
}

// dbURL is the connection string of pool's database.
func dbURL(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	url, err := pgtest.DatabaseURL(pgtest.URL(t), pool.Config().ConnConfig.Database)
	require.NoError(t, err)
	return url
}

// TestMain runs the worker process that RescueAfterSIGKILL kills when
// HANDOFF_SEAM_WORKER_DB is set, and the tests otherwise.
func TestMain(m *testing.M) {
	if url := os.Getenv("HANDOFF_SEAM_WORKER_DB"); url != "" {
		if err := runSeamWorker(url); err != nil {
			fmt.Fprintln(os.Stderr, "seam worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runSeamWorker works jobs on the database at url, each attempt never
// ending, until the process is killed.
func runSeamWorker(url string) error {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, _ *river.Job[seamArgs]) error {
		<-ctx.Done() // until SIGKILL
		return ctx.Err()
	}))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            logger,
		Middleware:        []rivertype.Middleware{riverseam.NewMiddleware(pool, logger, riverseam.DefaultIdleBelow)},
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers,
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	logger.Info("seam worker process started", slog.Int("pid", os.Getpid()))
	select {}
}
