package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/admin"
	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam/seamtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

const (
	opUser     = "ops"
	opPassword = "correct horse battery staple"
)

type operatorBundle struct {
	*testBundle
	client *river.Client[pgx.Tx]
}

// operatorSetup serves the API with operator routes; opts adjusts the
// operator options (credentials are set unless opts clears them). With
// work, a River client works the default queue (so that it exists for
// pause and resume); without, tasks stay as created.
func operatorSetup(t *testing.T, work bool, adjust func(*httpapi.OperatorOpts)) *operatorBundle {
	t.Helper()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	logger := pgtest.Logger(t)
	kinds := jobs.Kinds(jobs.Deps{Logger: logger})
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	cfg := &river.Config{Workers: workers, Logger: logger}
	if work {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}}
		cfg.FetchCooldown, cfg.FetchPollInterval = 10*time.Millisecond, 50*time.Millisecond
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	require.NoError(t, err)
	if work {
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(stopCtx))
		})
	}
	ui, err := admin.NewRiverUI(ctx, client, logger, "/riverui")
	require.NoError(t, err)
	m := metrics.New(pool, logger, &metrics.Opts{Queues: map[string]int{river.QueueDefault: 5}})
	opts := &httpapi.OperatorOpts{
		User: opUser, Password: opPassword,
		RiverUI: ui,
		Queues:  admin.NewQueues(pool, client, []string{river.QueueDefault}),
	}
	if adjust != nil {
		adjust(opts)
	}
	svc := task.NewService(pool, client, kinds, nil)
	srv := httptest.NewServer(httpapi.NewServer(logger, svc, &httpapi.ServerOpts{Metrics: m, Operator: opts}))
	t.Cleanup(srv.Close)
	return &operatorBundle{testBundle: &testBundle{pool: pool, srv: srv}, client: client}
}

// asOperator is the header list of a request with the operator's
// credentials.
func asOperator(extra ...string) []string {
	return append([]string{"Authorization", basicAuth(opUser, opPassword)}, extra...)
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func (b *operatorBundle) createTasks(t *testing.T, n int) []int64 {
	t.Helper()
	ids := make([]int64, 0, n)
	for range n {
		r := b.do(t, http.MethodPost, "/v1/tasks", `{"kind": "sleep", "args": {"seconds": 1}}`)
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		ids = append(ids, decodeTask(t, r).ID)
	}
	return ids
}

func idsBody(ids ...int64) string {
	quoted := make([]string, 0, len(ids))
	for _, id := range ids {
		quoted = append(quoted, fmt.Sprintf("%q", fmt.Sprint(id)))
	}
	return `{"ids": [` + strings.Join(quoted, ",") + `]}`
}

func taskState(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var state string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT state FROM tasks WHERE id = $1", id).Scan(&state))
	return state
}

func TestOperatorAuth(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, false, nil)

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/riverui/"},
		{http.MethodGet, "/riverui/jobs"},
		{http.MethodGet, "/riverui/api/jobs?state=available"},
		{http.MethodPost, "/riverui/api/jobs/cancel"},
		{http.MethodGet, "/v1/queues"},
		{http.MethodPost, "/v1/queues/default/pause"},
		{http.MethodGet, "/metrics"},
	} {
		r := bundle.do(t, c.method, c.path, "")
		requireProblem(t, r, http.StatusUnauthorized, "operator credentials required")
		require.Equal(t, `Basic realm="Handoff operators", charset="UTF-8"`, r.header.Get("WWW-Authenticate"))

		r = bundle.do(t, c.method, c.path, "", "Authorization", basicAuth(opUser, opPassword+"x"))
		requireProblem(t, r, http.StatusUnauthorized, "operator credentials required")
	}

	for _, path := range []string{"/riverui/", "/riverui/jobs", "/riverui/api/jobs?state=available", "/riverui/api/queues", "/v1/queues", "/metrics"} {
		r := bundle.do(t, http.MethodGet, path, "", asOperator()...)
		require.Equal(t, http.StatusOK, r.status, "%s: %s", path, r.body)
	}
	page := bundle.do(t, http.MethodGet, "/riverui/", "", asOperator()...)
	require.Contains(t, page.header.Get("Content-Type"), "text/html")
}

func TestOperatorOff(t *testing.T) {
	t.Parallel()

	t.Run("NoCredentials", func(t *testing.T) {
		t.Parallel()
		// As serve does without credentials: no River UI handler at all.
		bundle := operatorSetup(t, false, func(o *httpapi.OperatorOpts) { o.User, o.Password, o.RiverUI = "", "", nil })
		for _, path := range []string{"/riverui/", "/riverui/api/jobs", "/v1/queues", "/metrics"} {
			r := bundle.do(t, http.MethodGet, path, "", asOperator()...)
			requireProblem(t, r, http.StatusServiceUnavailable, "operator routes are off")
		}
		// The task API is not affected.
		require.Equal(t, http.StatusOK, bundle.do(t, http.MethodGet, "/v1/tasks", "").status)
	})

	t.Run("MetricsPublic", func(t *testing.T) {
		t.Parallel()
		bundle := operatorSetup(t, false, func(o *httpapi.OperatorOpts) { o.User, o.Password, o.MetricsPublic = "", "", true })
		require.Equal(t, http.StatusOK, bundle.do(t, http.MethodGet, "/metrics", "").status)
		requireProblem(t, bundle.do(t, http.MethodGet, "/riverui/", ""), http.StatusServiceUnavailable, "operator routes are off")
	})
}

func TestOperatorCrossOrigin(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, false, nil)
	ids := bundle.createTasks(t, 1)

	// A page on another site posting with the operator's cached
	// credentials, as browsers mark it: refused, whatever the content type.
	for _, headers := range [][]string{
		asOperator("Sec-Fetch-Site", "cross-site", "Content-Type", "text/plain"),
		asOperator("Origin", "https://evil.example"),
	} {
		r := bundle.do(t, http.MethodPost, "/riverui/api/jobs/cancel", idsBody(ids...), headers...)
		requireProblem(t, r, http.StatusForbidden, "cross-origin request refused")
		r = bundle.do(t, http.MethodPost, "/v1/queues/default/pause", "", headers...)
		requireProblem(t, r, http.StatusForbidden, "cross-origin request refused")
	}
	require.Equal(t, "available", taskState(t, bundle.pool, ids[0]))

	// The dashboard's own same-origin request goes through.
	r := bundle.do(t, http.MethodPost, "/riverui/api/jobs/cancel", idsBody(ids...), asOperator("Sec-Fetch-Site", "same-origin")...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "cancelled", taskState(t, bundle.pool, ids[0]))
}

// TestOperatorNotFramed: cross-origin protection lets a framed dashboard's
// clicks through (they are same-origin), so another site could frame River
// UI under the operator's cached credentials and lead them to bulk cancel.
// No operator answer may be framed; none but River UI's static assets may
// be cached (its JSON shows every tenant's args).
func TestOperatorNotFramed(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, false, nil)
	page := bundle.do(t, http.MethodGet, "/riverui/", "", asOperator()...)
	require.Equal(t, http.StatusOK, page.status)
	asset := regexp.MustCompile(`/riverui/assets/[^"']+\.js`).FindString(string(page.body))
	require.NotEmpty(t, asset, "River UI's page names its script")

	for _, c := range []struct {
		path    string
		headers []string
		status  int
	}{
		{"/riverui/", asOperator(), http.StatusOK},
		{"/riverui/jobs", asOperator(), http.StatusOK},
		{"/riverui/api/jobs?state=available", asOperator(), http.StatusOK},
		{"/v1/queues", asOperator(), http.StatusOK},
		{"/metrics", asOperator(), http.StatusOK},
		{asset, asOperator(), http.StatusOK},
		{"/riverui/", nil, http.StatusUnauthorized},
	} {
		r := bundle.do(t, http.MethodGet, c.path, "", c.headers...)
		require.Equal(t, c.status, r.status, "%s: %s", c.path, r.body)
		require.Equal(t, "DENY", r.header.Get("X-Frame-Options"), c.path)
		require.Equal(t, "frame-ancestors 'none'", r.header.Get("Content-Security-Policy"), c.path)
		require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), c.path)
		if c.path == asset {
			require.Empty(t, r.header.Get("Cache-Control"), "a static asset may be cached")
		} else {
			require.Equal(t, "no-store", r.header.Get("Cache-Control"), c.path)
		}
	}
	// The 405s of the operator paths too.
	for _, path := range []string{"/v1/queues", "/v1/queues/default/pause", "/metrics"} {
		method := http.MethodDelete
		r := bundle.do(t, method, path, "", asOperator()...)
		require.Equal(t, http.StatusMethodNotAllowed, r.status, path)
		require.Equal(t, "DENY", r.header.Get("X-Frame-Options"), path)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"), path)
	}
}

func TestOperatorReadOnly(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, false, func(o *httpapi.OperatorOpts) { o.ReadOnly = true })
	ids := bundle.createTasks(t, 1)

	r := bundle.do(t, http.MethodPost, "/riverui/api/jobs/cancel", idsBody(ids...), asOperator()...)
	requireProblem(t, r, http.StatusForbidden, "read-only")
	r = bundle.do(t, http.MethodPost, "/v1/queues/default/pause", "", asOperator()...)
	requireProblem(t, r, http.StatusForbidden, "read-only")
	require.Equal(t, "available", taskState(t, bundle.pool, ids[0]))
	seamtest.RequireNoDrift(t, bundle.pool, ids...)

	// Reading still works.
	r = bundle.do(t, http.MethodGet, fmt.Sprintf("/riverui/api/jobs/%d", ids[0]), "", asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
}

// TestRiverUIActionsKeepTasks drives the calls River UI's dashboard makes
// (cancel, retry, delete) and checks the tasks rows after each.
func TestRiverUIActionsKeepTasks(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, false, nil)
	ids := bundle.createTasks(t, 3)

	r := bundle.do(t, http.MethodPost, "/riverui/api/jobs/cancel", idsBody(ids[0], ids[1]), asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "cancelled", taskState(t, bundle.pool, ids[0]))
	seamtest.RequireNoDrift(t, bundle.pool, ids...)

	r = bundle.do(t, http.MethodPost, "/riverui/api/jobs/retry", idsBody(ids[0]), asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "available", taskState(t, bundle.pool, ids[0]))
	seamtest.RequireNoDrift(t, bundle.pool, ids...)

	// Deleting a job that has not finished cancels its task, with a reason.
	r = bundle.do(t, http.MethodPost, "/riverui/api/jobs/delete", idsBody(ids[2]), asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	got := decodeTask(t, bundle.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d", ids[2]), ""))
	require.Equal(t, "cancelled", got.State)
	require.NotEmpty(t, got.Errors)
	require.Contains(t, got.Errors[len(got.Errors)-1].Error, "job deleted")
	seamtest.RequireNoDrift(t, bundle.pool, ids[0], ids[1])
}

type queuesBody struct {
	Queues []admin.Queue `json:"queues"`
}

func TestQueueControl(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, true, nil)
	ctx := t.Context()

	getQueue := func(name string) admin.Queue {
		t.Helper()
		r := bundle.do(t, http.MethodGet, "/v1/queues", "", asOperator()...)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var body queuesBody
		require.NoError(t, json.Unmarshal(r.body, &body))
		for _, q := range body.Queues {
			if q.Name == name {
				return q
			}
		}
		t.Fatalf("queue %s not listed: %s", name, r.body)
		return admin.Queue{}
	}
	// River records the queue when its producer starts.
	require.Eventually(t, func() bool {
		_, err := bundle.client.QueueGet(ctx, river.QueueDefault)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond)

	r := bundle.do(t, http.MethodPost, "/v1/queues/default/pause", "", asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var paused admin.Queue
	require.NoError(t, json.Unmarshal(r.body, &paused))
	require.True(t, paused.Paused)
	require.NotNil(t, paused.PausedAt)

	// River's producers see the pause through a notification; wait until
	// this one has (a task inserted now stays available).
	require.Eventually(t, func() bool {
		ids := bundle.createTasks(t, 1)
		time.Sleep(200 * time.Millisecond)
		return taskState(t, bundle.pool, ids[0]) == "available"
	}, 30*time.Second, 10*time.Millisecond)
	ids := bundle.createTasks(t, 2)
	q := getQueue(river.QueueDefault)
	require.True(t, q.Paused)
	var available int64
	var oldest float64
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*), extract(epoch FROM now() - min(scheduled_at))::float8 FROM river_job WHERE state = 'available' AND queue = 'default'`).Scan(&available, &oldest))
	require.Equal(t, available, q.Available)
	require.GreaterOrEqual(t, int(q.Available), 2)
	require.Positive(t, q.OldestAvailableAgeSeconds)
	require.LessOrEqual(t, q.OldestAvailableAgeSeconds, oldest)

	r = bundle.do(t, http.MethodPost, "/v1/queues/default/resume", "", asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Eventually(t, func() bool { return taskState(t, bundle.pool, ids[1]) == "completed" }, 30*time.Second, 20*time.Millisecond)
	require.False(t, getQueue(river.QueueDefault).Paused)

	// Known paths with another method: 405 with Allow, as for tasks.
	for path, allow := range map[string]string{"/v1/queues": "GET, HEAD", "/v1/queues/default/pause": "POST", "/v1/queues/default/resume": "POST", "/metrics": "GET, HEAD"} {
		method := http.MethodDelete
		if allow == "POST" {
			method = http.MethodGet
		}
		wrong := bundle.do(t, method, path, "", asOperator()...)
		require.Equal(t, http.StatusMethodNotAllowed, wrong.status, "%s %s: %s", method, path, wrong.body)
		require.Equal(t, allow, wrong.header.Get("Allow"))
	}

	r = bundle.do(t, http.MethodPost, "/v1/queues/nosuch/pause", "", asOperator()...)
	requireProblem(t, r, http.StatusNotFound, `queue "nosuch"`)

	// "*" is River's every queue: it paused them all and answered 404.
	for _, action := range []string{"pause", "resume"} {
		r = bundle.do(t, http.MethodPost, "/v1/queues/*/"+action, "", asOperator()...)
		requireProblem(t, r, http.StatusUnprocessableEntity, `"*" names no queue`)
		require.False(t, getQueue(river.QueueDefault).Paused, "%s of * changed nothing", action)
	}

	// Strict like every /v1 route: unknown query parameters and body
	// fields are refused and change nothing; an echoed name is cut.
	requireProblem(t, bundle.do(t, http.MethodGet, "/v1/queues?x=1", "", asOperator()...), http.StatusBadRequest, `unknown query parameter "x"`)
	requireProblem(t, bundle.do(t, http.MethodPost, "/v1/queues/default/pause?x=1", "", asOperator()...), http.StatusBadRequest, `unknown query parameter "x"`)
	requireProblem(t, bundle.do(t, http.MethodPost, "/v1/queues/default/pause", `{"junk": 1}`, asOperator()...), http.StatusUnprocessableEntity, "takes no fields in its body")
	requireProblem(t, bundle.do(t, http.MethodPost, "/v1/queues/default/pause", `[]`, asOperator()...), http.StatusBadRequest, "send no body, or {}")
	require.False(t, getQueue(river.QueueDefault).Paused, "a refused pause pauses nothing")
	r = bundle.do(t, http.MethodPost, "/v1/queues/default/pause", `{}`, asOperator()...)
	require.Equal(t, http.StatusOK, r.status, "an empty object is no fields: %s", r.body)
	r = bundle.do(t, http.MethodPost, "/v1/queues/default/resume", "", asOperator()...)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	long := strings.Repeat("a", 5000)
	r = bundle.do(t, http.MethodPost, "/v1/queues/"+long+"/pause", "", asOperator()...)
	requireProblem(t, r, http.StatusNotFound, "not found")
	var p struct{ Detail string }
	require.NoError(t, json.Unmarshal(r.body, &p))
	require.Less(t, len(p.Detail), 200, "the name is cut in the answer")
}

func TestRequestMetricsByRoute(t *testing.T) {
	t.Parallel()
	bundle := operatorSetup(t, false, nil)

	bundle.do(t, http.MethodGet, "/v1/tasks/12345", "")
	bundle.do(t, http.MethodGet, "/v1/tasks/67890", "")
	bundle.do(t, http.MethodGet, "/nowhere", "")
	r := bundle.do(t, http.MethodGet, "/metrics", "", asOperator()...)
	require.Equal(t, http.StatusOK, r.status)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(r.body)))
	require.NoError(t, err)

	counts := map[string]float64{}
	for _, m := range families["handoff_http_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		counts[labels["route"]+" "+labels["code"]] += m.GetCounter().GetValue()
	}
	require.InDelta(t, 2, counts["GET /v1/tasks/{id} 404"], 0, "%v", counts)
	require.InDelta(t, 1, counts["/ 404"], 0, "unmatched paths share the catch-all's label: %v", counts)
	require.NotContains(t, fmt.Sprint(counts), "12345", "paths never become labels")
}
