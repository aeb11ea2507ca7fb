package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// replica is Handoff's serve wiring (cmd/server/serve.go: one pool, River
// with the task kinds' workers, the task service and the HTTP API) run
// inside the bench. The design phase uses it to try a change the server
// does not have yet, a River worker middleware, against the same wiring
// without it, in the same process and the same run.
type replica struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	http   *http.Server
	url    string
	served chan error
}

// startReplica starts the wiring on pool; stop closes the pool, and on an
// error the caller does.
func startReplica(ctx context.Context, pool *pgxpool.Pool, tune tuning, middleware []rivertype.Middleware, logger *slog.Logger) (*replica, error) {
	kinds := jobs.Kinds(jobs.Deps{Logger: logger, DB: pool})
	workers, err := jobs.Workers(kinds)
	if err != nil {
		return nil, fmt.Errorf("register workers: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		CompletedJobRetentionPeriod: 24 * time.Hour,
		FetchCooldown:               tune.fetchCooldown,
		FetchPollInterval:           tune.fetchPollInterval,
		JobTimeout:                  time.Minute,
		Logger:                      logger.With(slog.String("component", "river")),
		Middleware:                  middleware,
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: tune.workers}},
		RescueStuckJobsAfter:        2 * time.Minute,
		Workers:                     workers,
	})
	if err != nil {
		return nil, fmt.Errorf("create River client: %w", err)
	}
	listener, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	svc := task.NewService(pool, client, kinds, nil)
	r := &replica{
		pool:   pool,
		client: client,
		http:   &http.Server{Handler: httpapi.NewServer(logger, svc, nil), ReadHeaderTimeout: 10 * time.Second},
		url:    "http://" + listener.Addr().String(),
		served: make(chan error, 1),
	}
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		_ = listener.Close()
		return nil, fmt.Errorf("start River client: %w", err)
	}
	go func() { r.served <- r.http.Serve(listener) }()
	return r, nil
}

// stop stops the replica as serve does: HTTP, then River, then the pool.
func (r *replica) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	var errs []error
	if err := r.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop replica HTTP: %w", err))
	}
	if err := <-r.served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("replica HTTP: %w", err))
	}
	if err := r.client.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop replica River client: %w", err))
	}
	r.pool.Close()
	return errors.Join(errs...)
}

// inlineCompleter is the completion design the design phase measures.
//
// River completes jobs in batches: its completer flushes when 100
// completions are waiting, or otherwise every 250 ms. Under load that is
// what makes River fast (one UPDATE, and one set of trigger writes, for
// thousands of jobs). At low load it means a finished task shows completed
// up to 250 ms after its worker returned.
//
// This middleware completes a job in a transaction of its own the moment
// its worker returns (river.JobCompleteTx; the trigger copies the result to
// tasks in that same transaction, so the result is still recorded exactly
// once), but only while the process is quiet: while it finishes fewer
// than idleBelow jobs a second. Busier, it does nothing and River's batch
// completer takes the job, as today. The extra transactions are thus
// bounded by idleBelow a second and happen only when there is room for
// them, and a drain stays batched.
type inlineCompleter struct {
	river.MiddlewareDefaults

	pool   *pgxpool.Pool
	logger *slog.Logger
	rate   *rateMeter
	// idleBelow is in jobs per second.
	idleBelow float64
	inline    atomic.Int64
}

func newInlineCompleter(pool *pgxpool.Pool, logger *slog.Logger, idleBelow float64) *inlineCompleter {
	return &inlineCompleter{pool: pool, logger: logger, rate: &rateMeter{window: 100 * time.Millisecond}, idleBelow: idleBelow}
}

func (m *inlineCompleter) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if err := doInner(ctx); err != nil {
		return err
	}
	if m.rate.add() >= m.idleBelow {
		return nil
	}
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, &river.Job[rawArgs]{JobRow: job})
		return err
	})
	if err != nil {
		// Not an error of the task: returning nil hands the job to River's
		// completer, which completes it as it would have anyway.
		m.logger.WarnContext(ctx, "inline completion failed; River's completer will complete the job",
			slog.Int64("job_id", job.ID), slog.Any("error", err))
		return nil
	}
	m.inline.Add(1)
	return nil
}

// rawArgs lets JobCompleteTx handle a job of any kind: it decodes the
// completed row's args, which the middleware does not need.
type rawArgs struct{ json.RawMessage }

func (rawArgs) Kind() string { return "" }

// rateMeter estimates events per second over a sliding window, from the
// counts of the current and the previous fixed window.
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
