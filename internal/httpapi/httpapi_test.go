package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

type testBundle struct {
	pool *pgxpool.Pool
	srv  *httptest.Server
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := pgtest.NewDB(t)
	kinds := jobs.Kinds(jobs.Deps{Progress: live.NewProgressWriter(pool)})
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	// No queues: the client only inserts, so tasks stay as created.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	require.NoError(t, err)
	svc := task.NewService(pool, client, kinds, nil)
	srv := httptest.NewServer(httpapi.NewServer(pgtest.Logger(t), svc, nil))
	t.Cleanup(srv.Close)
	return &testBundle{pool: pool, srv: srv}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *testBundle) do(t *testing.T, method, path, body string, header ...string) *response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func decodeTask(t *testing.T, r *response) task.Task {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"), string(r.body))
	var got task.Task
	require.NoError(t, json.Unmarshal(r.body, &got))
	return got
}

type problemBody struct {
	Type   string            `json:"type"`
	Title  string            `json:"title"`
	Status int               `json:"status"`
	Detail string            `json:"detail"`
	Errors map[string]string `json:"errors"`
}

func requireProblem(t *testing.T, r *response, status int, detailContains string) problemBody {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	var p problemBody
	require.NoError(t, json.Unmarshal(r.body, &p))
	require.Equal(t, status, p.Status)
	require.Equal(t, http.StatusText(status), p.Title)
	require.Equal(t, "about:blank", p.Type)
	require.Contains(t, p.Detail, detailContains)
	return p
}

func countRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM river_job)").Scan(&n))
	return n
}

func TestTaskCreate(t *testing.T) {
	t.Parallel()

	t.Run("Accepted", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		r := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "sleep", "args": {"seconds": 2}, "priority": 2, "max_attempts": 5}`)
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		got := decodeTask(t, r)
		require.Equal(t, fmt.Sprintf("/v1/tasks/%d", got.ID), r.header.Get("Location"))
		require.Equal(t, "sleep", got.Kind)
		require.Equal(t, "available", got.State)
		require.JSONEq(t, `{"seconds": 2}`, string(got.Args))
		require.Equal(t, 5, got.MaxAttempts)

		job := rivertest.RequireInserted(t.Context(), t, riverpgxv5.New(bundle.pool), jobs.SleepArgs{}, &rivertest.RequireInsertedOpts{Priority: 2, MaxAttempts: 5})
		require.Equal(t, got.ID, job.ID)

		// Every field of the contract's task object is present.
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(r.body, &fields))
		for _, name := range []string{"id", "kind", "state", "args", "queue", "priority", "attempt", "max_attempts", "errors", "result", "progress", "created_at", "scheduled_at", "started_at", "finished_at"} {
			require.Contains(t, fields, name)
		}
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		first := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop"}`, "Idempotency-Key", "order-42")
		require.Equal(t, http.StatusAccepted, first.status)
		again := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "idempotency_key": "order-42"}`)
		require.Equal(t, http.StatusOK, again.status, string(again.body))
		require.Equal(t, decodeTask(t, first).ID, decodeTask(t, again).ID)
		require.Equal(t, first.header.Get("Location"), again.header.Get("Location"))

		other := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "priority": 3}`, "Idempotency-Key", "order-42")
		requireProblem(t, other, http.StatusConflict, "idempotency key was already used with a different request")

		mismatch := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "idempotency_key": "a"}`, "Idempotency-Key", "b")
		requireProblem(t, mismatch, http.StatusUnprocessableEntity, "differ")
		require.Equal(t, 2, countRows(t, bundle.pool), "one task and its job")
	})

	t.Run("BadInputWritesNothing", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		tests := []struct {
			name   string
			body   string
			status int
			detail string
			fields map[string]string
		}{
			{"MalformedJSON", `{"kind": "noop"`, http.StatusBadRequest, "malformed JSON", nil},
			{"SyntaxError", `{"kind": noop}`, http.StatusBadRequest, "malformed JSON at byte", nil},
			{"EmptyBody", ``, http.StatusBadRequest, "the body is empty", nil},
			{"NotAnObject", `[1, 2]`, http.StatusBadRequest, "the body must be an object, not an array: send a JSON object", nil},
			{"TwoObjects", `{"kind": "noop"} {"kind": "noop"}`, http.StatusBadRequest, "send exactly one JSON value", nil},
			{"UnknownKind", `{"kind": "email"}`, http.StatusUnprocessableEntity, `unknown kind "email"`, nil},
			{"MissingKind", `{"args": {}}`, http.StatusUnprocessableEntity, "kind: is required", nil},
			{"BadArgs", `{"kind": "sleep", "args": {"seconds": 7200}}`, http.StatusUnprocessableEntity, "args.seconds: must be between 0 and 3600", map[string]string{"args.seconds": "must be between 0 and 3600"}},
			{"ArgsWrongType", `{"kind": "sleep", "args": {"seconds": "long"}}`, http.StatusUnprocessableEntity, "args.seconds: must be a number, not a string", map[string]string{"args.seconds": "must be a number, not a string"}},
			{"UnknownField", `{"kind": "noop", "prio": 1}`, http.StatusUnprocessableEntity, "prio: unknown field", map[string]string{"prio": "unknown field"}},
			{"WrongType", `{"kind": "noop", "priority": "high"}`, http.StatusUnprocessableEntity, "priority: must be an integer, not a string", map[string]string{"priority": "must be an integer, not a string"}},
			{"BadPriority", `{"kind": "noop", "priority": 9}`, http.StatusUnprocessableEntity, "priority: must be between 1 (highest) and 4", nil},
			{"BadRunAt", `{"kind": "noop", "run_at": "tomorrow"}`, http.StatusUnprocessableEntity, "run_at: must be an RFC 3339 time", nil},
			{"UnknownQueue", `{"kind": "noop", "queue": "gpu"}`, http.StatusUnprocessableEntity, `unknown queue "gpu"`, nil},
			{"RunAtNotAString", `{"kind": "noop", "run_at": 123}`, http.StatusUnprocessableEntity, "run_at: must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z, not a number", nil},
			{"NULInKey", `{"kind": "noop", "idempotency_key": "a\u0000b"}`, http.StatusUnprocessableEntity, "idempotency_key: must be valid UTF-8", nil},
			{"OversizedBody", `{"kind": "sleep", "args": {"seconds": 1, "pad": "` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}}`, http.StatusRequestEntityTooLarge, "larger than 1 MiB", nil},
		}
		// t.Run returns once its parallel subtests are done.
		t.Run("Cases", func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					p := requireProblem(t, bundle.do(t, http.MethodPost, "/v1/tasks", tt.body), tt.status, tt.detail)
					if tt.fields != nil {
						require.Equal(t, tt.fields, p.Errors)
					}
				})
			}
		})
		require.Zero(t, countRows(t, bundle.pool), "a rejected request writes nothing")
	})
}

func TestTaskReadAndControl(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	var ids []int64
	for range 3 {
		r := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop"}`)
		require.Equal(t, http.StatusAccepted, r.status)
		ids = append(ids, decodeTask(t, r).ID)
	}

	t.Run("Get", func(t *testing.T) {
		t.Parallel()
		r := bundle.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d", ids[0]), "")
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, ids[0], decodeTask(t, r).ID)

		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks/999999", ""), http.StatusNotFound, "no task has this id")
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks/abc", ""), http.StatusBadRequest, `task id "abc" is not valid`)
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks/-4", ""), http.StatusBadRequest, "positive integers")
	})

	t.Run("ListPages", func(t *testing.T) {
		t.Parallel()
		var seen []int64
		path := "/v1/tasks?limit=2"
		for range 3 {
			r := bundle.do(t, http.MethodGet, path, "")
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var page struct {
				Tasks []task.Task `json:"tasks"`
				Next  *string     `json:"next"`
			}
			require.NoError(t, json.Unmarshal(r.body, &page))
			for _, tk := range page.Tasks {
				seen = append(seen, tk.ID)
			}
			if page.Next == nil {
				break
			}
			path = "/v1/tasks?limit=2&after=" + *page.Next
		}
		require.Equal(t, []int64{ids[2], ids[1], ids[0]}, seen)

		r := bundle.do(t, http.MethodGet, "/v1/tasks?state=completed&kind=noop", "")
		require.Equal(t, http.StatusOK, r.status)
		require.JSONEq(t, `{"tasks": [], "next": null}`, string(r.body))
	})

	t.Run("ListBadQuery", func(t *testing.T) {
		t.Parallel()
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?after=not-a-cursor", ""), http.StatusBadRequest, "after is not a valid cursor")
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?after=dDA", ""), http.StatusBadRequest, "after is not a valid cursor")
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?state=done", ""), http.StatusBadRequest, `query parameter state: "done" is not a task state`)
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?limit=0", ""), http.StatusBadRequest, "limit must be an integer from 1 to 100")
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?kind=%ff", ""), http.StatusBadRequest, "kind must be valid UTF-8")
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?kind=a%00b", ""), http.StatusBadRequest, "kind must be valid UTF-8")
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks?limit=x", ""), http.StatusBadRequest, "limit must be an integer")
	})

	t.Run("CancelThenRetry", func(t *testing.T) {
		t.Parallel()
		path := fmt.Sprintf("/v1/tasks/%d", ids[1])
		r := bundle.do(t, http.MethodPost, path+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, "cancelled", decodeTask(t, r).State)

		r = bundle.do(t, http.MethodPost, path+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, "available", decodeTask(t, r).State)

		requireProblem(t, bundle.do(t, http.MethodPost, "/v1/tasks/999999/cancel", ""), http.StatusNotFound, "no task has this id")
		requireProblem(t, bundle.do(t, http.MethodPost, "/v1/tasks/x/retry", ""), http.StatusBadRequest, "not valid")
	})

	t.Run("UnknownRoute", func(t *testing.T) {
		t.Parallel()
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/nothing", ""), http.StatusNotFound, "no such endpoint")
		requireProblem(t, bundle.do(t, http.MethodGet, "/nothing", ""), http.StatusNotFound, "no such endpoint")
		r := bundle.do(t, http.MethodDelete, fmt.Sprintf("/v1/tasks/%d", ids[0]), "")
		requireProblem(t, r, http.StatusMethodNotAllowed, "use GET")
		require.Equal(t, "GET, HEAD", r.header.Get("Allow"))
		requireProblem(t, bundle.do(t, http.MethodGet, "/v1/tasks/1/retry", ""), http.StatusMethodNotAllowed, "use POST")
	})
}

func TestProbes(t *testing.T) {
	t.Parallel()

	var ready error
	srv := httptest.NewServer(httpapi.NewServer(pgtest.Logger(t), nil, &httpapi.ServerOpts{
		ReadyFunc: func(context.Context) error { return ready },
	}))
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	status, body := get("/healthz")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status": "ok"}`, body)
	status, body = get("/readyz")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status": "ready"}`, body)

	ready = &httpapi.NotReadyError{Reason: "schema at version 3, binary needs 9", Err: errors.New("details")}
	status, body = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body, "schema at version 3, binary needs 9")

	// Other causes may name hosts and users: they stay in the log.
	ready = errors.New("dial tcp db.internal:5432 as user admin: refused")
	status, body = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.NotContains(t, body, "db.internal")
}

func TestRequestTimeoutIs503(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	// Hold a lock the insert needs, so that the request outlives its timeout.
	conn, err := bundle.pool.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(t.Context())) }()
	_, err = tx.Exec(t.Context(), "LOCK TABLE task_records IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	kinds := jobs.Kinds(jobs.Deps{})
	client, err := river.NewClient(riverpgxv5.New(bundle.pool), &river.Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewServer(pgtest.Logger(t), task.NewService(bundle.pool, client, kinds, nil), &httpapi.ServerOpts{RequestTimeout: 200 * time.Millisecond}))
	t.Cleanup(srv.Close)

	// The lock is held until the test ends: the 503 itself shows that the
	// request timeout cut the wait. Were it not cut, the client's own
	// timeout fails this test instead of hanging the package.
	srv.Client().Timeout = 30 * time.Second
	b := &testBundle{pool: bundle.pool, srv: srv}
	r := b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop"}`)
	requireProblem(t, r, http.StatusServiceUnavailable, "retry shortly")
	require.Equal(t, "1", r.header.Get("Retry-After"))
}

// TestKeyHeldByOpenTransaction: a create whose idempotency key an app's SQL
// enqueue holds, uncommitted, is 409 with Retry-After and writes nothing;
// once the holder rolls back, the same request creates its task.
// TestDeadlockIs503: an insert that Postgres picks as a deadlock's victim
// (here with a session that locks task_records, then river_job, as DDL of
// a migration may) was rolled back and may be sent again: 503 with
// Retry-After, not a 500. The rolling-deploy chaos scenario showed the
// old release answering 500 to deadlocks with the migrations.
func TestDeadlockIs503(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t)
	before := countRows(t, bundle.pool)
	locker, err := bundle.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = locker.Rollback(context.WithoutCancel(ctx)) })
	_, err = locker.Exec(ctx, "LOCK TABLE task_records IN EXCLUSIVE MODE")
	require.NoError(t, err)

	type answered struct {
		status     int
		retryAfter string
		err        error
	}
	answer := make(chan answered, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, bundle.srv.URL+"/v1/tasks", strings.NewReader(`{"kind": "noop"}`))
		if err != nil {
			answer <- answered{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answer <- answered{err: err}
			return
		}
		_ = resp.Body.Close()
		answer <- answered{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	}()
	// The insert holds river_job and waits for task_records; the locker
	// then asks for river_job: a cycle, and the insert waited first.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%river_job%'`).Scan(&n))
		return n == 1
	}, 30*time.Second, 5*time.Millisecond)
	_, err = locker.Exec(ctx, "LOCK TABLE river_job IN EXCLUSIVE MODE")
	require.NoError(t, err, "the insert, not the locker, was the deadlock's victim")
	r := <-answer
	require.NoError(t, r.err)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "1", r.retryAfter)
	require.NoError(t, locker.Rollback(ctx))
	require.Equal(t, before, countRows(t, bundle.pool), "nothing written")
}

func TestKeyHeldByOpenTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t)
	_, err := bundle.pool.Exec(ctx, `INSERT INTO handoff.kinds (kind, shape) VALUES ('noop', '{"fields": {}}') ON CONFLICT DO NOTHING;
		INSERT INTO handoff.queues (name) VALUES ('default') ON CONFLICT DO NOTHING`)
	require.NoError(t, err)
	holder, err := bundle.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `SELECT handoff.enqueue('noop', '{}', idempotency_key => 'held')`)
	require.NoError(t, err)

	before := countRows(t, bundle.pool)
	r := bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "idempotency_key": "held"}`)
	requireProblem(t, r, http.StatusConflict, "still in progress in another transaction")
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Equal(t, before, countRows(t, bundle.pool), "nothing written")

	require.NoError(t, holder.Rollback(ctx))
	r = bundle.do(t, http.MethodPost, "/v1/tasks", `{"kind": "noop", "idempotency_key": "held"}`)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
}
