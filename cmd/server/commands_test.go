package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

func TestConfigCommand(t *testing.T) {
	t.Parallel()

	env := envFunc(map[string]string{ //nolint:gosec // fake credentials, checked to be masked
		"DATABASE_URL":   "postgres://handoff:db-secret@localhost:5432/handoff",
		"ADMIN_USER":     "ops",
		"ADMIN_PASSWORD": "admin-secret",
		"WORKERS":        "7",
	})
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"config"}, env, &out, io.Discard))
	require.Contains(t, out.String(), "WORKERS=7\t# env\n")
	require.Contains(t, out.String(), "DATABASE_URL=postgres://handoff:xxxxx@localhost:5432/handoff\t# env\n")
	require.NotContains(t, out.String(), "db-secret")
	require.NotContains(t, out.String(), "admin-secret")

	err := run(t.Context(), []string{"config"}, envFunc(map[string]string{"WORKERS": "0"}), io.Discard, io.Discard)
	require.ErrorContains(t, err, "DATABASE_URL is not set")
	require.ErrorContains(t, err, `WORKERS="0"`)
}

func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()

	healthcheck := func(t *testing.T, addr string) error {
		t.Helper()
		env := envFunc(map[string]string{"DATABASE_URL": "postgres://localhost/unused", "HTTP_ADDR": addr})
		return run(t.Context(), []string{"healthcheck"}, env, io.Discard, io.Discard)
	}

	t.Run("Ready", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t), "HTTP_ADDR": "127.0.0.1:0"}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stdout syncBuffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, envFunc(env), &stdout, io.Discard) }()
		base := waitServing(t, &stdout, func() bool { return len(done) == 0 })
		require.NoError(t, healthcheck(t, strings.TrimPrefix(base, "http://")))

		// A server listening on all interfaces is checked on loopback.
		_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
		require.NoError(t, err)
		require.NoError(t, healthcheck(t, "0.0.0.0:"+port))
		cancel()
		require.NoError(t, <-done)
	})

	t.Run("NotReady", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "not ready: schema", http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		err := healthcheck(t, strings.TrimPrefix(srv.URL, "http://"))
		require.ErrorContains(t, err, "503")
	})

	// Found by an attacker (2026-12-07): the check followed a redirect to
	// another host and took its 200 for the server's readiness.
	t.Run("RedirectIsNotReady", func(t *testing.T) {
		t.Parallel()
		var elsewhere atomic.Int64
		other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
		defer other.Close()
		srv := httptest.NewServer(http.RedirectHandler(other.URL+"/anything", http.StatusFound))
		defer srv.Close()
		require.ErrorContains(t, healthcheck(t, strings.TrimPrefix(srv.URL, "http://")), "302")
		require.Zero(t, elsewhere.Load(), "the redirect was not followed")
	})

	// Nor did it ask through HTTP_PROXY from the image's environment, which
	// answered for a non-loopback HTTP_ADDR (Go bypasses a proxy for
	// loopback, so only the setting can be checked here).
	t.Run("NoProxy", func(t *testing.T) {
		t.Parallel()
		transport, ok := healthcheckClient.Transport.(*http.Transport)
		require.True(t, ok)
		require.Nil(t, transport.Proxy)
	})

	t.Run("NothingListening", func(t *testing.T) {
		t.Parallel()
		l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		require.ErrorContains(t, healthcheck(t, addr), "healthcheck http://"+addr+"/readyz")
	})
}

// TestServeOperatorRoutes starts the real program with operator credentials
// and checks the wiring: the dashboard, queue control and metrics answer
// the operator, and refuse anyone else.
func TestServeOperatorRoutes(t *testing.T) {
	t.Parallel()

	get := func(t *testing.T, url string, auth bool) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		require.NoError(t, err)
		if auth {
			req.SetBasicAuth("ops", "s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	start := func(t *testing.T, env map[string]string) (string, *syncBuffer) {
		t.Helper()
		env["DATABASE_URL"], env["HTTP_ADDR"] = pgtest.NewDBURL(t), "127.0.0.1:0"
		ctx, cancel := context.WithCancel(t.Context())
		var stdout, stderr syncBuffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
		})
		return waitServing(t, &stdout, func() bool { return len(done) == 0 }), &stderr
	}

	t.Run("On", func(t *testing.T) {
		t.Parallel()
		base, _ := start(t, map[string]string{"ADMIN_USER": "ops", "ADMIN_PASSWORD": "s3cret"})
		for _, path := range []string{"/riverui/", "/riverui/api/queues", "/v1/queues", "/metrics"} {
			status, body := get(t, base+path, true)
			require.Equal(t, http.StatusOK, status, "%s: %s", path, body)
			status, _ = get(t, base+path, false)
			require.Equal(t, http.StatusUnauthorized, status, path)
		}
		_, metrics := get(t, base+"/metrics", true)
		require.Contains(t, metrics, "handoff_river_producer_max_workers{queue=\"default\"}")
		require.Contains(t, metrics, "handoff_http_requests_total{code=\"401\",method=\"GET\",route=\"GET /v1/queues\"} 1")
	})

	t.Run("Off", func(t *testing.T) {
		t.Parallel()
		base, stderr := start(t, map[string]string{})
		for _, path := range []string{"/riverui/", "/v1/queues", "/metrics"} {
			status, _ := get(t, base+path, true)
			require.Equal(t, http.StatusServiceUnavailable, status, path)
		}
		require.Contains(t, stderr.String(), "operator routes are off (503)")
	})
}

// TestHelp: -h, -help and --help after any command print its usage and run
// nothing (no DATABASE_URL is set: a command that ran would fail); a bare
// "help" there is a value, not a request for help.
func TestHelp(t *testing.T) {
	t.Parallel()
	noEnv := envFunc(map[string]string{})
	for _, args := range [][]string{
		{"help"},
		{"-h"},
		{"--help"},
		{"serve", "-h"},
		{"migrate", "--help"},
		{"migrate", "up", "-help"},
		{"config", "-h"},
		{"healthcheck", "--help"},
		{"keys", "help"},
		{"keys", "--help"},
		{"keys", "create", "-h"},
		{"keys", "list", "-h"},
		{"keys", "revoke", "--help"},
	} {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), args, noEnv, &out, io.Discard), args)
		require.Contains(t, out.String(), "usage", args)
	}
	err := run(t.Context(), []string{"keys", "create", "--tenant", "acme", "--name", "help"}, noEnv, io.Discard, io.Discard)
	require.ErrorContains(t, err, "DATABASE_URL is not set", "a key labelled help is made, not help printed")
	err = run(t.Context(), []string{"nosuch", "--help"}, noEnv, io.Discard, io.Discard)
	require.ErrorContains(t, err, `unknown command "nosuch"`)
}

// TestServeWarnsOfOpenPublicSchema: when every role may create objects in
// schema public (the default before PostgreSQL 15), serve says so at
// start-up, and not otherwise.
func TestServeWarnsOfOpenPublicSchema(t *testing.T) {
	t.Parallel()
	const warning = "every role may create objects in schema public"
	for _, open := range []bool{true, false} {
		env := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t), "HTTP_ADDR": "127.0.0.1:0"}
		if open {
			pool, err := pgxpool.New(t.Context(), env["DATABASE_URL"])
			require.NoError(t, err)
			_, err = pool.Exec(t.Context(), `GRANT CREATE ON SCHEMA public TO PUBLIC`)
			pool.Close()
			require.NoError(t, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var stdout, stderr syncBuffer
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
		waitServing(t, &stdout, func() bool { return len(done) == 0 })
		cancel()
		require.NoError(t, <-done)
		require.Equal(t, open, strings.Contains(stderr.String(), warning), "open %t: %s", open, stderr.String())
	}
}
