package task_test

import (
	"encoding/json"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// BenchmarkServiceCreate measures the enqueue transaction the API runs for
// each POST /v1/tasks: validation, then River's job insert, whose trigger
// writes the tasks row, as one statement, on a fresh database (skipped under -short, like every
// database test). "parallel" runs it from GOMAXPROCS goroutines at once, as
// concurrent requests do; its ns/op is wall time per task, so it shows how
// the transaction scales rather than what one costs.
func BenchmarkServiceCreate(b *testing.B) {
	pool := pgtest.NewDB(b)
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
	if err != nil {
		b.Fatal(err)
	}
	// No queues: an insert-only client, so nothing works the tasks.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers, Logger: pgtest.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	svc := task.NewService(pool, client, kinds, nil)
	req := task.CreateRequest{Kind: "noop", Args: json.RawMessage(`{}`)}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := svc.Create(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := svc.Create(b.Context(), req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
