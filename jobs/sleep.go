package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
)

// SleepMaxSeconds bounds a sleep task, as the contract fixes.
const SleepMaxSeconds = 3600

// SleepArgs are the args of kind "sleep", the stand-in for a long task: it
// fails its first FailTimes attempts, then sleeps, reporting progress.
type SleepArgs struct {
	// Seconds is how long to sleep, 0 to SleepMaxSeconds; fractions allowed.
	Seconds *float64 `json:"seconds" handoff:"required,min=0,max=3600"`
	// FailTimes is how many attempts fail before one succeeds.
	FailTimes int `json:"fail_times,omitempty" handoff:"min=0,max=100"`
}

// Kind returns "sleep".
func (SleepArgs) Kind() string { return "sleep" }

// Validate checks the bounds of seconds and fail_times.
func (a SleepArgs) Validate() error {
	errs := ArgsError{}
	switch {
	case a.Seconds == nil:
		errs["seconds"] = "is required"
	case math.IsNaN(*a.Seconds) || *a.Seconds < 0 || *a.Seconds > SleepMaxSeconds:
		errs["seconds"] = fmt.Sprintf("must be between 0 and %d", SleepMaxSeconds)
	}
	if a.FailTimes < 0 || a.FailTimes > 100 {
		errs["fail_times"] = "must be between 0 and 100"
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (a SleepArgs) duration() time.Duration {
	if a.Seconds == nil {
		return 0
	}
	return time.Duration(*a.Seconds * float64(time.Second))
}

// SleepResult is the result of a sleep task.
type SleepResult struct {
	SleptMS int64 `json:"slept_ms"`
	Attempt int   `json:"attempt"`
}

// SleepWorker works sleep tasks.
type SleepWorker struct {
	river.WorkerDefaults[SleepArgs]

	// Progress receives progress reports; nil disables them.
	Progress ProgressWriter
	// Logger logs failed progress writes.
	Logger *slog.Logger
	// ProgressEvery is the time between progress reports, which the
	// ProgressReporter throttles to its own rate; zero means 250 ms.
	ProgressEvery time.Duration
}

// Timeout lets a sleep run its full length plus a margin. River's rescuer
// also leaves a running job alone until this has elapsed.
func (w *SleepWorker) Timeout(job *river.Job[SleepArgs]) time.Duration {
	return job.Args.duration() + 10*time.Second
}

// NextRetry backs off exponentially from one second, capped at one minute,
// with 10% jitter. The sleep kind exists to exercise retries, so its retries
// come sooner than River's default (attempt⁴ seconds).
func (w *SleepWorker) NextRetry(job *river.Job[SleepArgs]) time.Time {
	backoff := min(time.Duration(1<<min(job.Attempt-1, 6))*time.Second, time.Minute)
	jitter := time.Duration(rand.Int64N(int64(backoff / 10))) //nolint:gosec // jitter needs no cryptographic randomness
	return time.Now().Add(backoff + jitter)
}

// Work fails while attempts remain in FailTimes, then sleeps, reporting
// progress, and records the result. A cancelled context stops the sleep.
func (w *SleepWorker) Work(ctx context.Context, job *river.Job[SleepArgs]) error {
	if job.Attempt <= job.Args.FailTimes {
		return fmt.Errorf("planned failure: attempt %d of %d set to fail", job.Attempt, job.Args.FailTimes)
	}

	total := job.Args.duration()
	every := w.ProgressEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	reporter := NewProgressReporter(w.Progress, w.Logger, job.ID, 0)
	start := time.Now()
	done := time.NewTimer(total)
	defer done.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()

	for finished := false; !finished; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sleep interrupted after %s: %w", time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-tick.C:
			reporter.Report(ctx, sleepProgress(time.Since(start), total))
		case <-done.C:
			finished = true
		}
	}

	slept := time.Since(start)
	// The last report lands before the result: a page never shows a
	// completed task with its bar short of 100%.
	reporter.Report(ctx, sleepProgress(total, total))
	reporter.Flush(ctx)
	return RecordResult(ctx, SleepResult{SleptMS: slept.Milliseconds(), Attempt: job.Attempt})
}

// sleepProgress reports a sleep in milliseconds.
func sleepProgress(done, total time.Duration) Progress {
	done = min(done, total)
	return Progress{
		Done:    float64(done.Milliseconds()),
		Total:   float64(total.Milliseconds()),
		Message: fmt.Sprintf("slept %.1f s of %.1f s", done.Seconds(), total.Seconds()),
	}
}
