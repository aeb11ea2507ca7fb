package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// The design phases are experiments outside the default run (-only=design),
// whose numbers docs/performance.md reports. They price the parts of the
// domain write and try alternatives the server does not have yet.

// designTriggers drains the work backlog with River alone, with and
// without recording an output, and with the server binary under each way
// of keeping tasks in step with river_job (triggerVariants).
func (b *bench) designTriggers(ctx context.Context) error {
	n := b.opts.workN
	bare, err := b.drainRiver(ctx, n, b.opts.drainLimit, false)
	if err != nil {
		return err
	}
	b.report.info(row{
		figure: fmt.Sprintf("design: River alone, %s bare jobs", countLabel(n)),
		value:  bare.String(),
	})
	recorded, err := b.drainRiver(ctx, n, b.opts.drainLimit, true)
	if err != nil {
		return err
	}
	r, _ := ratio(recorded.rate(), bare.rate())
	b.report.info(row{
		figure:   "design: River alone, RecordOutput",
		value:    recorded.String(),
		baseline: bare.String(),
		ratio:    r,
	})
	for _, variant := range triggerVariants() {
		res, err := b.drainServer(ctx, n, b.opts.drainLimit, variant)
		if err != nil {
			return err
		}
		r, v := ratio(res.rate(), bare.rate())
		b.report.check(row{
			figure:   "design: server, trigger=" + variant,
			value:    res.String(),
			baseline: bare.String(),
			ratio:    r,
			target:   "≥ 0.70",
		}, v >= 0.70)
	}
	return nil
}

// designCompletion runs the serve wiring in-process, as it is and with
// inlineCompleter, at the steady load of figures 4 and 5 and draining the
// work backlog, against River alone draining the same backlog.
func (b *bench) designCompletion(ctx context.Context) error {
	n := b.opts.workN
	bare, err := b.drainRiver(ctx, n, b.opts.drainLimit, false)
	if err != nil {
		return err
	}
	for _, mode := range completionModes() {
		pickup, e2e, err := b.replicaLatency(ctx, mode)
		if err != nil {
			return err
		}
		b.report.check(row{
			figure: fmt.Sprintf("design: completion=%s, pickup p99 / e2e p99 at %.0f/s", mode.name, b.opts.rate),
			value:  fmt.Sprintf("%s / %s", ms(pickup.quantile(0.99)), ms(e2e.quantile(0.99))),
			target: "≤ 25 / ≤ 50 ms",
		}, pickup.quantile(0.99) <= 25*time.Millisecond && e2e.quantile(0.99) <= 50*time.Millisecond)
		res, err := b.replicaDrain(ctx, n, mode)
		if err != nil {
			return err
		}
		r, v := ratio(res.rate(), bare.rate())
		b.report.check(row{
			figure:   "design: completion=" + mode.name + ", drain " + countLabel(n),
			value:    res.String(),
			baseline: bare.String() + " River",
			ratio:    r,
			target:   "≥ 0.70",
		}, v >= 0.70)
	}
	return nil
}

// completionMode is one way of completing jobs, tried in the replica.
type completionMode struct {
	name    string
	trigger string
	// idleBelow configures inlineCompleter; zero means River's batch
	// completer alone, as the server does today.
	idleBelow float64
}

func completionModes() []completionMode {
	return []completionMode{
		{name: "batched", trigger: triggerMigrated},
		{name: "inline<500/s", trigger: triggerMigrated, idleBelow: 500},
	}
}

// replicaLatency runs figures 4 and 5's steady load against the replica.
func (b *bench) replicaLatency(ctx context.Context, mode completionMode) (pickup, e2e latencies, err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "replica", 0, benchPoolConns)
	if err != nil {
		return nil, nil, err
	}
	defer pool.Close()
	if err := installTrigger(ctx, pool, mode.trigger); err != nil {
		return nil, nil, err
	}
	rep, completer, err := b.startReplica(ctx, dbURL, mode)
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, rep.stop()) }()
	pickup, e2e, err = b.steadyLoad(ctx, rep.url, pool, 1, b.opts.latencyWindow)
	if completer != nil {
		b.logger.Info("inline completions", slog.String("mode", mode.name), slog.Int64("inline", completer.inline.Load()))
	}
	return pickup, e2e, err
}

// replicaDrain drains n noop tasks with the replica, as drainServer does
// with the server binary.
func (b *bench) replicaDrain(ctx context.Context, n int, mode completionMode) (_ drainResult, err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "replica", 0, benchPoolConns)
	if err != nil {
		return drainResult{}, err
	}
	defer pool.Close()
	if err := installTrigger(ctx, pool, mode.trigger); err != nil {
		return drainResult{}, err
	}
	if err := loadBacklog(ctx, pool, n); err != nil {
		return drainResult{}, err
	}
	rep, completer, err := b.startReplica(ctx, dbURL, mode)
	if err != nil {
		return drainResult{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, rep.stop())
		}
	}()
	res, err := drain(ctx, pool, n, b.opts.drainLimit, func() error {
		stopped = true
		return rep.stop()
	})
	if err != nil {
		return drainResult{}, err
	}
	if _, err := verifyOnce(ctx, pool, n, res.partial); err != nil {
		return drainResult{}, err
	}
	var inline int64
	if completer != nil {
		inline = completer.inline.Load()
	}
	b.logger.Info("replica drain", slog.String("mode", mode.name), slog.Float64("per_s", res.rate()), slog.Int64("inline", inline))
	return res, nil
}

func (b *bench) startReplica(ctx context.Context, dbURL string, mode completionMode) (*replica, *inlineCompleter, error) {
	// The middleware completes jobs through the replica's pool, so the
	// pool is made first.
	pool, err := openPool(ctx, dbURL, b.opts.tune.dbMaxConns)
	if err != nil {
		return nil, nil, err
	}
	var (
		completer  *inlineCompleter
		middleware []rivertype.Middleware
	)
	if mode.idleBelow > 0 {
		completer = newInlineCompleter(pool, b.logger, mode.idleBelow)
		middleware = []rivertype.Middleware{completer}
	}
	rep, err := startReplica(ctx, pool, b.opts.tune, middleware, b.logger)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return rep, completer, nil
}
