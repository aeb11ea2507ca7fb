package riverseam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// DefaultIdleBelow is the rate, in jobs a second, under which Middleware
// completes jobs itself: up to 500 transactions a second of three round
// trips each, a small share of what a 2-core Postgres commits. River's own
// completer checks every 50 ms and writes once 100 completions wait, so
// between about 500 and 2,000 jobs a second a task can still take up to
// 250 ms to show completed, and above that at most about 50 ms.
const DefaultIdleBelow = 500

// completeTimeout bounds one completion at once.
const completeTimeout = 2 * time.Second

// rateWindow is the window over which the completion rate is measured:
// short enough to step aside within a fraction of a second when a burst
// begins.
const rateWindow = 100 * time.Millisecond

// Middleware is Handoff's River worker middleware (add it to
// river.Config.Middleware). It does two things River has no option for.
//
// It marks every outcome with the attempt that produced it: before the
// worker runs, it records MetadataKeyAttempt = job.Attempt with
// river.MetadataSet, which River merges into the job's metadata with the
// outcome, whatever it is (completed, failed, snoozed, cancelled,
// interrupted), and with a worker's own JobCompleteTx. Migration 00011's
// guard trigger makes an update that carries another attempt's marker a
// no-op, so a completion of attempt N that lands late can never finish
// attempt N+1, whoever retried the job.
//
// And it completes a job the moment its worker returns, while the process is
// quiet, so that a task shows completed within milliseconds instead of up to
// a quarter of a second later. River completes jobs in batches: its
// completer writes when 100 completions wait (it looks every 50 ms), or
// otherwise every 250 ms (fixed in River). Under load that is what makes
// River fast: one UPDATE, and one run of Handoff's sync trigger, for
// thousands of jobs. At a light load it is most of a task's end-to-end
// latency (measured: p99 ~240 ms at 100 tasks/s, docs/performance.md).
// Middleware completes a job in a transaction of its own as soon as its
// worker returns, with river.JobCompleteTx. That call carries what the worker
// recorded with river.RecordOutput, and the sync trigger copies it to tasks
// in the same transaction, so a result is still written exactly once. River's
// completer still writes its own completion of the job, up to 250 ms later
// (seconds, if its batch fails and is retried): it finds the job no longer
// running and changes nothing but to merge the same output into the job's
// metadata again; were the job running its next attempt by then, the guard
// skips it. The middleware completes at once only while the process
// finishes fewer than IdleBelow jobs a second: busier, it steps aside and
// River batches as usual, so the extra transactions are bounded and a drain
// keeps its throughput.
//
// It completes through its own pool, so it is for a River client that works
// jobs in the database, not for rivertest.Worker's jobs inside a test's
// transaction.
type Middleware struct {
	river.MiddlewareDefaults

	pool      *pgxpool.Pool
	logger    *slog.Logger
	idleBelow float64
	rate      rateMeter
	inline    atomic.Int64

	// CheckArgs, when set, tells whether a job's args decode for its kind
	// (jobs.CheckArgs), as River decodes them before the worker runs, and
	// pass the kind's Validate (else an error wrapping ErrArgsInvalid). It
	// is asked only when an attempt fails; a job whose args do not decode,
	// or are invalid, is discarded at once instead of retried.
	CheckArgs func(kind string, encodedArgs []byte) error
}

// NewMiddleware returns a Middleware that completes jobs through pool while fewer than
// idleBelow jobs a second finish in this process. idleBelow 0 disables it.
func NewMiddleware(pool *pgxpool.Pool, logger *slog.Logger, idleBelow float64) *Middleware {
	return &Middleware{pool: pool, logger: logger, idleBelow: idleBelow, rate: rateMeter{window: rateWindow}}
}

// Inline is how many jobs the middleware has completed itself.
func (m *Middleware) Inline() int64 { return m.inline.Load() }

// Work runs the job and, if it succeeded and the process is quiet, completes
// it at once.
func (m *Middleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if err := MarkAttempt(ctx, job); err != nil {
		return err
	}
	if err := doInner(ctx); err != nil {
		if m.CheckArgs != nil {
			if argsErr := m.CheckArgs(job.Kind, job.EncodedArgs); argsErr != nil {
				return m.discardUndecodable(ctx, job, argsErr, err)
			}
		}
		return err
	}
	if m.rate.add() >= m.idleBelow {
		return nil
	}
	// The job's own context may end (its timeout) now that its work is
	// done; the completion gets a short bound of its own instead, after
	// which River's completer takes over.
	completeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	defer cancel()
	var completed *river.Job[anyArgs]
	err := pgx.BeginFunc(completeCtx, m.pool, func(tx pgx.Tx) error {
		var err error
		completed, err = river.JobCompleteTx[*riverpgxv5.Driver](completeCtx, tx, &river.Job[anyArgs]{JobRow: job})
		return err
	})
	if err != nil {
		// Not the task's failure: returning nil hands the job to River's
		// completer, which completes it as it would have anyway.
		m.logger.WarnContext(ctx, "completing at once failed; River's completer will complete the job",
			slog.Int64("job_id", job.ID), slog.Any("error", err))
		return nil
	}
	if completed.State != rivertype.JobStateCompleted {
		// The job was not this attempt's to complete any more (rescued and
		// running again: the guard skipped the update, and River read the
		// row back as it stands). River's completer will find the same.
		m.logger.WarnContext(ctx, "job not completed at once: it no longer runs this attempt",
			slog.Int64("job_id", job.ID), slog.Int("attempt", job.Attempt), slog.String("state", string(completed.State)))
		return nil
	}
	m.inline.Add(1)
	return nil
}

// ErrArgsInvalid marks args that decode but that their kind's Validate
// refuses: "its args are invalid: <Validate's reasons>".
var ErrArgsInvalid = errors.New("its args are invalid")

// discardUndecodable ends a job whose args its worker can never decode
// discarded at once, with why as its last error, rather than retrying it
// until its attempts are used up: the args of a job inserted by SQL
// (handoff.enqueue checks only their top-level fields) or straight into
// river_job. If the discard cannot be written, the attempt fails with err
// as it would have.
func (m *Middleware) discardUndecodable(ctx context.Context, job *rivertype.JobRow, why, err error) error {
	cause := fmt.Errorf("not run: its args cannot be decoded: %w", why)
	if errors.Is(why, ErrArgsInvalid) {
		cause = fmt.Errorf("not run: %w", why)
	}
	discardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	defer cancel()
	discardErr := pgx.BeginFunc(discardCtx, m.pool, func(tx pgx.Tx) error {
		_, err := JobDiscardTx(discardCtx, tx, job, cause, nil)
		return err
	})
	if discardErr != nil {
		m.logger.WarnContext(ctx, "job with undecodable args could not be discarded; failing the attempt instead",
			slog.Int64("job_id", job.ID), slog.Any("error", discardErr))
		return err
	}
	return Discarded(cause)
}

// MarkAttempt records, in the metadata River merges with this attempt's
// outcome, the attempt that produces it (see Middleware). It is for a
// worker's context; Middleware calls it for every job.
func MarkAttempt(ctx context.Context, job *rivertype.JobRow) error {
	if err := river.MetadataSet(ctx, MetadataKeyAttempt, job.Attempt); err != nil {
		return fmt.Errorf("mark attempt: %w", err)
	}
	return nil
}

// anyArgs lets JobCompleteTx take a job of any kind; it decodes the
// completed row's args, which are not needed here.
type anyArgs struct{ json.RawMessage }

func (anyArgs) Kind() string { return "" }

// rateMeter estimates events a second over a sliding window, from the counts
// of the current and the previous fixed window.
type rateMeter struct {
	window time.Duration

	mu        sync.Mutex
	start     time.Time
	cur, prev float64
}

// add counts one event and returns the rate including it.
func (r *rateMeter) add() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	switch elapsed := now.Sub(r.start); {
	case elapsed >= 2*r.window:
		r.start, r.cur, r.prev = now, 0, 0
	case elapsed >= r.window:
		r.start, r.prev, r.cur = r.start.Add(r.window), r.cur, 0
	}
	r.cur++
	weight := 1 - float64(now.Sub(r.start))/float64(r.window)
	return (r.prev*weight + r.cur) / r.window.Seconds()
}
