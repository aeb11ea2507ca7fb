package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam/seamtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/internal/telemetry"
	"github.com/handoff/handoff/jobs"
)

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines whose msg is msg.
func (b *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// TestTraceFromRequestToWork follows one task: the request's span continues
// the caller's trace, River's insert span is its child, and the attempt's
// work span links back to the insert span. The request and attempt log
// lines carry their trace ids.
func TestTraceFromRequestToWork(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	exporter := tracetest.NewInMemoryExporter()
	tracing, err := telemetry.NewWithExporter(ctx, sdktrace.WithSyncer(exporter))
	require.NoError(t, err)
	defer func() { require.NoError(t, tracing.Shutdown(context.WithoutCancel(ctx))) }()

	kinds := jobs.Kinds(jobs.Deps{Logger: logger})
	workers, err := jobs.Workers(kinds)
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            logger,
		Middleware:        []rivertype.Middleware{tracing.RiverMiddleware(), telemetry.LogAttempts(logger)},
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Workers:           workers,
	})
	require.NoError(t, err)
	completed, unsubscribe := client.Subscribe(river.EventKindJobCompleted)
	defer unsubscribe()
	require.NoError(t, client.Start(ctx))
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	}()

	svc := task.NewService(pool, client, kinds, &task.ServiceOpts{Logger: logger})
	srv := httptest.NewServer(httpapi.NewServer(logger, svc, &httpapi.ServerOpts{TracerProvider: tracing.Provider}))
	defer srv.Close()

	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/tasks", strings.NewReader(`{"kind": "noop", "args": {}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	var created task.Task
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	select {
	case <-completed:
	case <-time.After(30 * time.Second):
		t.Fatal("task not completed within 30 s")
	}
	// The trace context rides in the job's metadata; the task row is as
	// without it.
	seamtest.RequireNoDrift(t, pool, created.ID)

	// The work span ends when the middleware returns, just before River
	// records the completion; it is exported by then.
	spans := exporter.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	httpSpan, ok := byName["POST /v1/tasks"]
	require.True(t, ok, "request span named by its route; spans: %v", spanNames(spans))
	insertSpan, ok := byName["river.insert_many"]
	require.True(t, ok, "spans: %v", spanNames(spans))
	workSpan, ok := byName["river.work/noop"]
	require.True(t, ok, "spans: %v", spanNames(spans))

	require.Equal(t, callerTrace, httpSpan.SpanContext.TraceID().String(), "the caller's traceparent is continued")
	require.Equal(t, httpSpan.SpanContext.TraceID(), insertSpan.SpanContext.TraceID())
	require.Equal(t, httpSpan.SpanContext.SpanID(), insertSpan.Parent.SpanID(), "insert is a child of the request")
	require.NotEqual(t, httpSpan.SpanContext.TraceID(), workSpan.SpanContext.TraceID(), "the attempt is a trace of its own")
	require.Len(t, workSpan.Links, 1)
	require.Equal(t, insertSpan.SpanContext.TraceID(), workSpan.Links[0].SpanContext.TraceID(), "the attempt links to the enqueuing trace")
	require.Equal(t, insertSpan.SpanContext.SpanID(), workSpan.Links[0].SpanContext.SpanID())

	requestLines := logs.lines(t, "http request")
	require.NotEmpty(t, requestLines)
	require.Equal(t, "POST /v1/tasks", requestLines[0]["route"])
	require.InDelta(t, http.StatusAccepted, requestLines[0]["status"], 0)
	require.Equal(t, callerTrace, requestLines[0]["trace_id"])

	attemptLines := logs.lines(t, "task attempt")
	require.Len(t, attemptLines, 1)
	line := attemptLines[0]
	require.Equal(t, "noop", line["kind"])
	require.InDelta(t, 1, line["attempt"], 0)
	require.Equal(t, "completed", line["outcome"])
	require.Contains(t, line, "task_id")
	require.Contains(t, line, "duration_ms")
	require.NotContains(t, line, "error")
	require.Equal(t, workSpan.SpanContext.TraceID().String(), line["trace_id"])
}

func spanNames(spans tracetest.SpanStubs) []string {
	names := make([]string, 0, len(spans))
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

func TestNewOff(t *testing.T) {
	t.Parallel()

	for _, exporter := range []string{"", "none"} {
		tracing, err := telemetry.New(t.Context(), exporter)
		require.NoError(t, err)
		require.False(t, tracing.Enabled)
		require.NoError(t, tracing.Shutdown(t.Context()))
	}
	_, err := telemetry.New(t.Context(), "zipkin")
	require.ErrorContains(t, err, `OTEL_TRACES_EXPORTER="zipkin"`)
}

// TestNewOTLPDefaultIsPlainHTTP: with no OTEL_EXPORTER_OTLP_* set, spans
// go to http://localhost:4318, the specification's default and what
// docs/operations.md says. The Go SDK's own default is https://, which a
// collector on localhost does not speak: a tester saw no span arrive.
func TestNewOTLPDefaultIsPlainHTTP(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE"} {
		if os.Getenv(name) != "" {
			t.Skipf("%s is set in the environment: the default is not in use", name)
		}
	}
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:4318")
	if err != nil {
		t.Skipf("the default collector port is taken here: %v", err)
	}
	got := make(chan string, 10)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path
		w.Header().Set("Content-Type", "application/x-protobuf")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	tracing, err := telemetry.New(t.Context(), "otlp")
	require.NoError(t, err)
	_, span := tracing.Provider.Tracer("test").Start(t.Context(), "one span")
	span.End()
	// The deadline only stops a hang: over https the exporter retries for
	// a minute.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	require.NoError(t, tracing.Shutdown(ctx), "the span was exported over plain HTTP")
	select {
	case req := <-got:
		require.Equal(t, "POST /v1/traces", req)
	default:
		t.Fatal("the collector on localhost:4318 received nothing")
	}
}
