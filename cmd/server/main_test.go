package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/migrations"
)

func envFunc(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// syncBuffer collects a program's output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// servingPattern finds the address a server listens on in its output.
// Tests start servers on HTTP_ADDR=127.0.0.1:0 and read the port the kernel
// chose: a port picked free and closed beforehand could be taken by another
// test's server in between, and the test would talk to that one.
var servingPattern = regexp.MustCompile(`handoff: serving on (http://\S+)\n`)

// waitServing waits until output shows the server's address, then until it
// is ready, and returns its base URL.
func waitServing(t *testing.T, output *syncBuffer, stillRunning func() bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingPattern.FindStringSubmatch(output.String()); m != nil {
			waitReady(t, m[1], stillRunning)
			return m[1]
		}
		require.True(t, stillRunning(), "server exited before it was serving; output:\n%s", output.String())
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server never printed its address; output:\n%s", output.String())
	return ""
}

// waitReady polls /readyz until it answers 200, as a load balancer would.
func waitReady(t *testing.T, base string, stillRunning func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		require.True(t, stillRunning(), "server exited before it was ready")
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/readyz", nil)
		require.NoError(t, err)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server never became ready")
}

type apiTask struct {
	ID       int64           `json:"id"`
	State    string          `json:"state"`
	Result   json.RawMessage `json:"result"`
	Progress json.RawMessage `json:"progress"`
}

func postTask(ctx context.Context, base, body string) (*apiTask, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tasks", strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	var got apiTask
	return &got, resp.StatusCode, json.Unmarshal(raw, &got)
}

func getTask(t *testing.T, base string, id int64) *apiTask {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s/v1/tasks/%d", base, id), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got apiTask
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	return &got
}

func TestServe(t *testing.T) {
	t.Parallel()

	env := map[string]string{
		"DATABASE_URL": pgtest.NewDBURL(t),
		"HTTP_ADDR":    "127.0.0.1:0",
		"WORKERS":      "4",
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
	exited := false
	base := waitServing(t, &stdout, func() bool {
		select {
		case err := <-done:
			exited = true
			t.Logf("run returned %v; stderr:\n%s", err, stderr.String())
			return false
		default:
			return !exited
		}
	})

	created, _, err := postTask(t.Context(), base, `{"kind": "sleep", "args": {"seconds": 0.1, "fail_times": 1}}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return getTask(t, base, created.ID).State == "completed"
	}, 30*time.Second, 50*time.Millisecond)
	require.JSONEq(t, `{"slept_ms": 100, "attempt": 2}`, normalizeSleep(getTask(t, base, created.ID).Result))

	// SIGTERM is a cancelled context: run stops gracefully and returns nil.
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(45 * time.Second):
		t.Fatal("serve did not stop")
	}
	require.Contains(t, stderr.String(), `"msg":"stopped"`)
}

// normalizeSleep rounds slept_ms to the requested 100 ms, since a sleep
// takes a little longer than asked (on a loaded machine much longer; the
// upper bound only catches a wrong unit).
func normalizeSleep(raw json.RawMessage) string {
	var r struct {
		SleptMS int64 `json:"slept_ms"`
		Attempt int   `json:"attempt"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return string(raw)
	}
	if r.SleptMS >= 100 && r.SleptMS < 10_000 {
		r.SleptMS = 100
	}
	out, _ := json.Marshal(r)
	return string(out)
}

func TestServeRefusesOldSchema(t *testing.T) {
	t.Parallel()

	env := map[string]string{"DATABASE_URL": pgtest.NewEmptyDB(t), "HTTP_ADDR": "127.0.0.1:0"}
	err := run(t.Context(), []string{"serve"}, envFunc(env), io.Discard, io.Discard)
	require.ErrorContains(t, err, "database schema is at version 0 but this binary needs version")
	require.ErrorContains(t, err, "migrate up")
}

func TestServeAutoMigrate(t *testing.T) {
	t.Parallel()

	env := map[string]string{"DATABASE_URL": pgtest.NewEmptyDB(t), "HTTP_ADDR": "127.0.0.1:0", "AUTO_MIGRATE": "true"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, io.Discard) }()
	waitServing(t, &stdout, func() bool { return len(done) == 0 })
	cancel()
	require.NoError(t, <-done)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()

	env := map[string]string{"WORKERS": "lots", "RESCUE_AFTER": "soon", "AUTO_MIGRATE": "maybe", "QUEUES": "emails"}
	err := run(t.Context(), []string{"serve"}, envFunc(env), io.Discard, io.Discard)
	require.Error(t, err)
	for _, want := range []string{"DATABASE_URL is not set", "WORKERS=\"lots\"", "RESCUE_AFTER=\"soon\"", "AUTO_MIGRATE=\"maybe\"", "QUEUES: \"emails\""} {
		require.ErrorContains(t, err, want)
	}

	require.ErrorContains(t, run(t.Context(), []string{"fly"}, envFunc(nil), io.Discard, io.Discard), `unknown command "fly"`)
	require.ErrorContains(t, run(t.Context(), []string{"migrate"}, envFunc(nil), io.Discard, io.Discard), "migrate needs a command")
	require.ErrorContains(t, run(t.Context(), []string{"migrate", "status", "3"}, envFunc(nil), io.Discard, io.Discard), "takes no version")
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()

	cfg, err := config.Parse(envFunc(map[string]string{"DATABASE_URL": "postgres://localhost/handoff"}))
	require.NoError(t, err)
	require.Equal(t, config.DefaultWorkers(runtime.GOMAXPROCS(0)), cfg.Workers)
	require.Equal(t, 10, cfg.DBMaxConns)

	require.Equal(t, 500, config.DefaultWorkers(2))
	// River refuses more than 10,000 workers in a queue: a 64-core host
	// without WORKERS must still start.
	require.Equal(t, 10_000, config.DefaultWorkers(64))
}

func TestMigrateRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	url := pgtest.NewEmptyDB(t)
	env := envFunc(map[string]string{"DATABASE_URL": url})
	migrateCmd := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		require.NoError(t, run(ctx, append([]string{"migrate"}, args...), env, &out, io.Discard), out.String())
		return out.String()
	}
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	tables := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND (tablename LIKE 'river%' OR tablename = 'tasks')").Scan(&n))
		return n
	}

	latest := migrations.LatestVersion()
	out := migrateCmd("up")
	require.Contains(t, out, "00009_tasks.sql")
	require.Contains(t, out, "00010_task_insert_trigger.sql")
	require.Contains(t, migrateCmd("version"), fmt.Sprintf("schema version %d (this binary's latest: %d)", latest, latest))
	require.Contains(t, migrateCmd("up"), "no migrations to apply")
	status := migrateCmd("status")
	require.Contains(t, status, "00001_")
	require.NotRegexp(t, `(?m)^\d+\s+pending`, status)
	require.Positive(t, tables())

	migrateCmd("down")
	require.Contains(t, migrateCmd("version"), fmt.Sprintf("schema version %d", latest-1))
	migrateCmd("down", "0")
	require.Zero(t, tables())
	require.Contains(t, migrateCmd("version"), "schema version 0")

	migrateCmd("up")
	require.Contains(t, migrateCmd("version"), fmt.Sprintf("schema version %d", latest))
	require.Positive(t, tables())
}
