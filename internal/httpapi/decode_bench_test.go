package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/handoff/handoff/internal/task"
)

// BenchmarkDecodeCreateRequest measures the API's share of a POST
// /v1/tasks before the service: reading a create body under the size limit
// and decoding it strictly (unknown fields rejected). The service's
// validation is internal/task's BenchmarkPrepare.
func BenchmarkDecodeCreateRequest(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"noop", `{"kind":"noop","args":{}}`},
		{"sleep_all_options", `{"kind": "sleep", "args": {"seconds": 2, "fail_times": 1}, "queue": "default",
			"priority": 2, "max_attempts": 5, "run_at": "2030-01-01T00:00:00Z", "idempotency_key": "order-42-receipt"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			rec := httptest.NewRecorder()
			reader := bytes.NewReader(body)
			req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/v1/tasks", nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				reader.Reset(body)
				req.Body = http.MaxBytesReader(rec, io.NopCloser(reader), MaxBodyBytes)
				if _, err := decode[task.CreateRequest](req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeTask measures writing the 202's body, the task object.
func BenchmarkEncodeTask(b *testing.B) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 123456000, time.UTC)
	t := &task.Task{
		ID: 123456, Kind: "noop", State: "available", Args: []byte(`{}`), Queue: "default",
		Priority: 1, MaxAttempts: 25, Errors: []task.AttemptError{}, Result: []byte("null"),
		Progress: []byte("null"), CreatedAt: now, ScheduledAt: now,
	}
	rec := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		rec.Body.Reset()
		if err := encode(rec, http.StatusAccepted, t); err != nil {
			b.Fatal(err)
		}
	}
}
