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

// Outcome is how River will record an attempt that returned err, its
// context ctx: completed, cancelled (river.JobCancel, or the task cancelled
// while it ran: River's remote cancel), snoozed (river.JobSnooze),
// interrupted (the River client stopping cancelled the attempt, and River
// makes the task available again without counting the attempt), failed
// (retried later) or discarded (the last allowed attempt failed, or the
// worker discarded the job itself: riverseam.Discarded).
func Outcome(ctx context.Context, job *rivertype.JobRow, err error) string {
	var (
		cancelErr    *rivertype.JobCancelError
		snoozeErr    *rivertype.JobSnoozeError
		discardedErr interface{ Discarded() bool }
	)
	switch {
	case err == nil:
		return "completed"
	case errors.As(err, &discardedErr) && discardedErr.Discarded():
		return "discarded"
	case errors.As(err, &cancelErr), errors.Is(context.Cause(ctx), rivertype.ErrJobCancelledRemotely):
		// River records a remotely cancelled job's failure as its cancel,
		// whatever the worker returned.
		return "cancelled"
	case interrupted(ctx, err):
		return "interrupted"
	case errors.As(err, &snoozeErr):
		return "snoozed"
	case job.Attempt >= job.MaxAttempts:
		return "discarded"
	default:
		return "failed"
	}
}

// interrupted reports whether the attempt ended because its River client
// stopped: River cancels the context of the jobs still running with a cause
// of its own (an internal error, "stop initiated"), and puts a job whose
// worker returned that cancellation back to available (its soft stop). A
// cancellation with no cause, a deadline (the worker's timeout) and a remote
// cancel are not that.
func interrupted(ctx context.Context, err error) bool {
	if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
		return false
	}
	cause := context.Cause(ctx)
	return cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) &&
		!errors.Is(cause, rivertype.ErrJobCancelledRemotely)
}

// LogAttempts returns River middleware that logs one line per task attempt:
// task id, kind, queue, attempt, outcome, duration, the error if any, and
// the trace id when the attempt is traced. Completions and snoozes are
// logged at debug (a drain of 15,000 tasks a second would otherwise write
// as many lines, which cost a fifth of its CPU: docs/performance.md; the
// task's row keeps its history, and /metrics counts them), cancels and
// interruptions at info,
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
	outcome := Outcome(ctx, job, err)
	level := slog.LevelDebug
	switch outcome {
	case "cancelled", "interrupted":
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
		// A worker's discard is River's JobCancel of its cause: the line
		// says the cause, as the task's error does, not "JobCancelError".
		var discarded interface {
			Discarded() bool
			error
		}
		if errors.As(err, &discarded) && discarded.Discarded() {
			err = discarded
		}
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	l.logger.LogAttrs(ctx, level, "task attempt", attrs...)
}

// RiverLogger is the logger to give River: logger with River's info lines
// at debug. River logs at info what Handoff logs itself (an attempt that
// errored, which LogAttempts logs with its task) or what it counts (its
// producer's job counts every 5 s, which /metrics has), so that at
// LOG_LEVEL=info the log holds a line per request and per task attempt,
// and River's own warnings and errors (a fetch that failed) as they are.
func RiverLogger(logger *slog.Logger) *slog.Logger {
	return slog.New(infoAsDebug{logger.Handler()})
}

// infoAsDebug passes records on to its handler with info lowered to debug.
type infoAsDebug struct{ slog.Handler }

func (h infoAsDebug) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, lowerInfo(level))
}

func (h infoAsDebug) Handle(ctx context.Context, r slog.Record) error {
	r.Level = lowerInfo(r.Level)
	return h.Handler.Handle(ctx, r) //nolint:wrapcheck // a handler's error, passed on as slog expects
}

func (h infoAsDebug) WithAttrs(attrs []slog.Attr) slog.Handler {
	return infoAsDebug{h.Handler.WithAttrs(attrs)}
}

func (h infoAsDebug) WithGroup(name string) slog.Handler {
	return infoAsDebug{h.Handler.WithGroup(name)}
}

func lowerInfo(level slog.Level) slog.Level {
	if level == slog.LevelInfo {
		return slog.LevelDebug
	}
	return level
}
