package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/metrics"
)

// BenchmarkRiverMiddlewareWork is what the metrics add to one attempt: the
// pickup and work histograms, the running gauge and the outcome counter.
// docs/operations.md relates it to the drain rate.
func BenchmarkRiverMiddlewareWork(b *testing.B) {
	m := metrics.New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	mw, ok := m.RiverMiddleware().(rivertype.WorkerMiddleware)
	if !ok {
		b.Fatal("not a worker middleware")
	}
	now := time.Now()
	job := &rivertype.JobRow{ID: 1, Kind: "noop", Queue: "default", Attempt: 1, MaxAttempts: 25, ScheduledAt: now.Add(-time.Millisecond), AttemptedAt: &now}
	ctx := context.Background()
	work := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := mw.Work(ctx, job, work); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRiverMiddlewareInsert is what the metrics add to one insert.
func BenchmarkRiverMiddlewareInsert(b *testing.B) {
	m := metrics.New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	mw, ok := m.RiverMiddleware().(rivertype.JobInsertMiddleware)
	if !ok {
		b.Fatal("not an insert middleware")
	}
	results := []*rivertype.JobInsertResult{{Job: &rivertype.JobRow{Kind: "noop", Queue: "default"}}}
	ctx := context.Background()
	insert := func(context.Context) ([]*rivertype.JobInsertResult, error) { return results, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mw.InsertMany(ctx, nil, insert); err != nil {
			b.Fatal(err)
		}
	}
}
