package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/pgtest"
)

// keysCreate runs `handoff keys create` and returns its stdout's last line:
// the key.
func keysCreate(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var stdout bytes.Buffer
	require.NoError(t, run(t.Context(), append([]string{"keys", "create"}, args...), envFunc(env), &stdout, io.Discard))
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	key := lines[len(lines)-1]
	require.Regexp(t, `^hnd_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$`, key, "the key alone on the last line")
	return key
}

// callWithKey sends a request with key and returns the status.
func callWithKey(t *testing.T, method, url, key, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestKeysCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t)}

	key := keysCreate(t, env, "--tenant", "acme", "--name", "billing service")
	prefix := key[4:16]

	var list bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"keys", "list"}, envFunc(env), &list, io.Discard))
	require.Contains(t, list.String(), prefix)
	require.Contains(t, list.String(), "acme")
	require.Contains(t, list.String(), "billing service")
	require.NotContains(t, list.String(), key[17:], "list never shows a key")

	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"keys", "revoke", prefix}, envFunc(env), &out, io.Discard))
	require.Contains(t, out.String(), "revoked API key "+prefix)
	err := run(t.Context(), []string{"keys", "revoke", "nosuchprefix"}, envFunc(env), io.Discard, io.Discard)
	require.ErrorContains(t, err, "no API key has this prefix")

	for _, args := range [][]string{
		{"keys"},
		{"keys", "create"},
		{"keys", "create", "--tenant", "Not Valid"},
		{"keys", "list", "extra"},
		{"keys", "revoke"},
		{"keys", "rotate"},
	} {
		require.Error(t, run(t.Context(), args, envFunc(env), io.Discard, io.Discard), "%q", args)
	}
}

// TestRevokedKeyRefusedByRunningServer: a key revoked with the CLI is
// refused by a running server process within auth.KeyCacheTTL (polled, no
// timing assertion).
func TestRevokedKeyRefusedByRunningServer(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDBURL(t)
	env := map[string]string{"DATABASE_URL": url}
	key := keysCreate(t, env, "--tenant", "acme")
	other := keysCreate(t, env, "--tenant", "acme")

	srv := startServer(t, url)
	require.Equal(t, http.StatusUnauthorized, callWithKey(t, http.MethodGet, srv.base+"/v1/tasks", "", ""), "a key exists: keys are required")
	require.Equal(t, http.StatusAccepted, callWithKey(t, http.MethodPost, srv.base+"/v1/tasks", key, `{"kind": "noop", "args": {}}`))

	require.NoError(t, run(t.Context(), []string{"keys", "revoke", key[4:16]}, envFunc(env), io.Discard, io.Discard))
	require.Eventually(t, func() bool {
		return callWithKey(t, http.MethodGet, srv.base+"/v1/tasks", key, "") == http.StatusUnauthorized
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, http.StatusOK, callWithKey(t, http.MethodGet, srv.base+"/v1/tasks", other, ""), "other keys still work")
}

func TestAuthDisabledRefusedBeyondLoopback(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://localhost/x", "AUTH_DISABLED": "true", "HTTP_ADDR": "0.0.0.0:8080"}
	err := run(t.Context(), []string{"serve"}, envFunc(env), io.Discard, io.Discard)
	require.ErrorContains(t, err, "AUTH_DISABLED_ANY_ADDR=true")
	err = run(t.Context(), []string{"config"}, envFunc(env), io.Discard, io.Discard)
	require.ErrorContains(t, err, "AUTH_DISABLED=true with HTTP_ADDR=0.0.0.0:8080")
}

// TestSlowHeadersCut: a client sending its headers one byte a second is
// disconnected by HTTP_READ_HEADER_TIMEOUT while other clients are served.
func TestSlowHeadersCut(t *testing.T) {
	t.Parallel()
	srv := startServer(t, pgtest.NewDBURL(t), "HTTP_READ_HEADER_TIMEOUT=1s")
	addr := strings.TrimPrefix(srv.base, "http://")

	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	// Far longer than any timeout at one byte a second.
	request := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: " + strings.Repeat("s", 300) + "\r\n\r\n"
	type ending struct {
		answer []byte
		err    error
	}
	closed := make(chan ending, 1)
	go func() {
		// The reader sees the server end the connection (at most a 408
		// first); the deadline is only a safety net.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		answer, err := io.ReadAll(conn)
		closed <- ending{answer, err}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for i := range len(request) {
			if _, err := conn.Write([]byte{request[i]}); err != nil || ctx.Err() != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()

	// Meanwhile others are served.
	require.Equal(t, http.StatusOK, callWithKey(t, http.MethodGet, srv.base+"/healthz", "", ""))
	require.Equal(t, http.StatusAccepted, callWithKey(t, http.MethodPost, srv.base+"/v1/tasks", "", `{"kind": "noop", "args": {}}`))

	end := <-closed
	require.NotErrorIs(t, end.err, os.ErrDeadlineExceeded, "the server, not our deadline, ended it")
	require.NotContains(t, string(end.answer), "200 OK", "the slow request was never served")
	t.Logf("slow client got %q, %v", end.answer, end.err)
}

// TestServeLimits: DB_STATEMENT_TIMEOUT reaches the pool's sessions, and
// HTTP_MAX_HEADER_BYTES refuses larger headers with 431 while the server
// keeps serving.
func TestServeLimits(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDBURL(t)
	cfg, err := config.Parse(envFunc(map[string]string{"DATABASE_URL": url}))
	require.NoError(t, err)
	pool, err := openPool(t.Context(), cfg, 1500*time.Millisecond)
	require.NoError(t, err)
	defer pool.Close()
	var timeout string
	require.NoError(t, pool.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&timeout))
	require.Equal(t, "1500ms", timeout)

	srv := startServer(t, url, "HTTP_MAX_HEADER_BYTES=8192")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.base+"/v1/tasks", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("x", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	require.Equal(t, http.StatusOK, callWithKey(t, http.MethodGet, srv.base+"/v1/tasks", "", ""))
}
