package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/telemetry"
)

func TestOutcome(t *testing.T) {
	t.Parallel()

	job := func(attempt, maxAttempts int) *rivertype.JobRow {
		return &rivertype.JobRow{Attempt: attempt, MaxAttempts: maxAttempts}
	}
	failure := errors.New("boom")
	// The contexts River cancels a running attempt with: a remote cancel,
	// its client stopping (an error of River's own), the worker's timeout.
	cancelled := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(cause)
		return ctx
	}
	remote := cancelled(rivertype.ErrJobCancelledRemotely)
	stopped := cancelled(errors.New("stop initiated"))
	plain := cancelled(nil)
	timedOut, cancel := context.WithDeadline(t.Context(), time.Now())
	defer cancel()
	for _, c := range []struct {
		ctx  context.Context
		job  *rivertype.JobRow
		err  error
		want string
	}{
		{remote, job(1, 3), context.Canceled, "cancelled"},
		{remote, job(3, 3), fmt.Errorf("request: %w", context.Canceled), "cancelled"},
		{remote, job(1, 3), failure, "cancelled"},
		{remote, job(1, 3), nil, "completed"},
		{stopped, job(1, 3), context.Canceled, "interrupted"},
		{stopped, job(3, 3), fmt.Errorf("request: %w", context.Canceled), "interrupted"},
		{stopped, job(1, 3), failure, "failed"},
		{plain, job(1, 3), context.Canceled, "failed"},
		{timedOut, job(1, 3), context.DeadlineExceeded, "failed"},
		{timedOut, job(1, 3), context.Canceled, "failed"},
	} {
		require.Equal(t, c.want, telemetry.Outcome(c.ctx, c.job, c.err), "attempt %d/%d, %v, cause %v", c.job.Attempt, c.job.MaxAttempts, c.err, context.Cause(c.ctx))
	}
	for _, c := range []struct {
		job  *rivertype.JobRow
		err  error
		want string
	}{
		{job(1, 3), nil, "completed"},
		{job(1, 3), failure, "failed"},
		{job(3, 3), failure, "discarded"},
		{job(3, 3), river.JobCancel(failure), "cancelled"},
		{job(1, 3), river.JobSnooze(time.Minute), "snoozed"},
		{job(1, 1), river.JobSnooze(time.Minute), "snoozed"},
		{job(1, 3), riverseam.Discarded(failure), "discarded"},
		{job(1, 3), fmt.Errorf("wrapped: %w", riverseam.Discarded(failure)), "discarded"},
	} {
		require.Equal(t, c.want, telemetry.Outcome(t.Context(), c.job, c.err), "attempt %d/%d, %v", c.job.Attempt, c.job.MaxAttempts, c.err)
	}
}

// TestRiverLogger: River's info lines reach the log at debug only; its
// warnings and errors, and its attributes and groups, as they are.
func TestRiverLogger(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelInfo, []string{`"level":"WARN","msg":"fetch slow","component":"river"`, `"level":"ERROR","msg":"fetch failed","component":"river","g":{"n":1}`}},
		{slog.LevelDebug, []string{`"level":"DEBUG","msg":"Job errored; retrying","component":"river"`, `"level":"WARN","msg":"fetch slow"`, `"level":"ERROR","msg":"fetch failed"`}},
	} {
		var out bytes.Buffer
		logger := telemetry.RiverLogger(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{
			Level:       tc.level,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
		}))).With("component", "river")
		logger.Info("Job errored; retrying")
		logger.Warn("fetch slow")
		logger.WithGroup("g").Error("fetch failed", "n", 1)
		for _, w := range tc.want {
			require.Contains(t, out.String(), w, tc.level)
		}
		if tc.level == slog.LevelInfo {
			require.NotContains(t, out.String(), "Job errored", "River's info lines are debug")
		}
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// TestLogAttemptsDiscard: a worker's discard (riverseam.Discarded, River's
// JobCancel of its cause) logs as a discard at error, with the cause alone
// as its error.
func TestLogAttemptsDiscard(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) }}))
	mw, ok := telemetry.LogAttempts(logger).(rivertype.WorkerMiddleware)
	require.True(t, ok)
	job := &rivertype.JobRow{ID: 7, Kind: "http", Queue: "default", Attempt: 1, MaxAttempts: 25}
	err := mw.Work(t.Context(), job, func(context.Context) error {
		return riverseam.Discarded(errors.New("not run: its args cannot be decoded: boom"))
	})
	require.Error(t, err)
	require.Contains(t, out.String(), `"level":"ERROR","msg":"task attempt"`)
	require.Contains(t, out.String(), `"outcome":"discarded"`)
	require.Contains(t, out.String(), `"error":"not run: its args cannot be decoded: boom"`)
	require.NotContains(t, out.String(), "JobCancelError")
}
