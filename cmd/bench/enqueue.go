package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

const (
	// idleCooldown switches the enqueue server's workers off in effect: a
	// single worker that may fetch once an hour. Enqueue is then measured
	// alone, as its baseline is (which works nothing), instead of sharing
	// two cores with a drain the baseline does not have.
	idleCooldown = time.Hour

	enqueueWarmup = time.Second

	mib = 1 << 20
)

// enqueue measures figures 1, 2 and 7 (and, with the growth phase, enqueue
// throughput at 1 to 64 clients): POST /v1/tasks against the same two
// inserts done directly with pgx, on the same database, alternating in
// rounds so that drift hits both alike.
func (b *bench) enqueue(ctx context.Context) (err error) {
	opts := b.opts
	dbURL, pool, err := b.dbs.newDB(ctx, "enqueue", 0, opts.tune.dbMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The baseline writes the tasks row itself, as the API did before
	// migration 00010: its database is the same but for that trigger.
	baseURL, basePool, err := b.dbs.newDB(ctx, "enqueue_pgx", 0, opts.tune.dbMaxConns)
	if err != nil {
		return err
	}
	defer basePool.Close()
	if _, err := basePool.Exec(ctx, "DROP TRIGGER river_job_task_insert ON river_job"); err != nil {
		return fmt.Errorf("drop the insert trigger of the baseline's database: %w", err)
	}

	env := opts.tune.env()
	env["WORKERS"] = "1"
	env["FETCH_COOLDOWN"] = idleCooldown.String()
	env["FETCH_POLL_INTERVAL"] = idleCooldown.String()
	srv, err := b.servers.start(ctx, dbURL, env)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.servers.stop(srv)) }()

	// Insert-only River clients, as the server's API uses, with the same
	// cooldown: it rate-limits River's insert NOTIFY on every side alike.
	newInserter := func(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
		c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			FetchCooldown:     idleCooldown,
			FetchPollInterval: idleCooldown,
			Logger:            b.logger.With(slog.String("component", "river")),
		})
		if err != nil {
			return nil, fmt.Errorf("create River client: %w", err)
		}
		return c, nil
	}
	baseRiver, err := newInserter(basePool)
	if err != nil {
		return err
	}
	direct := &directEnqueuer{pool: basePool, river: baseRiver}
	svcRiver, err := newInserter(pool)
	if err != nil {
		return err
	}
	svc := task.NewService(pool, svcRiver, jobs.Kinds(jobs.Deps{}), nil)

	// Warm every path: connections, prepared statements, the server's heap.
	if _, err := direct.run(ctx, opts.clients, enqueueWarmup); err != nil {
		return fmt.Errorf("warm up direct enqueue: %w", err)
	}
	if _, err := serviceEnqueue(ctx, svc, opts.clients, enqueueWarmup); err != nil {
		return fmt.Errorf("warm up Service.Create: %w", err)
	}
	if _, err := httpEnqueue(ctx, srv.url, opts.clients, enqueueWarmup); err != nil {
		return fmt.Errorf("warm up HTTP enqueue: %w", err)
	}

	dbName := func(u string) (string, error) {
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			return "", fmt.Errorf("parse database URL: %w", err)
		}
		return cfg.Database, nil
	}
	apiDB, err := dbName(dbURL)
	if err != nil {
		return err
	}
	baseDB, err := dbName(baseURL)
	if err != nil {
		return err
	}
	// measure runs one window of load and adds where its CPU went to cpu.
	measure := func(cpu *cpuTimes, db string, load func() (loadResult, error)) (loadResult, error) {
		before, err := sampleCPU(db, srv.cmd.Process.Pid)
		if err != nil {
			return loadResult{}, err
		}
		res, err := load()
		if err != nil {
			return loadResult{}, err
		}
		after, err := sampleCPU(db, srv.cmd.Process.Pid)
		if err != nil {
			return loadResult{}, err
		}
		used := after.sub(before)
		cpu.postgres += used.postgres
		cpu.server += used.server
		cpu.bench += used.bench
		return res, nil
	}

	var (
		api, base, inproc      loadResult
		apiCPU, baseCPU, inCPU cpuTimes
	)
	for round := range opts.rounds {
		d, err := measure(&baseCPU, baseDB, func() (loadResult, error) { return direct.run(ctx, opts.clients, opts.enqueueWindow) })
		if err != nil {
			return fmt.Errorf("direct enqueue: %w", err)
		}
		h, err := measure(&apiCPU, apiDB, func() (loadResult, error) { return httpEnqueue(ctx, srv.url, opts.clients, opts.enqueueWindow) })
		if err != nil {
			return fmt.Errorf("HTTP enqueue: %w", err)
		}
		c, err := measure(&inCPU, apiDB, func() (loadResult, error) { return serviceEnqueue(ctx, svc, opts.clients, opts.enqueueWindow) })
		if err != nil {
			return fmt.Errorf("Service.Create: %w", err)
		}
		b.logger.Info("enqueue round", slog.Int("round", round+1), slog.Int("clients", opts.clients),
			slog.Float64("http_per_s", h.rate()), slog.Float64("direct_per_s", d.rate()), slog.Float64("service_per_s", c.rate()))
		base.add(d)
		api.add(h)
		inproc.add(c)
	}
	peak, err := srv.peakRSS()
	if err != nil {
		return err
	}

	clients := clientsLabel(opts.clients)
	r, v := ratio(api.rate(), base.rate())
	b.report.check(row{
		figure:   "enqueue throughput, " + clients,
		value:    perSec(api.rate()),
		baseline: perSec(base.rate()) + " pgx",
		ratio:    r,
		target:   "≥ 0.80",
	}, v >= 0.80)
	b.report.info(row{
		figure:   "enqueue latency p50, " + clients,
		value:    ms(api.lat.quantile(0.50)),
		baseline: ms(base.lat.quantile(0.50)) + " pgx",
	})
	p99 := api.lat.quantile(0.99)
	b.report.check(row{
		figure:   "enqueue latency p99, " + clients,
		value:    ms(p99),
		baseline: ms(base.lat.quantile(0.99)) + " pgx",
		target:   "≤ 25 ms",
	}, p99 <= 25*time.Millisecond)
	b.report.info(row{
		figure:   "CPU per task, enqueue, " + clients,
		value:    apiCPU.perTask(api.ops),
		baseline: baseCPU.perTask(base.ops) + " pgx",
	})
	r, _ = ratio(inproc.rate(), base.rate())
	b.report.info(row{
		figure:   "enqueue without HTTP (Service.Create), " + clients,
		value:    fmt.Sprintf("%s (p99 %s)", perSec(inproc.rate()), ms(inproc.lat.quantile(0.99))),
		baseline: perSec(base.rate()) + " pgx",
		ratio:    r,
	})
	b.report.info(row{
		figure:   "CPU per task, Service.Create, " + clients,
		value:    inCPU.perTask(inproc.ops),
		baseline: baseCPU.perTask(base.ops) + " pgx",
	})
	b.report.check(row{
		figure: "server peak RSS, enqueue run",
		value:  fmt.Sprintf("%.0f MiB", float64(peak)/mib),
		target: "≤ 150 MiB",
	}, peak <= 150*mib)

	if err := b.sqlEnqueue(ctx, pool); err != nil {
		return err
	}
	if !opts.phases["growth"] {
		return nil
	}
	for _, n := range opts.growthClients {
		d, err := direct.run(ctx, n, opts.growthWindow)
		if err != nil {
			return fmt.Errorf("direct enqueue: %w", err)
		}
		h, err := httpEnqueue(ctx, srv.url, n, opts.growthWindow)
		if err != nil {
			return fmt.Errorf("HTTP enqueue: %w", err)
		}
		r, _ := ratio(h.rate(), d.rate())
		b.report.info(row{
			figure:   "growth: enqueue, " + clientsLabel(n),
			value:    fmt.Sprintf("%s (p99 %s)", perSec(h.rate()), ms(h.lat.quantile(0.99))),
			baseline: perSec(d.rate()) + " pgx",
			ratio:    r,
		})
	}
	peak, err = srv.peakRSS()
	if err != nil {
		return err
	}
	b.report.info(row{
		figure: fmt.Sprintf("growth: server peak RSS, enqueue up to %d clients", opts.growthClients[len(opts.growthClients)-1]),
		value:  fmt.Sprintf("%.0f MiB", float64(peak)/mib),
	})
	return nil
}

func clientsLabel(n int) string {
	if n == 1 {
		return "1 client"
	}
	return strconv.Itoa(n) + " clients"
}
