package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/task"
)

// TestAppendBatch: the batch answer written by hand is what json.Encoder
// writes for it, accepted tasks, repeats and problems mixed; and writeBatch
// answers with it, reusing its buffer without corrupting the next answer.
func TestAppendBatch(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 11, 0, 0, 123000, time.UTC)
	url := "https://app.example/cb?x=<1>&y=2"
	results := []batchResult{
		{Status: http.StatusAccepted, Task: &task.Task{
			ID: 7, Kind: "noop", State: "available", Args: json.RawMessage(`{"a": "<b>"}`), Queue: "default",
			Priority: 1, MaxAttempts: 25, Errors: []task.AttemptError{}, Result: json.RawMessage("null"),
			Progress: json.RawMessage("null"), CreatedAt: at, ScheduledAt: at, CallbackURL: &url,
		}},
		{Status: http.StatusOK, Task: &task.Task{ID: 8, Kind: "sleep", Errors: []task.AttemptError{{Attempt: 1, At: at, Error: "boom & <bust>"}}, CreatedAt: at, ScheduledAt: at, StartedAt: &at}},
		{Status: http.StatusUnprocessableEntity, Problem: &problem{
			Type: "about:blank", Title: "Unprocessable Entity", Status: 422, Detail: "the request is invalid: kind: unknown kind \"<x>\"",
			Instance: "/v1/tasks/batch", Errors: map[string]string{"kind": "unknown kind \"<x>\"", "args.n": "must be ≥ 1"},
		}},
		{Status: http.StatusConflict, Problem: &problem{Type: "about:blank", Status: 409, Detail: "key reused", TaskID: 3}},
	}
	var want bytes.Buffer
	require.NoError(t, json.NewEncoder(&want).Encode(batchResponse{Results: results}))
	got, err := appendBatch(nil, results)
	require.NoError(t, err)
	require.Equal(t, want.String(), string(got))

	for _, rs := range [][]batchResult{results, results[2:], results[:1]} {
		want.Reset()
		require.NoError(t, json.NewEncoder(&want).Encode(batchResponse{Results: rs}))
		rec := httptest.NewRecorder()
		writeBatch(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/tasks/batch", nil), nil, rs)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		require.Equal(t, want.String(), rec.Body.String())
	}

	_, err = appendBatch(nil, []batchResult{{Status: http.StatusAccepted, Task: &task.Task{Args: json.RawMessage(`{`)}}})
	require.Error(t, err)
}
