package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/telemetry"
)

// RiverMiddleware counts inserts and attempts. Install it first in
// river.Config.Middleware, so that it times and sees the outcome of
// everything the other middleware do.
func (m *Metrics) RiverMiddleware() rivertype.Middleware {
	return &riverMiddleware{m: m}
}

type riverMiddleware struct {
	river.MiddlewareDefaults
	m *Metrics
}

// InsertMany counts the jobs the insert made (not those skipped as
// duplicates by River's unique options).
func (rm *riverMiddleware) InsertMany(ctx context.Context, _ []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	results, err := doInner(ctx)
	if err != nil {
		return results, err
	}
	for _, res := range results {
		if res != nil && res.Job != nil && !res.UniqueSkippedAsDuplicate {
			rm.m.enqueued.WithLabelValues(res.Job.Kind, res.Job.Queue).Inc()
		}
	}
	return results, nil
}

// Work times the attempt and counts its outcome as River will record it
// (telemetry.Outcome): nil completes, JobCancel or a remote cancel cancels,
// JobSnooze snoozes, a stop of the client counts nothing, any other error
// (or a panic) fails the attempt, and the last allowed attempt's failure
// discards the task.
func (rm *riverMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	start := time.Now()
	if job.AttemptedAt != nil {
		rm.m.pickupWait.WithLabelValues(job.Queue).Observe(max(job.AttemptedAt.Sub(job.ScheduledAt), 0).Seconds())
	}
	running := rm.m.running.WithLabelValues(job.Queue)
	running.Inc()
	defer func() {
		running.Dec()
		rm.m.work.WithLabelValues(job.Kind).Observe(time.Since(start).Seconds())
		if v := recover(); v != nil {
			rm.m.countFailure(job)
			panic(v)
		}
		rm.m.countOutcome(ctx, job, err)
	}()
	return doInner(ctx)
}

func (m *Metrics) countOutcome(ctx context.Context, job *rivertype.JobRow, err error) {
	switch outcome := telemetry.Outcome(ctx, job, err); outcome {
	case "completed":
		m.completed.WithLabelValues(job.Kind, job.Queue).Inc()
	case "cancelled":
		m.cancelled.WithLabelValues(job.Kind, job.Queue).Inc()
	case "snoozed":
		m.snoozed.WithLabelValues(job.Kind, job.Queue).Inc()
	case "interrupted":
		// Not an attempt: River makes the task available again and does not
		// count it.
	case "failed":
		m.failed.WithLabelValues(job.Kind, job.Queue).Inc()
	case "discarded":
		// The last allowed attempt's failure, or a worker's discard
		// (riverseam.Discarded) at any attempt.
		m.failed.WithLabelValues(job.Kind, job.Queue).Inc()
		m.discarded.WithLabelValues(job.Kind, job.Queue).Inc()
	default:
		panic(fmt.Sprintf("metrics: unknown outcome %q", outcome))
	}
}

func (m *Metrics) countFailure(job *rivertype.JobRow) {
	m.failed.WithLabelValues(job.Kind, job.Queue).Inc()
	if job.Attempt >= job.MaxAttempts {
		m.discarded.WithLabelValues(job.Kind, job.Queue).Inc()
	}
}
