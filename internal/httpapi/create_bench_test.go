package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// BenchmarkCreateHandler measures POST /v1/tasks through the whole handler
// chain (middleware, decode, validation, the enqueue transaction, encoding)
// without a network: next to internal/task's BenchmarkServiceCreate it
// prices the HTTP layer. It needs a database, so -short skips it.
func BenchmarkCreateHandler(b *testing.B) {
	pool := pgtest.NewDB(b)
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
	if err != nil {
		b.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers, Logger: pgtest.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	handler := httpapi.NewServer(pgtest.Logger(b), task.NewService(pool, client, kinds, nil), nil)
	const body = `{"kind":"noop","args":{}}`
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/v1/tasks", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
