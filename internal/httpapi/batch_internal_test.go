package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/task"
)

// batchResponse is the batch answer's shape as encoding/json writes it,
// which appendBatch writes by hand.
type batchResponse struct {
	Results []batchResult `json:"results"`
}

// TestAppendBatch: the batch answer written by hand is what json.Encoder
// writes for it, accepted tasks, repeats and problems mixed; writeBatch
// answers with it, answer after answer through its pool of buffers; and a
// task that cannot be written is its own item's 500, the others answered.
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
	noFailure := func(tk *task.Task, err error) *problem {
		t.Errorf("task %d refused: %v", tk.ID, err)
		return &problem{Status: http.StatusInternalServerError}
	}
	got, err := appendBatch(nil, results, noFailure)
	require.NoError(t, err)
	require.Equal(t, want.String(), string(got))
	logger := slog.New(slog.DiscardHandler)

	for _, rs := range [][]batchResult{results, results[2:], results[:1]} {
		want.Reset()
		require.NoError(t, json.NewEncoder(&want).Encode(batchResponse{Results: rs}))
		rec := httptest.NewRecorder()
		writeBatch(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/tasks/batch", nil), logger, rs)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		require.Equal(t, want.String(), rec.Body.String())
	}

	broken := []batchResult{results[0], {Status: http.StatusAccepted, Task: &task.Task{ID: 9, Args: json.RawMessage(`{`)}}, results[1]}
	rec := httptest.NewRecorder()
	writeBatch(rec, httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/tasks/batch", nil), logger, broken)
	require.Equal(t, http.StatusOK, rec.Code)
	var answer struct {
		Results []struct {
			Status  int             `json:"status"`
			Task    json.RawMessage `json:"task"`
			Problem *problem        `json:"problem"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &answer))
	require.Len(t, answer.Results, 3)
	require.Equal(t, http.StatusAccepted, answer.Results[0].Status)
	require.NotEmpty(t, answer.Results[0].Task)
	require.Equal(t, http.StatusInternalServerError, answer.Results[1].Status)
	require.Nil(t, answer.Results[1].Task)
	require.NotNil(t, answer.Results[1].Problem)
	require.Equal(t, http.StatusInternalServerError, answer.Results[1].Problem.Status)
	require.Equal(t, http.StatusOK, answer.Results[2].Status)
	require.NotEmpty(t, answer.Results[2].Task)
}
