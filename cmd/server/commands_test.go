package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

	t.Run("NothingListening", func(t *testing.T) {
		t.Parallel()
		l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		require.ErrorContains(t, healthcheck(t, addr), "healthcheck http://"+addr+"/readyz")
	})
}
