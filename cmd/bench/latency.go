package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// visibleTimeout bounds the wait for one task to show completed.
	visibleTimeout = 10 * time.Second
	latencyWarmup  = 2 * time.Second
)

// latency measures figures 4 and 5 on the server binary at a steady
// offered rate over HTTP; steadyLoad says how.
func (b *bench) latency(ctx context.Context) (err error) {
	opts := b.opts
	var pairs latencies
	pickup, e2e, err := b.serverLatency(ctx, nil, func(srv *server, pool *pgxpool.Pool) error {
		// Pairs at the same rate: River wakes a worker through one NOTIFY
		// per FETCH_COOLDOWN, so the second task of a pair can miss the
		// fetch the first one woke and wait for the next wake-up, at worst
		// the FETCH_POLL_INTERVAL poll. Not a target of the issue, but what
		// a web request enqueuing two tasks sees.
		var err error
		pairs, _, err = b.steadyLoad(ctx, srv.url, pool, 2, opts.latencyWindow/2)
		return err
	})
	if err != nil {
		return err
	}
	load := fmt.Sprintf("%.0f/s", opts.rate)
	p50, p99, pmax := pickup.quantile(0.50), pickup.quantile(0.99), pickup.quantile(1)
	b.report.check(row{
		figure: fmt.Sprintf("pickup latency p50, %s (%d tasks)", load, len(pickup)),
		value:  ms(p50),
		target: "≤ 2 ms",
	}, p50 <= 2*time.Millisecond)
	b.report.check(row{
		figure: "pickup latency p99, " + load,
		value:  ms(p99),
		target: "≤ 5 ms",
	}, p99 <= 5*time.Millisecond)
	b.report.check(row{
		figure: "pickup latency max, " + load,
		value:  ms(pmax),
		target: "≤ 14 ms",
	}, pmax <= 14*time.Millisecond)
	b.report.info(row{
		figure: fmt.Sprintf("pickup latency p50 / p99 / max, %s in pairs", load),
		value:  fmt.Sprintf("%s / %s / %s", ms(pairs.quantile(0.5)), ms(pairs.quantile(0.99)), ms(pairs.quantile(1))),
	})
	b.report.info(row{
		figure: fmt.Sprintf("end-to-end p50, %s (%d sampled)", load, len(e2e)),
		value:  ms(e2e.quantile(0.50)),
	})
	e99 := e2e.quantile(0.99)
	b.report.check(row{
		figure: "end-to-end p99, " + load,
		value:  ms(e99),
		target: "≤ 50 ms",
	}, e99 <= 50*time.Millisecond)
	return nil
}

// serverLatency starts the server, with env added to its environment, on a
// fresh database and returns what steadyLoad measures on it; then runs
// more, if given, against the same server.
func (b *bench) serverLatency(ctx context.Context, env map[string]string, more ...func(*server, *pgxpool.Pool) error) (pickup, e2e latencies, err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "latency", 0, benchPoolConns)
	if err != nil {
		return nil, nil, err
	}
	defer pool.Close()
	serverEnv := b.opts.tune.env()
	maps.Copy(serverEnv, env)
	srv, err := b.servers.start(ctx, dbURL, serverEnv)
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, b.servers.stop(srv)) }()

	if pickup, e2e, err = b.steadyLoad(ctx, srv.url, pool, 1, b.opts.latencyWindow); err != nil {
		return nil, nil, err
	}
	for _, f := range more {
		if err := f(srv, pool); err != nil {
			return nil, nil, err
		}
	}
	return pickup, e2e, nil
}

// steadyLoad offers noop tasks at opts.rate over HTTP to the server at
// base for opts.latencyWindow, after a warm-up, and returns the pickup
// latency of every task and the end-to-end latency of a sample.
//
// Pickup comes from the database: river_job's attempted_at (the fetch that
// hands the job to a worker) minus created_at (the start of the API's
// insert transaction, which precedes the 202, so the figure slightly
// overstates the 202-to-start time).
//
// End-to-end is observed as a client would: for one task in sampleEvery,
// the bench polls GET /v1/tasks/{id} every pollInterval from the 202 until
// it answers completed; the figure is the time from receiving the 202 to
// receiving that answer, so it includes up to one poll interval and one GET
// of measuring slack.
//
// With burst > 1 the same rate comes in bursts: every burst/rate seconds,
// burst tasks posted back to back, as a web request that enqueues several
// tasks does. End-to-end is not sampled then.
func (b *bench) steadyLoad(ctx context.Context, base string, pool *pgxpool.Pool, burst int, window time.Duration) (pickup, e2e latencies, err error) {
	opts := b.opts
	client := newHTTPClient(64)
	defer client.CloseIdleConnections()
	var (
		mu  sync.Mutex
		ids []int64
	)
	offer := func(measure bool) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			var id int64
			for range burst {
				var err error
				if id, err = postTask(ctx, client, base); err != nil {
					return err
				}
				if measure {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}
			accepted := time.Now()
			if !measure || burst > 1 || i%opts.sampleEvery != 0 {
				return nil
			}
			for {
				state, err := getTaskState(ctx, client, base, id)
				if err != nil {
					return err
				}
				if state == "completed" {
					break
				}
				if time.Since(accepted) > visibleTimeout {
					return fmt.Errorf("task %d still %s %s after its 202", id, state, visibleTimeout)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(opts.pollInterval):
				}
			}
			seen := time.Since(accepted)
			mu.Lock()
			e2e = append(e2e, seen)
			mu.Unlock()
			return nil
		}
	}
	// The warm-up lets River's producer, the pools and the server's heap
	// reach their steady state before anything is recorded.
	ticks := opts.rate / float64(burst)
	if err := openLoop(ctx, ticks, latencyWarmup, offer(false)); err != nil {
		return nil, nil, fmt.Errorf("warm up: %w", err)
	}
	if err := openLoop(ctx, ticks, window, offer(true)); err != nil {
		return nil, nil, fmt.Errorf("steady load: %w", err)
	}

	// The last tasks offered may not have started yet.
	for deadline := time.Now().Add(visibleTimeout); ; {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id = ANY($1) AND attempted_at IS NULL`, ids).Scan(&waiting); err != nil {
			return nil, nil, fmt.Errorf("wait for pickups: %w", err)
		}
		if waiting == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("wait for pickups: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	rows, err := pool.Query(ctx, `SELECT extract(epoch FROM attempted_at - created_at)::float8
		FROM river_job WHERE id = ANY($1) AND attempted_at IS NOT NULL`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("read pickup times: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s float64
		if err := rows.Scan(&s); err != nil {
			return nil, nil, fmt.Errorf("read pickup times: %w", err)
		}
		pickup = append(pickup, time.Duration(s*float64(time.Second)))
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read pickup times: %w", err)
	}
	if len(pickup) != len(ids) {
		return nil, nil, fmt.Errorf("only %d of %d tasks were picked up", len(pickup), len(ids))
	}
	b.logger.Info("steady load", slog.Int("burst", burst), slog.Float64("offered_per_s", float64(len(ids))/window.Seconds()),
		slog.Int("tasks", len(ids)), slog.Int("e2e_samples", len(e2e)),
		slog.Duration("pickup_p99", pickup.quantile(0.99)), slog.Duration("e2e_p99", e2e.quantile(0.99)))
	return pickup, e2e, nil
}
