package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// liveBundle is a server process (pool, hub, HTTP, a River client that only
// inserts) and, separately, a worker process: its own pool and River client
// on the same database. Every task in these tests is therefore run by
// another process than the one streaming it.
type liveBundle struct {
	*testBundle
	hub    *live.Hub
	tokens *live.TokenSigner
	worker *river.Client[pgxTx]
}

type liveOpts struct {
	hub       *live.HubOpts
	keepAlive time.Duration
	noWorker  bool
}

func liveSetup(t *testing.T, opts *liveOpts) *liveBundle {
	t.Helper()
	if opts == nil {
		opts = &liveOpts{}
	}
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	logger := pgtest.Logger(t)

	kinds := jobs.Kinds(jobs.Deps{Logger: logger, Progress: live.NewProgressWriter(pool)})
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: logger})
	require.NoError(t, err)
	svc := task.NewService(pool, inserter, kinds, nil)

	hubOpts := &live.HubOpts{Logger: logger}
	if opts.hub != nil {
		hubOpts = opts.hub
		hubOpts.Logger = logger
	}
	hub := live.NewHub(pool, hubOpts)
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(hubCtx) }()
	t.Cleanup(func() { stopHub(); <-hubDone })
	select {
	case <-hub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("live hub did not start listening")
	}

	tokens, err := live.NewTokenSigner([]byte(strings.Repeat("k", 32)), 0, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewServer(logger, svc, &httpapi.ServerOpts{
		Live: &httpapi.LiveOpts{Hub: hub, Tokens: tokens, KeepAlive: opts.keepAlive},
	}))
	t.Cleanup(srv.Close)

	b := &liveBundle{testBundle: &testBundle{pool: pool, srv: srv}, hub: hub, tokens: tokens}
	if !opts.noWorker {
		b.worker = startWorker(t, pool)
	}
	return b
}

type pgxTx = pgx.Tx

// startWorker starts a River client with workers on its own pool: another
// process, as far as Postgres and the hub can tell.
func startWorker(t *testing.T, serverPool *pgxpool.Pool) *river.Client[pgxTx] {
	t.Helper()
	cfg := serverPool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["application_name"] = "other process"
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	logger := pgtest.Logger(t)
	workers, err := jobs.Workers(jobs.Kinds(jobs.Deps{Logger: logger, Progress: live.NewProgressWriter(pool)}))
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            logger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:           workers,
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.WithoutCancel(t.Context())))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
	return client
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	id   int64
	task task.Task
}

// stream is an open event stream; events arrive on events, which is closed
// when the server ends the stream.
type stream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

func (b *liveBundle) openStream(t *testing.T, path string, header ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.srv.Client().Do(req) //nolint:bodyclose // closed when the reader returns
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &stream{resp: resp, events: make(chan sseEvent, 64), cancel: cancel}
	t.Cleanup(cancel)
	go s.read(t)
	return s
}

func (s *stream) read(t *testing.T) {
	t.Helper()
	defer close(s.events)
	defer s.resp.Body.Close()
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 2<<20)
	var ev sseEvent
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if err := json.Unmarshal([]byte(data), &ev.task); err != nil {
					t.Errorf("event data is not a task: %v: %s", err, data)
					return
				}
				s.events <- ev
			}
			ev, data = sseEvent{}, ""
		case strings.HasPrefix(line, "id: "):
			id, err := strconv.ParseInt(strings.TrimPrefix(line, "id: "), 10, 64)
			if err != nil {
				t.Errorf("event id %q: %v", line, err)
				return
			}
			ev.id = id
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// next returns the next event, failing the test after a generous wait.
func (s *stream) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
		return sseEvent{}, false
	}
}

// all reads events until the server ends the stream.
func (s *stream) all(t *testing.T) []sseEvent {
	t.Helper()
	var evs []sseEvent
	for {
		ev, ok := s.next(t)
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
}

func (b *liveBundle) create(t *testing.T, body string) (task.Task, *response) {
	t.Helper()
	r := b.do(t, http.MethodPost, "/v1/tasks", body)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	return decodeTask(t, r), r
}

func TestTaskEvents(t *testing.T) {
	t.Parallel()

	t.Run("EventsInOrderUntilTerminal", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, nil)

		created, _ := b.create(t, `{"kind": "sleep", "args": {"seconds": 1.2, "fail_times": 1}, "max_attempts": 3}`)
		evs := b.openStream(t, fmt.Sprintf("/v1/tasks/%d/events", created.ID)).all(t)

		require.NotEmpty(t, evs)
		for i, ev := range evs {
			require.Equal(t, int64(i+1), ev.id, "ids count the events")
			require.Equal(t, created.ID, ev.task.ID)
		}
		last := evs[len(evs)-1].task
		require.Equal(t, "completed", last.State)
		require.JSONEq(t, `{"slept_ms": `+fmt.Sprint(mustSleptMS(t, last))+`, "attempt": 2}`, string(last.Result))
		require.Len(t, last.Errors, 1)

		var sawRunning, sawError, sawProgress bool
		for _, ev := range evs[:len(evs)-1] {
			require.NotContains(t, []string{"completed", "discarded", "cancelled"}, ev.task.State, "a terminal event is the last")
			sawRunning = sawRunning || ev.task.State == "running"
			sawError = sawError || len(ev.task.Errors) == 1
			sawProgress = sawProgress || string(ev.task.Progress) != "null"
		}
		require.True(t, sawRunning, "an event shows the task running")
		require.True(t, sawError, "an event shows the failed attempt's error before the end")
		require.True(t, sawProgress, "an event shows progress")
		// Attempts never go backwards, and progress moves forward within an attempt.
		var lastDone float64
		lastAttempt := 0
		for _, ev := range evs {
			require.GreaterOrEqual(t, ev.task.Attempt, lastAttempt)
			if ev.task.Attempt > lastAttempt {
				lastAttempt, lastDone = ev.task.Attempt, 0
			}
			var p jobs.Progress
			if string(ev.task.Progress) != "null" {
				require.NoError(t, json.Unmarshal(ev.task.Progress, &p))
				require.GreaterOrEqual(t, p.Done, lastDone)
				lastDone = p.Done
			}
		}
		t.Logf("%d events for one task", len(evs))
	})

	t.Run("ResumesWithLastEventID", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, nil)

		created, _ := b.create(t, `{"kind": "sleep", "args": {"seconds": 0.3}}`)
		path := fmt.Sprintf("/v1/tasks/%d/events", created.ID)
		s := b.openStream(t, path)
		first, ok := s.next(t)
		require.True(t, ok)
		require.Equal(t, int64(1), first.id)
		s.cancel() // the client goes away; the task finishes meanwhile

		waited := b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d?wait=30s", created.ID), "")
		require.Equal(t, "completed", decodeTask(t, waited).State)

		evs := b.openStream(t, path, "Last-Event-ID", "1").all(t)
		require.Len(t, evs, 1, "the current (terminal) task, then the end")
		require.Equal(t, int64(2), evs[0].id, "ids go on from Last-Event-ID")
		require.Equal(t, "completed", evs[0].task.State)
	})

	t.Run("StreamsFull", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true, hub: &live.HubOpts{MaxStreams: 1}})
		created, _ := b.create(t, `{"kind": "noop"}`)
		path := fmt.Sprintf("/v1/tasks/%d/events", created.ID)
		first := b.openStream(t, path)
		<-first.events // subscribed: the stream holds the one slot
		for _, p := range []string{path, fmt.Sprintf("/v1/tasks/%d?wait=1s", created.ID)} {
			r := b.do(t, http.MethodGet, p, "")
			requireProblem(t, r, http.StatusServiceUnavailable, "too many open task streams")
			require.Equal(t, "1", r.header.Get("Retry-After"), p)
		}
	})

	t.Run("BadLastEventID", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		created, _ := b.create(t, `{"kind": "noop"}`)
		for _, bad := range []string{"x", "+5", "05", "-1", "9007199254740991", "9007199254740992", "9223372036854775807", "9223372036854775808"} {
			r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d/events", created.ID), "", "Last-Event-ID", bad)
			requireProblem(t, r, http.StatusBadRequest, "Last-Event-ID")
		}
	})

	t.Run("UnknownTask", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		requireProblem(t, b.do(t, http.MethodGet, "/v1/tasks/999/events", ""), http.StatusNotFound, "no task")
		require.Equal(t, 0, b.hub.Streams(), "a refused stream holds nothing")
	})

	t.Run("ListenerKilledMidTask", func(t *testing.T) {
		t.Parallel()
		// The listener stays down for 2 s, longer than the task runs, and
		// keep-alives (which also re-read) are off: only the re-read after
		// the reconnect can deliver the terminal event.
		b := liveSetup(t, &liveOpts{hub: &live.HubOpts{ReconnectDelay: 2 * time.Second}, keepAlive: time.Hour})

		created, _ := b.create(t, `{"kind": "sleep", "args": {"seconds": 0.5}}`)
		s := b.openStream(t, fmt.Sprintf("/v1/tasks/%d/events", created.ID))
		for {
			ev, ok := s.next(t)
			require.True(t, ok)
			if ev.task.State == "running" {
				break
			}
		}
		pid := b.hub.ListenerPID()
		require.NotZero(t, pid)
		var killed bool
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&killed)) //nolint:gosec // a backend pid
		require.True(t, killed)

		var last sseEvent
		for ev := range s.events {
			last = ev
		}
		require.Equal(t, "completed", last.task.State, "the terminal event arrives after the listener reconnects")
		require.NotEqual(t, pid, b.hub.ListenerPID(), "a new listener connection")
	})
}

func mustSleptMS(t *testing.T, tk task.Task) int64 {
	t.Helper()
	var r jobs.SleepResult
	require.NoError(t, json.Unmarshal(tk.Result, &r))
	return r.SleptMS
}

func TestTaskEventsThousandStreams(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := liveSetup(t, &liveOpts{noWorker: true, keepAlive: time.Hour})

	const n = 1000
	var ids []int64
	for range n {
		created, _ := b.create(t, `{"kind": "noop"}`)
		ids = append(ids, created.ID)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	// open opens streams from ids[from:to] and reads each one's first
	// event, so that the stream is fully set up; bodies close at cleanup.
	open := func(from, to int) []*bufio.Reader {
		resps := make([]*http.Response, to-from)
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Go(func() {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/tasks/%d/events", b.srv.URL, ids[i]), nil)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := client.Do(req) //nolint:bodyclose // closed at cleanup
				if err != nil {
					t.Error(err)
					return
				}
				resps[i-from] = resp
			})
		}
		wg.Wait()
		t.Cleanup(func() {
			for _, r := range resps {
				if r != nil {
					_ = r.Body.Close()
				}
			}
		})
		require.False(t, t.Failed())
		readers := make([]*bufio.Reader, len(resps))
		for i, resp := range resps {
			require.Equal(t, http.StatusOK, resp.StatusCode)
			readers[i] = bufio.NewReader(resp.Body)
			requireEventData(t, readers[i])
		}
		return readers
	}

	base := heap()
	readers := open(0, n/2)
	atHalf := heap()
	readers = append(readers, open(n/2, n)...)
	atFull := heap()

	require.Equal(t, n, b.hub.Streams())
	perFirst := float64(atHalf-base) / float64(n/2)
	perSecond := float64(atFull-atHalf) / float64(n/2)
	t.Logf("memory per open stream (server and client side in one process): first 500: %.0f bytes, next 500: %.0f bytes", perFirst, perSecond)
	require.Positive(t, atFull-base, "memory was measured")

	var listeners int
	require.NoError(t, b.pool.QueryRow(ctx,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
		live.ListenerApplicationName).Scan(&listeners))
	require.Equal(t, 1, listeners, "one listener connection for every stream")
	var watched int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM task_watch").Scan(&watched))
	require.Equal(t, n, watched)

	// One statement changes every task: every stream gets its event.
	_, err := b.pool.Exec(ctx, `UPDATE task_records SET progress = '{"done": 1, "total": 2, "message": "all at once"}'`)
	require.NoError(t, err)
	for _, r := range readers {
		var got task.Task
		require.NoError(t, json.Unmarshal(requireEventData(t, r), &got))
		require.JSONEq(t, `{"done": 1, "total": 2, "message": "all at once"}`, string(got.Progress))
	}
}

// requireEventData reads up to the next event's data line.
func requireEventData(t *testing.T, r *bufio.Reader) []byte {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return []byte(strings.TrimSpace(data))
		}
	}
}

func TestTaskGetWait(t *testing.T) {
	t.Parallel()

	t.Run("AnswersAtTerminal", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, nil)
		created, _ := b.create(t, `{"kind": "sleep", "args": {"seconds": 0.3}}`)
		r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d?wait=60s", created.ID), "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, "completed", decodeTask(t, r).State)
	})

	t.Run("AnswersCurrentStateWhenWaitRunsOut", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		created, _ := b.create(t, `{"kind": "noop"}`)
		r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d?wait=200ms", created.ID), "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, "available", decodeTask(t, r).State)
		require.Equal(t, 0, b.hub.Streams())
	})

	t.Run("BadWait", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		created, _ := b.create(t, `{"kind": "noop"}`)
		for _, bad := range []string{"soon", "-1s", "61s", "30"} {
			p := requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d?wait=%s", created.ID, bad), ""), http.StatusBadRequest, "wait")
			require.Contains(t, p.Errors, "wait")
		}
	})
}

func TestReadLinks(t *testing.T) {
	t.Parallel()

	t.Run("CreateAnswerCarriesLinksThatOpenOnlyThatTask", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		created, r := b.create(t, `{"kind": "noop"}`)
		other, _ := b.create(t, `{"kind": "noop"}`)

		var events string
		for _, link := range r.header.Values("Link") {
			if strings.HasSuffix(link, `rel="events"`) {
				events = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="events"`)
			}
		}
		require.True(t, strings.HasPrefix(events, fmt.Sprintf("/v1/tasks/%d/events?token=", created.ID)), r.header.Values("Link"))
		token := strings.SplitN(events, "token=", 2)[1]

		s := b.openStream(t, events)
		ev, ok := s.next(t)
		require.True(t, ok)
		require.Equal(t, created.ID, ev.task.ID)

		requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d/events?token=%s", other.ID, token), ""), http.StatusForbidden, "token")
		requireProblem(t, b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d/events?token=forged", created.ID), ""), http.StatusForbidden, "token")
	})

	t.Run("GetAnswerCarriesLinksExceptToATokensHolder", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		// A task made from SQL: its creation answered no links.
		_, err := b.pool.Exec(t.Context(), `INSERT INTO handoff.kinds (kind, shape) VALUES ('noop', '{"fields": {}}') ON CONFLICT DO NOTHING;
			INSERT INTO handoff.queues (name) VALUES ('default') ON CONFLICT DO NOTHING`)
		require.NoError(t, err)
		var id int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT handoff.enqueue('noop', '{}')`).Scan(&id))

		r := b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d", id), "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		links := map[string]string{}
		for _, link := range r.header.Values("Link") {
			target, rel, ok := strings.Cut(link, ">; rel=")
			require.True(t, ok, link)
			links[strings.Trim(rel, `"`)] = strings.TrimPrefix(target, "<")
		}
		require.True(t, strings.HasPrefix(links["monitor"], fmt.Sprintf("/tasks/%d?token=", id)), links)
		require.True(t, strings.HasPrefix(links["events"], fmt.Sprintf("/v1/tasks/%d/events?token=", id)), links)
		s := b.openStream(t, links["events"])
		ev, ok := s.next(t)
		require.True(t, ok)
		require.Equal(t, id, ev.task.ID)

		// The token's holder reads the task, but gets no fresh link.
		token := strings.SplitN(links["events"], "token=", 2)[1]
		r = b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d?token=%s", id, token), "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Empty(t, r.header.Values("Link"))
		// Nor does anyone for a task they cannot read.
		r = b.do(t, http.MethodGet, fmt.Sprintf("/v1/tasks/%d", id+1000), "")
		require.Equal(t, http.StatusNotFound, r.status)
		require.Empty(t, r.header.Values("Link"))
	})

	t.Run("FormRefusesCrossSiteSubmission", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		before := countRows(t, b.pool)
		r := b.do(t, http.MethodPost, "/tasks", "seconds=1", "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site")
		requireProblem(t, r, http.StatusForbidden, "cross-origin requests that change state are refused")
		require.Equal(t, before, countRows(t, b.pool), "nothing written")

		r = b.do(t, http.MethodPost, "/tasks", "seconds=1", "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin", "Accept", "application/json")
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		var body struct {
			Task   task.Task `json:"task"`
			Page   string    `json:"page"`
			Events string    `json:"events"`
		}
		require.NoError(t, json.Unmarshal(r.body, &body))
		require.Equal(t, "sleep", body.Task.Kind)
		require.True(t, strings.HasPrefix(body.Page, fmt.Sprintf("/tasks/%d?token=", body.Task.ID)))

		requireProblem(t, b.do(t, http.MethodPost, "/tasks", "seconds=600", "Content-Type", "application/x-www-form-urlencoded", "Accept", "application/json"), http.StatusUnprocessableEntity, "seconds")

		// Found by an attacker (2026-12-07): NaN passed the range check
		// and failed to encode, a 500; a form over its limit was a 400.
		before = countRows(t, b.pool)
		for _, seconds := range []string{"NaN", "nan", "Inf", "-0.5"} {
			requireProblem(t, b.do(t, http.MethodPost, "/tasks", "seconds="+seconds, "Content-Type", "application/x-www-form-urlencoded", "Accept", "application/json"), http.StatusUnprocessableEntity, "seconds must be a number from 0 to")
		}
		requireProblem(t, b.do(t, http.MethodPost, "/tasks", "seconds=1&pad="+strings.Repeat("x", 5000), "Content-Type", "application/x-www-form-urlencoded", "Accept", "application/json"), http.StatusRequestEntityTooLarge, "request body is larger than 4 KiB")
		require.Equal(t, before, countRows(t, b.pool), "nothing written")
	})

	t.Run("PagesServedWithPolicy", func(t *testing.T) {
		t.Parallel()
		b := liveSetup(t, &liveOpts{noWorker: true})
		for _, path := range []string{"/", "/tasks/1"} {
			r := b.do(t, http.MethodGet, path, "")
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
			require.Contains(t, r.header.Get("Content-Security-Policy"), "script-src 'self'")
			require.Equal(t, "no-referrer", r.header.Get("Referrer-Policy"))
			require.Contains(t, string(r.body), `aria-live="polite"`)
		}
		r := b.do(t, http.MethodGet, "/assets/app.js", "")
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, string(r.body), "EventSource")
		requireProblem(t, b.do(t, http.MethodGet, "/tasks/abc", ""), http.StatusBadRequest, "task id")
	})
}
