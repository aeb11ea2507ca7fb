package jobs

import (
	"context"

	"github.com/riverqueue/river"
)

// NoopArgs are the args of kind "noop", which does nothing and succeeds. It
// measures the service's own overhead and proves a deployment works end to end.
type NoopArgs struct{}

// Kind returns "noop".
func (NoopArgs) Kind() string { return "noop" }

// Validate accepts the only valid value, {}.
func (NoopArgs) Validate() error { return nil }

// NoopResult is the result of a noop task: an empty object.
type NoopResult struct{}

// NoopWorker works noop tasks.
type NoopWorker struct {
	river.WorkerDefaults[NoopArgs]
}

// Work records an empty result.
func (w *NoopWorker) Work(ctx context.Context, _ *river.Job[NoopArgs]) error {
	return RecordResult(ctx, NoopResult{})
}
