package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"
)

// Outcome is how River will record an attempt that returned err: completed,
// cancelled (river.JobCancel), snoozed (river.JobSnooze), failed (retried
// later) or discarded (the last allowed attempt failed).
func Outcome(job *rivertype.JobRow, err error) string {
	var (
		cancelErr *rivertype.JobCancelError
		snoozeErr *rivertype.JobSnoozeError
	)
	switch {
	case err == nil:
		return "completed"
	case errors.As(err, &cancelErr):
		return "cancelled"
	case errors.As(err, &snoozeErr):
		return "snoozed"
	case job.Attempt >= job.MaxAttempts:
		return "discarded"
	default:
		return "failed"
	}
}

// LogAttempts returns River middleware that logs one line per task attempt:
// task id, kind, queue, attempt, outcome, duration, the error if any, and
// the trace id when the attempt is traced. Completions and snoozes are
// logged at debug (a drain of 15,000 tasks a second would otherwise write
// as many lines, which cost a fifth of its CPU: docs/performance.md; the
// task's row keeps its history, and /metrics counts them), cancels at info,
// failures at warn, discards at error. Install it after the tracing
// middleware, so that the attempt's span is in its context.
func LogAttempts(logger *slog.Logger) rivertype.Middleware {
	return &attemptLogger{logger: logger}
}

type attemptLogger struct {
	river.MiddlewareDefaults
	logger *slog.Logger
}

// Work runs the attempt and logs its line, also when the worker panics.
func (l *attemptLogger) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			l.log(ctx, job, start, fmt.Errorf("panic: %v", v))
			panic(v)
		}
		l.log(ctx, job, start, err)
	}()
	return doInner(ctx)
}

func (l *attemptLogger) log(ctx context.Context, job *rivertype.JobRow, start time.Time, err error) {
	outcome := Outcome(job, err)
	level := slog.LevelDebug
	switch outcome {
	case "cancelled":
		level = slog.LevelInfo
	case "failed":
		level = slog.LevelWarn
	case "discarded":
		level = slog.LevelError
	}
	if !l.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.Int64("task_id", job.ID),
		slog.String("kind", job.Kind),
		slog.String("queue", job.Queue),
		slog.Int("attempt", job.Attempt),
		slog.Int("max_attempts", job.MaxAttempts),
		slog.String("outcome", outcome),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	l.logger.LogAttrs(ctx, level, "task attempt", attrs...)
}
