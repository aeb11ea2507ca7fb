package enqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/enqueue"
	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

type testBundle struct {
	pool   *pgxpool.Pool
	svc    *task.Service
	srv    *httptest.Server
	client *enqueue.Client
	nowMu  sync.Mutex
	now    time.Time
}

func (b *testBundle) nowFunc() time.Time {
	b.nowMu.Lock()
	defer b.nowMu.Unlock()
	return b.now
}

func (b *testBundle) advance(d time.Duration) {
	b.nowMu.Lock()
	defer b.nowMu.Unlock()
	b.now = b.now.Add(d)
}

// setup runs the server's side for real (River client, task service, HTTP
// API, kinds and queues recorded) on a fresh database. With work set, River
// runs the tasks.
func setup(t *testing.T, work bool) *testBundle {
	t.Helper()
	ctx := t.Context()
	bundle := &testBundle{pool: pgtest.NewDB(t), now: time.Now()}
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	cfg := &river.Config{
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            pgtest.Logger(t),
		Workers:           workers,
	}
	if work {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}}
	}
	riverClient, err := river.NewClient(riverpgxv5.New(bundle.pool), cfg)
	require.NoError(t, err)
	if work {
		require.NoError(t, riverClient.Start(ctx))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, riverClient.StopAndCancel(stopCtx))
		})
	}
	bundle.svc = task.NewService(bundle.pool, riverClient, kinds, &task.ServiceOpts{NowFunc: bundle.nowFunc})
	require.NoError(t, bundle.svc.Register(ctx))
	bundle.srv = httptest.NewServer(httpapi.NewServer(pgtest.Logger(t), bundle.svc, nil))
	t.Cleanup(bundle.srv.Close)
	bundle.client = enqueue.NewClient(&enqueue.Config{NowFunc: bundle.nowFunc})
	return bundle
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *testBundle) post(t *testing.T, body string) *response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL+"/v1/tasks", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (r *response) taskID(t *testing.T) int64 {
	t.Helper()
	var got task.Task
	require.NoError(t, json.Unmarshal(r.body, &got), string(r.body))
	return got.ID
}

func (b *testBundle) enqueueSQL(t *testing.T, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, call string, args ...any,
) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.QueryRow(t.Context(), "SELECT "+call, args...).Scan(&id))
	return id
}

func (b *testBundle) count(t *testing.T) (tasks, jobRows int) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM river_job)").Scan(&tasks, &jobRows))
	return tasks, jobRows
}

func seconds(s float64) *float64 { return &s }

func TestEnqueue(t *testing.T) {
	t.Parallel()

	t.Run("RollbackLeavesNoTaskNoJob", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		tx, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		id, err := enqueue.Typed(ctx, bundle.client, tx, jobs.SleepArgs{Seconds: seconds(0.01)}, &enqueue.Opts{IdempotencyKey: "k"})
		require.NoError(t, err)
		require.Positive(t, id)
		require.NoError(t, tx.Rollback(ctx))

		tasks, jobRows := bundle.count(t)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})

	t.Run("CommitLeavesBothAndWorkerRunsIt", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, true)
		_, err := bundle.pool.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, task_id bigint NOT NULL)")
		require.NoError(t, err)

		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			var err error
			if id, err = enqueue.Typed(ctx, bundle.client, tx, jobs.SleepArgs{Seconds: seconds(0.01)}, nil); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "INSERT INTO orders VALUES (1, $1)", id)
			return err
		}))
		tasks, jobRows := bundle.count(t)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)

		require.Eventually(t, func() bool {
			got, err := bundle.svc.Get(ctx, id)
			require.NoError(t, err)
			return got.State == "completed"
		}, 60*time.Second, 20*time.Millisecond)
		got, err := bundle.svc.Get(ctx, id)
		require.NoError(t, err)
		var result jobs.SleepResult
		require.NoError(t, json.Unmarshal(got.Result, &result))
		require.Equal(t, 1, result.Attempt)
	})

	t.Run("ValidationErrorLeavesTransactionUsable", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		_, err := bundle.pool.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY)")
		require.NoError(t, err)

		require.NoError(t, pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			_, err := bundle.client.Enqueue(ctx, tx, "sleep", json.RawMessage(`{"seconds": 7200}`), &enqueue.Opts{Priority: 9})
			var validation *enqueue.ValidationError
			require.ErrorAs(t, err, &validation)
			require.Equal(t, map[string]string{
				"args.seconds": "must be between 0 and 3600",
				"priority":     "must be between 1 (highest) and 4",
			}, validation.Fields)
			_, err = tx.Exec(ctx, "INSERT INTO orders VALUES (1)")
			return err
		}))
		tasks, _ := bundle.count(t)
		require.Zero(t, tasks)
	})

	t.Run("DatabaseRefusalFailsTheTransaction", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		// A kind this Go client knows but the server never recorded.
		client := enqueue.NewClient(&enqueue.Config{Kinds: append(jobs.Kinds(jobs.Deps{}), jobs.NewKind[otherArgs](nil))})
		tx, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		_, err = enqueue.Typed(ctx, client, tx, otherArgs{}, nil)
		var validation *enqueue.ValidationError
		require.ErrorAs(t, err, &validation)
		require.Contains(t, validation.Fields["kind"], `unknown kind "other"`)
		_, err = tx.Exec(ctx, "SELECT 1")
		require.Error(t, err, "the transaction is aborted")
		require.NoError(t, tx.Rollback(ctx))
	})
}

type otherArgs struct{}

func (otherArgs) Kind() string    { return "other" }
func (otherArgs) Validate() error { return nil }

// TestSamePaths proves that HTTP, SQL and Go make the same task of the same
// request, and share idempotency keys.
func TestSamePaths(t *testing.T) {
	t.Parallel()

	t.Run("SameTaskObject", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		runAt := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)

		viaHTTP := bundle.post(t, fmt.Sprintf(`{"kind": "sleep", "args": {"seconds": 1.5, "fail_times": 1}, "priority": 2, "max_attempts": 5, "run_at": %q, "callback_url": "https://app.example/done"}`, runAt.Format(time.RFC3339Nano)))
		require.Equal(t, http.StatusAccepted, viaHTTP.status, string(viaHTTP.body))
		viaSQL := bundle.enqueueSQL(t, bundle.pool, `handoff.enqueue('sleep', '{"seconds": 1.5, "fail_times": 1}', priority => 2, max_attempts => 5, run_at => $1, callback_url => 'https://app.example/done')`, runAt)
		var viaGo int64
		require.NoError(t, pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			var err error
			viaGo, err = enqueue.Typed(ctx, bundle.client, tx, jobs.SleepArgs{Seconds: seconds(1.5), FailTimes: 1},
				&enqueue.Opts{Priority: 2, MaxAttempts: 5, RunAt: runAt, CallbackURL: "https://app.example/done"})
			return err
		}))

		objects := make([]map[string]any, 0, 3)
		for _, id := range []int64{viaHTTP.taskID(t), viaSQL, viaGo} {
			got, err := bundle.svc.Get(ctx, id)
			require.NoError(t, err)
			raw, err := json.Marshal(got)
			require.NoError(t, err)
			var object map[string]any
			require.NoError(t, json.Unmarshal(raw, &object))
			require.Equal(t, "scheduled", object["state"])
			delete(object, "id")
			delete(object, "created_at")
			objects = append(objects, object)
		}
		require.Equal(t, objects[0], objects[1], "HTTP and SQL")
		require.Equal(t, objects[0], objects[2], "HTTP and Go")
	})

	t.Run("OneKeyOneTaskOnEveryPath", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)

		first := bundle.post(t, `{"kind": "sleep", "args": {"seconds": 2}, "idempotency_key": "order-7", "callback_url": "https://app.example/done"}`)
		require.Equal(t, http.StatusAccepted, first.status, string(first.body))
		id := first.taskID(t)

		require.Equal(t, id, bundle.enqueueSQL(t, bundle.pool, `handoff.enqueue('sleep', '{"seconds": 2}', idempotency_key => 'order-7', callback_url => 'https://app.example/done')`))
		require.NoError(t, pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			got, err := enqueue.Typed(ctx, bundle.client, tx, jobs.SleepArgs{Seconds: seconds(2)}, &enqueue.Opts{IdempotencyKey: "order-7", CallbackURL: "https://app.example/done"})
			require.Equal(t, id, got)
			return err
		}))
		again := bundle.post(t, `{"kind": "sleep", "args": {"seconds": 2}, "idempotency_key": "order-7", "callback_url": "https://app.example/done"}`)
		require.Equal(t, http.StatusOK, again.status, string(again.body))
		require.Equal(t, id, again.taskID(t))

		// Another request with the key: a conflict naming the task, on
		// every path.
		err := pgx.BeginFunc(ctx, bundle.pool, func(tx pgx.Tx) error {
			_, err := enqueue.Typed(ctx, bundle.client, tx, jobs.SleepArgs{Seconds: seconds(2)}, &enqueue.Opts{IdempotencyKey: "order-7"})
			return err
		})
		var conflict *enqueue.IdempotencyConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, id, conflict.TaskID)
		require.ErrorIs(t, err, enqueue.ErrIdempotencyConflict)

		conflictHTTP := bundle.post(t, `{"kind": "sleep", "args": {"seconds": 3}, "idempotency_key": "order-7"}`)
		require.Equal(t, http.StatusConflict, conflictHTTP.status, string(conflictHTTP.body))
		require.Equal(t, "application/problem+json", conflictHTTP.header.Get("Content-Type"))
		require.Equal(t, fmt.Sprintf("/v1/tasks/%d", id), conflictHTTP.header.Get("Location"))
		var problem struct {
			TaskID int64  `json:"task_id"`
			Detail string `json:"detail"`
		}
		require.NoError(t, json.Unmarshal(conflictHTTP.body, &problem))
		require.Equal(t, id, problem.TaskID)
		require.Contains(t, problem.Detail, fmt.Sprintf("task %d holds the key", id))

		tasks, jobRows := bundle.count(t)
		require.Equal(t, 1, tasks)
		require.Equal(t, 1, jobRows)
	})

	t.Run("ResendAfterRunAtIsTheSameTask", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, false)

		body := fmt.Sprintf(`{"kind": "noop", "run_at": %q, "idempotency_key": "resend"}`, bundle.now.Add(10*time.Second).Format(time.RFC3339Nano))
		first := bundle.post(t, body)
		require.Equal(t, http.StatusAccepted, first.status, string(first.body))
		bundle.advance(time.Minute) // run_at has passed
		again := bundle.post(t, body)
		require.Equal(t, http.StatusOK, again.status, string(again.body))
		require.Equal(t, first.taskID(t), again.taskID(t))
	})
}

// TestHTTPFields: callback_url over HTTP is checked by the same rules, shown
// in the task object; tenant is not a body field (API keys will decide it).
func TestHTTPFields(t *testing.T) {
	t.Parallel()
	bundle := setup(t, false)

	bad := bundle.post(t, `{"kind": "noop", "callback_url": "ftp://app.example/done"}`)
	require.Equal(t, http.StatusUnprocessableEntity, bad.status, string(bad.body))
	require.Equal(t, "application/problem+json", bad.header.Get("Content-Type"))
	var problem struct {
		Errors map[string]string `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(bad.body, &problem))
	require.Contains(t, problem.Errors["callback_url"], "absolute http or https URL")

	tenant := bundle.post(t, `{"kind": "noop", "tenant": "acme"}`)
	require.GreaterOrEqual(t, tenant.status, 400, string(tenant.body))
	require.Less(t, tenant.status, 500, string(tenant.body))
	tasks, jobRows := bundle.count(t)
	require.Zero(t, tasks)
	require.Zero(t, jobRows)

	good := bundle.post(t, `{"kind": "noop", "callback_url": "https://app.example/done?order=7"}`)
	require.Equal(t, http.StatusAccepted, good.status, string(good.body))
	var object map[string]any
	require.NoError(t, json.Unmarshal(good.body, &object))
	require.Equal(t, "https://app.example/done?order=7", object["callback_url"])
	var stored string
	require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT tenant FROM tasks WHERE id = $1", good.taskID(t)).Scan(&stored))
	require.Equal(t, "default", stored)
}
