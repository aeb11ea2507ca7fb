package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// idleCooldown switches the enqueue servers' workers off in effect: a
	// single worker that may fetch once an hour. Enqueue is then measured
	// alone, as its baseline is (which works nothing), instead of sharing
	// two cores with a drain the baseline does not have.
	idleCooldown = time.Hour

	enqueueWarmup = time.Second

	// bulkSize and bulkClients shape the bulk figure: POST /v1/tasks/batch
	// with this many tasks per request, from this many clients.
	bulkSize    = 1000
	bulkClients = 4

	mib = 1 << 20
)

// enqueue measures issue 11's enqueue figures: POST /v1/tasks at 32
// clients against pgbench inserting the same two rows into trigger-free
// tables (the database's own limit), with group commit on (the default)
// and off (ENQUEUE_BATCH_MAX=1, a second server on the same database), and
// bulk enqueue through POST /v1/tasks/batch against single requests. The
// loads alternate in rounds, so that drift hits all alike.
func (b *bench) enqueue(ctx context.Context) (err error) {
	opts := b.opts
	dbURL, pool, err := b.dbs.newDB(ctx, "enqueue", 0, opts.tune.dbMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	dir, err := os.MkdirTemp("", "handoff-bench-pgbench-")
	if err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	pgb, err := newPgbench(ctx, pool, dbURL, dir)
	if err != nil {
		return err
	}
	wk, err := newWrk(dir, pool)
	if err != nil {
		return err
	}
	single := []byte(noopBody)
	post := func(s *server, clients int, d time.Duration) (wrkResult, error) {
		res, _, err := wk.post(ctx, s.url+"/v1/tasks", single, 0, clients, d, nil)
		return res, err
	}
	postBulk := func(s *server, d time.Duration) (wrkResult, error) {
		res, _, err := wk.post(ctx, s.url+"/v1/tasks/batch", bulkBody, bulkSize, bulkClients, d, nil)
		return res, err
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
	offEnv := maps.Clone(env)
	offEnv["ENQUEUE_BATCH_MAX"] = "1"
	off, err := b.servers.start(ctx, dbURL, offEnv)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.servers.stop(off)) }()

	// Warm every path: connections, prepared statements, the servers' heaps.
	if _, err := pgb.run(ctx, opts.clients, enqueueWarmup); err != nil {
		return fmt.Errorf("warm up pgbench: %w", err)
	}
	for _, s := range []*server{srv, off} {
		if _, err := post(s, opts.clients, enqueueWarmup); err != nil {
			return fmt.Errorf("warm up HTTP enqueue: %w", err)
		}
	}
	if _, err := postBulk(srv, enqueueWarmup); err != nil {
		return fmt.Errorf("warm up bulk enqueue: %w", err)
	}

	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	// measure runs one window of load against s and adds where its CPU
	// went to cpu.
	measure := func(cpu *cpuTimes, s *server) (wrkResult, error) {
		res, used, err := wk.post(ctx, s.url+"/v1/tasks", single, 0, opts.clients, opts.enqueueWindow,
			func() (*cpuMeter, error) { return startCPU(cfg.Database, s.cmd.Process.Pid) })
		if err != nil {
			return wrkResult{}, err
		}
		*cpu = cpu.add(used)
		return res, nil
	}

	var (
		on, alone, bulk wrkResult
		onCPU, offCPU   cpuTimes
		pgTx, pgSecs    float64
	)
	for round := range opts.rounds {
		tps, err := pgb.run(ctx, opts.clients, opts.enqueueWindow)
		if err != nil {
			return err
		}
		pgTx += tps * opts.enqueueWindow.Seconds()
		pgSecs += opts.enqueueWindow.Seconds()
		h, err := measure(&onCPU, srv)
		if err != nil {
			return fmt.Errorf("HTTP enqueue: %w", err)
		}
		o, err := measure(&offCPU, off)
		if err != nil {
			return fmt.Errorf("HTTP enqueue, group commit off: %w", err)
		}
		k, err := postBulk(srv, opts.enqueueWindow)
		if err != nil {
			return fmt.Errorf("bulk enqueue: %w", err)
		}
		b.logger.Info("enqueue round", slog.Int("round", round+1), slog.Int("clients", opts.clients),
			slog.Float64("http_per_s", h.rate()), slog.Float64("http_off_per_s", o.rate()),
			slog.Float64("pgbench_tps", tps), slog.Float64("bulk_per_s", k.rate()))
		on.add(h)
		alone.add(o)
		bulk.add(k)
	}
	peak, err := srv.peakRSS()
	if err != nil {
		return err
	}

	clients := clientsLabel(opts.clients)
	pgRate := pgTx / pgSecs
	r, v := ratio(on.rate(), pgRate)
	b.report.check(row{
		figure:   "enqueue, " + clients,
		value:    perSec(on.rate()),
		baseline: perSec(pgRate) + " pgbench",
		ratio:    r,
		target:   "≥ 1.0",
	}, v >= 1.0)
	b.report.info(row{
		figure:   "enqueue latency p50, " + clients,
		value:    ms(on.p50()),
		baseline: ms(alone.p50()) + " group commit off",
	})
	p99 := on.p99()
	b.report.check(row{
		figure:   "enqueue latency p99, " + clients,
		value:    ms(p99),
		baseline: ms(alone.p99()) + " group commit off",
		target:   "≤ 15 ms",
	}, p99 <= 15*time.Millisecond)
	r, _ = ratio(on.rate(), alone.rate())
	b.report.info(row{
		figure:   "group commit on vs off, " + clients,
		value:    fmt.Sprintf("%s (p99 %s)", perSec(on.rate()), ms(p99)),
		baseline: fmt.Sprintf("%s (p99 %s) off", perSec(alone.rate()), ms(alone.p99())),
		ratio:    r,
	})
	b.report.info(row{
		figure:   "CPU per task, enqueue, " + clients,
		value:    onCPU.perTask(on.requests),
		baseline: offCPU.perTask(alone.requests) + " off",
	})
	best := max(on.rate(), alone.rate())
	r, v = ratio(bulk.rate(), best)
	b.report.check(row{
		figure:   fmt.Sprintf("bulk enqueue, %d per request, %s", bulkSize, clientsLabel(bulkClients)),
		value:    perSec(bulk.rate()),
		baseline: fmt.Sprintf("%s single requests (%s, group commit off)", perSec(best), perSec(alone.rate())),
		ratio:    r,
		target:   "≥ 5",
	}, v >= 5)
	b.report.check(row{
		figure: "server peak RSS, enqueue run",
		value:  fmt.Sprintf("%.0f MiB", float64(peak)/mib),
		target: "≤ 150 MiB",
	}, peak <= 150*mib)

	if err := b.sqlEnqueue(ctx, pool); err != nil {
		return err
	}
	// The SQL enqueue wrote tasks of its own: the next post counts afresh.
	wk.tasks = -1
	if !opts.phases["growth"] {
		return nil
	}
	for _, n := range opts.growthClients {
		tps, err := pgb.run(ctx, n, opts.growthWindow)
		if err != nil {
			return err
		}
		h, err := post(srv, n, opts.growthWindow)
		if err != nil {
			return fmt.Errorf("HTTP enqueue: %w", err)
		}
		r, _ := ratio(h.rate(), tps)
		b.report.info(row{
			figure:   "growth: enqueue, " + clientsLabel(n),
			value:    fmt.Sprintf("%s (p99 %s)", perSec(h.rate()), ms(h.p99())),
			baseline: perSec(tps) + " pgbench",
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

// bulkBody is a POST /v1/tasks/batch body of bulkSize noop tasks.
var bulkBody = []byte(`{"tasks": [` + strings.TrimSuffix(strings.Repeat(noopBody+",", bulkSize), ",") + `]}`)

func clientsLabel(n int) string {
	if n == 1 {
		return "1 client"
	}
	return strconv.Itoa(n) + " clients"
}
