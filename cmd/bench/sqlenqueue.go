package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// sqlEnqueue measures the SQL enqueue of issue 9 (README "Use Handoff from
// your app"): clients goroutines, each running an app's transaction that
// inserts a domain row and calls handoff.enqueue('noop', '{}'), against the
// same transaction without the enqueue. Both run on pool, the enqueue
// phase's database, whose server registered its kinds and works nothing;
// they alternate in rounds, and each side's windows are summed.
func (b *bench) sqlEnqueue(ctx context.Context, pool *pgxpool.Pool) error {
	opts := b.opts
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_orders (id bigserial PRIMARY KEY, note text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create the domain table: %w", err)
	}
	tx := func(enqueue bool) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO bench_orders (note) VALUES ($1)`, "card"); err != nil {
					return fmt.Errorf("insert domain row: %w", err)
				}
				if !enqueue {
					return nil
				}
				var id int64
				if err := tx.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}')`).Scan(&id); err != nil {
					return fmt.Errorf("handoff.enqueue: %w", err)
				}
				return nil
			})
		}
	}
	for _, enqueue := range []bool{false, true} {
		if _, err := closedLoop(ctx, opts.clients, enqueueWarmup, tx(enqueue)); err != nil {
			return fmt.Errorf("warm up SQL enqueue: %w", err)
		}
	}
	countTasks := func() (int, error) {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM tasks t JOIN river_job j USING (id)`).Scan(&n); err != nil {
			return 0, fmt.Errorf("count enqueued tasks: %w", err)
		}
		return n, nil
	}
	before, err := countTasks()
	if err != nil {
		return err
	}
	var with, without loadResult
	for round := range opts.rounds {
		order := []bool{true, false}
		if round%2 == 1 {
			order = []bool{false, true}
		}
		for _, enqueue := range order {
			res, err := closedLoop(ctx, opts.clients, opts.enqueueWindow, tx(enqueue))
			if err != nil {
				return fmt.Errorf("SQL enqueue (enqueue=%t): %w", enqueue, err)
			}
			if enqueue {
				with.add(res)
			} else {
				without.add(res)
			}
			b.logger.Info("sql enqueue round", slog.Int("round", round+1), slog.Bool("enqueue", enqueue), slog.Float64("per_s", res.rate()))
		}
	}
	after, err := countTasks()
	if err != nil {
		return err
	}
	r, _ := ratio(with.rate(), without.rate())
	clients := clientsLabel(opts.clients)
	b.report.info(row{
		figure:   "SQL enqueue in the app's transaction, " + clients,
		value:    fmt.Sprintf("%s (p99 %s)", perSec(with.rate()), ms(with.lat.quantile(0.99))),
		baseline: fmt.Sprintf("%s (p99 %s) without", perSec(without.rate()), ms(without.lat.quantile(0.99))),
		ratio:    r,
	})
	// Transactions that ended after a window's deadline committed too, but
	// are not counted in its rate: at most one per client and window.
	if made := after - before; made < with.ops || made > with.ops+opts.clients*opts.rounds {
		return fmt.Errorf("SQL enqueue: %d transactions counted, %d tasks with their job made", with.ops, made)
	}
	return nil
}
