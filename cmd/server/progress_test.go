package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

// TestServeHTTPTaskProgress: the receiver of an http task reports progress
// at the Handoff-Progress-URL of the request it serves; the task shows it
// while the attempt runs, the URL opens nothing else, and it closes when the
// attempt ends.
func TestServeHTTPTaskProgress(t *testing.T) {
	t.Parallel()

	type reportedAt struct {
		url    string
		status int
	}
	reported := make(chan reportedAt, 1)
	release := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		progressURL := r.Header.Get("Handoff-Progress-URL")
		reported <- reportedAt{progressURL, report(t, progressURL, `{"done": 1, "total": 4, "message": "a quarter"}`)}
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(receiver.Close)

	env := map[string]string{
		"DATABASE_URL":    pgtest.NewDBURL(t),
		"HTTP_ADDR":       "127.0.0.1:0",
		"WORKERS":         "4",
		"HTTP_TASK_ALLOW": strings.TrimPrefix(receiver.URL, "http://"),
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), &stdout, &stderr) }()
	base := waitServing(t, &stdout, func() bool { return len(done) == 0 })

	created, _, err := postTask(t.Context(), base, `{"kind": "http", "args": {"url": "`+receiver.URL+`"}}`)
	require.NoError(t, err)
	var progressURL string
	select {
	case got := <-reported:
		require.Equal(t, http.StatusNoContent, got.status, "the receiver's report is stored")
		progressURL = got.url
	case <-time.After(60 * time.Second):
		t.Fatal("the receiver was never called")
	}
	require.True(t, strings.HasPrefix(progressURL, base+"/v1/tasks/"), progressURL)

	running := getTask(t, base, created.ID)
	require.Equal(t, "running", running.State)
	require.JSONEq(t, `{"done": 1, "total": 4, "message": "a quarter"}`, string(running.Progress))

	// The URL is the receiver's only credential, for this task's attempt.
	require.Equal(t, http.StatusUnauthorized, report(t, strings.Replace(progressURL, "attempt=1", "attempt=2", 1), `{"done": 2}`))
	require.Equal(t, http.StatusUnauthorized, report(t, progressURL[:len(progressURL)-2]+"AA", `{"done": 2}`))
	other, _, err := postTask(t.Context(), base, `{"kind": "noop"}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, report(t, strings.Replace(progressURL, "/tasks/"+strconv.FormatInt(created.ID, 10)+"/", "/tasks/"+strconv.FormatInt(other.ID, 10)+"/", 1), `{"done": 2}`))
	// Another method is 405 with Allow, not the API's 401.
	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodGet} {
		req, err := http.NewRequestWithContext(t.Context(), method, progressURL, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
		require.Equal(t, "POST", resp.Header.Get("Allow"), method)
	}
	// Strict and bounded like every body; one report per 500 ms.
	require.Equal(t, http.StatusUnprocessableEntity, report(t, progressURL, `{"done": 5, "total": 4}`))
	require.Equal(t, http.StatusUnprocessableEntity, report(t, progressURL, `{"Done": 2}`))
	require.Equal(t, http.StatusTooManyRequests, report(t, progressURL, `{"done": 2, "total": 4}`))

	close(release)
	require.Eventually(t, func() bool { return getTask(t, base, created.ID).State == "completed" }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return report(t, progressURL, `{"done": 3, "total": 4}`) == http.StatusConflict
	}, 10*time.Second, 600*time.Millisecond, "once the attempt ended, its progress is closed")

	cancel()
	require.NoError(t, <-done)
}

// report POSTs a progress report and returns the status, 0 if it could not
// be sent (it may run in a handler, where require cannot stop the test).
func report(t *testing.T, url, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.WithoutCancel(t.Context()), http.MethodPost, url, strings.NewReader(body)) //nolint:gosec // the test's own server, on loopback
	if err != nil {
		t.Errorf("progress request: %v", err)
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req) //nolint:gosec // the test's own server, on loopback
	if err != nil {
		t.Errorf("progress report: %v", err)
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&p)
		t.Logf("progress report %s: %d %s", body, resp.StatusCode, p.Detail)
	}
	return resp.StatusCode
}
