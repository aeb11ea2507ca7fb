package task_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// Kinds that misbehave, to show what a task author's bug does to a task.

type panicArgs struct{}

func (panicArgs) Kind() string    { return "test_panic" }
func (panicArgs) Validate() error { return nil }

type panicWorker struct {
	river.WorkerDefaults[panicArgs]
}

func (w *panicWorker) Work(context.Context, *river.Job[panicArgs]) error {
	panic("worker bug: nil map")
}

type hangArgs struct{}

func (hangArgs) Kind() string    { return "test_hang" }
func (hangArgs) Validate() error { return nil }

type hangWorker struct{ river.WorkerDefaults[hangArgs] }

func (w *hangWorker) Timeout(*river.Job[hangArgs]) time.Duration { return 200 * time.Millisecond }

// Work waits far past its timeout; River cancels its context at the timeout.
func (w *hangWorker) Work(ctx context.Context, _ *river.Job[hangArgs]) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Hour):
		return nil
	}
}

type hugeArgs struct{}

func (hugeArgs) Kind() string    { return "test_huge" }
func (hugeArgs) Validate() error { return nil }

type hugeWorker struct{ river.WorkerDefaults[hugeArgs] }

func (w *hugeWorker) Work(ctx context.Context, _ *river.Job[hugeArgs]) error {
	return jobs.RecordResult(ctx, map[string]string{"blob": strings.Repeat("x", jobs.MaxResultBytes)})
}

func TestMisbehavingTasks(t *testing.T) {
	t.Parallel()

	bundle := setup(t, true,
		jobs.NewKind[panicArgs](&panicWorker{}),
		jobs.NewKind[hangArgs](&hangWorker{}),
		jobs.NewKind[hugeArgs](&hugeWorker{}),
	)

	t.Run("PanicIsAnError", func(t *testing.T) {
		t.Parallel()
		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "test_panic", MaxAttempts: 1})
		require.NoError(t, err)
		done := waitForState(t, bundle.svc, created.ID, "discarded")
		require.Len(t, done.Errors, 1)
		require.Contains(t, done.Errors[0].Error, "worker bug: nil map")
	})

	t.Run("HangIsCutAtItsTimeout", func(t *testing.T) {
		t.Parallel()
		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "test_hang", MaxAttempts: 1})
		require.NoError(t, err)
		done := waitForState(t, bundle.svc, created.ID, "discarded")
		require.Len(t, done.Errors, 1)
		require.Contains(t, done.Errors[0].Error, "deadline exceeded")
		require.Less(t, done.FinishedAt.Sub(*done.StartedAt), 30*time.Second)
	})

	t.Run("HugeResultIsRefusedWithTheReason", func(t *testing.T) {
		t.Parallel()
		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "test_huge"})
		require.NoError(t, err)
		done := waitForState(t, bundle.svc, created.ID, "cancelled")
		require.Equal(t, 1, done.Attempt, "not retried: it would fail the same way")
		require.Len(t, done.Errors, 1)
		require.Contains(t, done.Errors[0].Error, "over the limit of 1048576")
		require.JSONEq(t, `null`, string(done.Result))
		raw, err := json.Marshal(done)
		require.NoError(t, err)
		require.Less(t, len(raw), 10_000, "the refused result is not stored")
	})
}
