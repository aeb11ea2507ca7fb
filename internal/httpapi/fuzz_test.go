package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/task"
)

// FuzzDecodeCreate feeds arbitrary bodies to the create decoder: it must
// never panic, and every failure must be a client error with a 4xx status,
// never something that would become a 500.
func FuzzDecodeCreate(f *testing.F) {
	for _, seed := range []string{
		`{"kind": "noop"}`,
		`{"kind": "sleep", "args": {"seconds": 1.5, "fail_times": 2}, "queue": "default", "priority": 2, "max_attempts": 3, "run_at": "2030-01-01T00:00:00Z", "idempotency_key": "k"}`,
		`{"kind": "noop"`, `{"kind": noop}`, ``, `[]`, `null`, `"x"`, `{"kind": "noop"} {}`,
		`{"priority": "high"}`, `{"run_at": "tomorrow"}`, `{"x": 1}`, `{"args": [1, {"a": null}]}`,
		"{\"kind\": \"\xff\"}", `{"priority": 1e400}`, `{"max_attempts": -9223372036854775809}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/tasks", bytes.NewReader(body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, MaxBodyBytes)
		_, err := decode[task.CreateRequest](r)
		if err == nil {
			return
		}
		var fieldErrs jsonstrict.FieldsError
		if errors.As(err, &fieldErrs) {
			if len(fieldErrs) == 0 {
				t.Fatalf("decode returned empty field errors")
			}
			return
		}
		var reqErr *requestError
		if !errors.As(err, &reqErr) {
			t.Fatalf("decode error %T (%v) is not a client error", err, err)
		}
		if reqErr.status < 400 || reqErr.status > 499 || reqErr.detail == "" {
			t.Fatalf("decode error has status %d and detail %q", reqErr.status, reqErr.detail)
		}
	})
}
