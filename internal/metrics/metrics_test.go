package metrics_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/jobs"
)

// scrape GETs /metrics from h and parses it with Prometheus's text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	family, ok := families[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range family.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func insertClient(t *testing.T, pool *pgxpool.Pool) *river.Client[pgx.Tx] {
	t.Helper()
	workers, err := jobs.Workers(jobs.Kinds(jobs.Deps{}))
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers, Logger: pgtest.Logger(t)})
	require.NoError(t, err)
	return client
}

func TestQueueSampleMatchesSQL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	client := insertClient(t, pool)

	now := time.Now()
	var params []river.InsertManyParams
	add := func(n int, queue string, priority int, scheduledAt time.Time) {
		for range n {
			params = append(params, river.InsertManyParams{Args: jobs.NoopArgs{}, InsertOpts: &river.InsertOpts{Queue: queue, Priority: priority, ScheduledAt: scheduledAt}})
		}
	}
	add(5, "default", 1, now.Add(-10*time.Minute))
	add(2, "default", 3, now.Add(-90*time.Minute)) // older, at a lower priority: still the oldest
	add(3, "emails", 2, now.Add(-time.Minute))
	add(4, "emails", 1, now.Add(time.Hour)) // scheduled, not available
	add(1, "reports", 4, now.Add(2*time.Hour))
	_, err := client.InsertMany(ctx, params)
	require.NoError(t, err)
	// River inserts a task with an explicit ScheduledAt as scheduled; its
	// scheduler makes the due ones available. Do its step here.
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'scheduled' AND scheduled_at <= now()`)
	require.NoError(t, err)

	m := metrics.New(pool, pgtest.Logger(t), &metrics.Opts{Queues: map[string]int{"default": 10, "idle": 1}})

	ages := func() map[string]float64 {
		rows, err := pool.Query(ctx, `SELECT queue, extract(epoch FROM now() - min(scheduled_at))::float8 FROM river_job WHERE state = 'available' GROUP BY queue`)
		require.NoError(t, err)
		out := map[string]float64{}
		for rows.Next() {
			var q string
			var a float64
			require.NoError(t, rows.Scan(&q, &a))
			out[q] = a
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := ages()
	require.NoError(t, m.Sample(ctx))
	after := ages()
	families := scrape(t, m.Handler())

	// Depth: every (queue, state) the SQL counts, and 0 for the rest.
	want := map[[2]string]float64{}
	rows, err := pool.Query(ctx, `SELECT queue, state::text, count(*)::float8 FROM river_job GROUP BY queue, state`)
	require.NoError(t, err)
	for rows.Next() {
		var q, s string
		var n float64
		require.NoError(t, rows.Scan(&q, &s, &n))
		want[[2]string{q, s}] = n
	}
	require.NoError(t, rows.Err())
	require.Len(t, want, 4, "default/available, emails/available, emails/scheduled, reports/scheduled")
	for _, queue := range []string{"default", "emails", "reports", "idle"} {
		for _, state := range []string{"available", "pending", "retryable", "running", "scheduled"} {
			got, ok := value(t, families, "handoff_queue_tasks", map[string]string{"queue": queue, "state": state})
			require.True(t, ok, "handoff_queue_tasks{queue=%q,state=%q} missing", queue, state)
			require.InDelta(t, want[[2]string{queue, state}], got, 0, "handoff_queue_tasks{queue=%q,state=%q}", queue, state)
		}
	}

	// Oldest age: between the SQL's age just before and just after the sample.
	for queue, lo := range before {
		got, ok := value(t, families, "handoff_queue_oldest_available_age_seconds", map[string]string{"queue": queue})
		require.True(t, ok, queue)
		require.GreaterOrEqual(t, got, lo, queue)
		require.LessOrEqual(t, got, after[queue], queue)
	}
	require.InDelta(t, 90*60, before["default"], 60, "the priority-3 task is the oldest")
	for _, queue := range []string{"reports", "idle"} {
		got, ok := value(t, families, "handoff_queue_oldest_available_age_seconds", map[string]string{"queue": queue})
		require.True(t, ok, queue)
		require.Zero(t, got, "%s has no available task", queue)
	}

	// No River client has run: no leader.
	leader, ok := value(t, families, "handoff_river_leader", nil)
	require.True(t, ok)
	require.Zero(t, leader)
	maxConns, ok := value(t, families, "handoff_db_pool_max_conns", nil)
	require.True(t, ok)
	require.InDelta(t, float64(pool.Config().MaxConns), maxConns, 0)
	producers, ok := value(t, families, "handoff_river_producer_max_workers", map[string]string{"queue": "default"})
	require.True(t, ok)
	require.InDelta(t, 10, producers, 0)
}

// newClient is a River client working the default queue with Handoff's
// kinds, the metrics middleware first and the seam's as the server has it.
func newClient(t *testing.T, pool *pgxpool.Pool, logger *slog.Logger, m *metrics.Metrics, kinds []jobs.Kind) *river.Client[pgx.Tx] {
	t.Helper()
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	seam := riverseam.NewMiddleware(pool, logger, riverseam.DefaultIdleBelow)
	seam.CheckArgs = jobs.CheckArgs(kinds)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            logger,
		Middleware:        []rivertype.Middleware{m.RiverMiddleware(), seam},
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Workers:           workers,
		TestOnly:          true,
	})
	require.NoError(t, err)
	return client
}

func TestRiverMiddlewareCounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	logger := pgtest.Logger(t)
	kinds := jobs.Kinds(jobs.Deps{Logger: logger})
	m := metrics.New(pool, logger, &metrics.Opts{Queues: map[string]int{"default": 10}, Kinds: []string{"noop", "sleep", "http"}})

	client := newClient(t, pool, logger, m, kinds)
	m.SetClientID(client.ID())
	completed, unsubscribe := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer unsubscribe()
	require.NoError(t, client.Start(ctx))
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	}()

	zero := 0.0
	_, err := client.InsertMany(ctx, []river.InsertManyParams{
		{Args: jobs.NoopArgs{}},
		{Args: jobs.NoopArgs{}},
		{Args: jobs.NoopArgs{}},
		// Fails its only attempt: one failure, one discard.
		{Args: jobs.SleepArgs{Seconds: &zero, FailTimes: 1}, InsertOpts: &river.InsertOpts{MaxAttempts: 1}},
	})
	require.NoError(t, err)
	for range 4 {
		select {
		case <-completed:
		case <-time.After(30 * time.Second):
			t.Fatal("tasks were not worked within 30 s")
		}
	}

	// A job whose args its worker cannot decode is discarded by the seam at
	// its first attempt: a discard, not a cancel, in the counters.
	_, err = pool.Exec(ctx, `INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, metadata, tags)
		VALUES ('{"url": "http://127.0.0.1:1/", "headers": {"a": 1}}', 'http', 5, 1, 'default', 'available', now(), '{}', '{}')`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, _ := value(t, scrape(t, m.Handler()), "handoff_tasks_discarded_total", map[string]string{"kind": "http", "queue": "default"})
		return got == 1
	}, 30*time.Second, 20*time.Millisecond, "the undecodable http job is counted as discarded")

	families := scrape(t, m.Handler())
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"handoff_tasks_discarded_total", map[string]string{"kind": "http", "queue": "default"}, 1},
		{"handoff_task_attempts_failed_total", map[string]string{"kind": "http", "queue": "default"}, 1},
		{"handoff_tasks_cancelled_total", map[string]string{"kind": "http", "queue": "default"}, 0},
		{"handoff_tasks_enqueued_total", map[string]string{"kind": "noop", "queue": "default"}, 3},
		{"handoff_tasks_enqueued_total", map[string]string{"kind": "sleep", "queue": "default"}, 1},
		{"handoff_tasks_completed_total", map[string]string{"kind": "noop", "queue": "default"}, 3},
		{"handoff_task_attempts_failed_total", map[string]string{"kind": "sleep", "queue": "default"}, 1},
		{"handoff_tasks_discarded_total", map[string]string{"kind": "sleep", "queue": "default"}, 1},
		{"handoff_task_work_duration_seconds", map[string]string{"kind": "noop"}, 3},
		{"handoff_task_pickup_wait_seconds", map[string]string{"queue": "default"}, 5},
		{"handoff_tasks_running", map[string]string{"queue": "default"}, 0},
	} {
		got, ok := value(t, families, c.name, c.labels)
		require.True(t, ok, "%s%v missing", c.name, c.labels)
		require.InDelta(t, c.want, got, 0, "%s%v", c.name, c.labels)
	}
}

// TestCountersStartAtZero: every kind's task counters exist at 0 in every
// queue before any event, so that an alert's ratio of two of them (a
// kind's discards over its finishes, docs/operations.md) has a series for a
// kind that has only ever failed.
func TestCountersStartAtZero(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	m := metrics.New(pool, pgtest.Logger(t), &metrics.Opts{Queues: map[string]int{"default": 10, "reports": 2}, Kinds: []string{"noop", "sleep", "http"}})
	families := scrape(t, m.Handler())
	counters := []string{
		"handoff_tasks_enqueued_total", "handoff_tasks_completed_total", "handoff_task_attempts_failed_total",
		"handoff_tasks_discarded_total", "handoff_tasks_cancelled_total", "handoff_tasks_snoozed_total",
	}
	for _, name := range counters {
		for _, kind := range []string{"noop", "sleep", "http"} {
			for _, queue := range []string{"default", "reports"} {
				got, ok := value(t, families, name, map[string]string{"kind": kind, "queue": queue})
				require.True(t, ok, "%s{kind=%q, queue=%q} has no series", name, kind, queue)
				require.Zero(t, got)
			}
		}
	}
	_, ok := value(t, families, "handoff_task_work_duration_seconds", map[string]string{"kind": "http"})
	require.True(t, ok)
	_, ok = value(t, families, "handoff_task_pickup_wait_seconds", map[string]string{"queue": "reports"})
	require.True(t, ok)
}

// TestRiverMiddlewareCancelAndStop: a task cancelled while it runs counts
// as cancelled, not as a failed attempt (its worker returns the context's
// cancellation, which River records as the cancel); an attempt cut short by
// the client's stop counts nothing, since River makes the task available
// again without counting it.
func TestRiverMiddlewareCancelAndStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	logger := pgtest.Logger(t)
	kinds := jobs.Kinds(jobs.Deps{Logger: logger})
	m := metrics.New(pool, logger, &metrics.Opts{Queues: map[string]int{"default": 10}, Kinds: []string{"sleep"}})
	client := newClient(t, pool, logger, m, kinds)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { // a second stop, after the test's own, returns at once
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(stopCtx)
	})

	// running inserts a long sleep of one attempt and waits until it runs.
	running := func() int64 {
		t.Helper()
		seconds := 600.0
		res, err := client.Insert(ctx, jobs.SleepArgs{Seconds: &seconds}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			var state string
			require.NoError(t, pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, res.Job.ID).Scan(&state))
			return state == "running"
		}, 30*time.Second, 10*time.Millisecond)
		return res.Job.ID
	}
	sleep := map[string]string{"kind": "sleep", "queue": "default"}
	counter := func(name string) float64 {
		t.Helper()
		got, ok := value(t, scrape(t, m.Handler()), name, sleep)
		require.True(t, ok, name)
		return got
	}

	cancelled := running()
	_, err := client.JobCancel(ctx, cancelled)
	require.NoError(t, err)
	var state string
	require.Eventually(t, func() bool {
		require.NoError(t, pool.QueryRow(ctx, `SELECT state FROM tasks WHERE id = $1`, cancelled).Scan(&state))
		return state == "cancelled"
	}, 30*time.Second, 10*time.Millisecond)
	require.InDelta(t, 1, counter("handoff_tasks_cancelled_total"), 0)

	stopped := running()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	require.NoError(t, client.StopAndCancel(stopCtx))
	var attempt int
	require.NoError(t, pool.QueryRow(ctx, `SELECT state, attempt FROM river_job WHERE id = $1`, stopped).Scan(&state, &attempt))
	require.Equal(t, "available", state, "River puts a stopped attempt back")
	require.Zero(t, attempt)

	require.Zero(t, counter("handoff_task_attempts_failed_total"), "neither the cancel nor the stop is a failed attempt")
	require.Zero(t, counter("handoff_tasks_discarded_total"))
	require.InDelta(t, 1, counter("handoff_tasks_cancelled_total"), 0)
}

// TestInstrumentBoundsMethods: a request's method is whatever token the
// client sends, counted before any authentication. Each made-up method was
// a new series of handoff_http_requests_total and of the duration
// histogram, kept for the life of the process: 200 long ones took a
// scrape from 0.3 to 204 MB. Now they all count as "other".
func TestInstrumentBoundsMethods(t *testing.T) {
	t.Parallel()
	m := metrics.New(pgtest.NewDB(t), pgtest.Logger(t), &metrics.Opts{Queues: map[string]int{"default": 1}, Kinds: []string{"noop"}})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(http.ResponseWriter, *http.Request) {})
	srv := httptest.NewServer(m.Instrument(metrics.WithRoute(mux)))
	defer srv.Close()

	send := func(method string) {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/ok", nil)
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
	}
	made := []string{"M1", "PROPFIND", "get", strings.Repeat("X", 4000)}
	for i := range 50 {
		made = append(made, "M"+strconv.Itoa(i))
	}
	for _, method := range made {
		send(method)
	}
	send(http.MethodGet)
	send(http.MethodDelete)

	families := scrape(t, m.Handler())
	methods := map[string]float64{}
	for _, name := range []string{"handoff_http_requests_total", "handoff_http_request_duration_seconds"} {
		for _, metric := range families[name].GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "method" {
					methods[name+" "+l.GetValue()]++
				}
			}
		}
	}
	require.Equal(t, map[string]float64{
		"handoff_http_requests_total GET": 1, "handoff_http_requests_total DELETE": 1, "handoff_http_requests_total other": 1,
		"handoff_http_request_duration_seconds GET": 1, "handoff_http_request_duration_seconds DELETE": 1, "handoff_http_request_duration_seconds other": 1,
	}, methods, "one series per method label")
	got, ok := value(t, families, "handoff_http_requests_total", map[string]string{"method": "other"})
	require.True(t, ok)
	require.InDelta(t, float64(len(made)), got, 0, "every made-up method counted, as other")
}
