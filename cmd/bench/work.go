package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/jobs"
)

const (
	// benchPoolConns is the size of the bench's own pools for loading and
	// watching a database, apart from the connections under test.
	benchPoolConns = 4

	// drainPoll is how often a drain's end is looked for: its granularity
	// is part of the measured time (50 ms of a 10 s drain is 0.5%), and an
	// EXISTS probe of River's fetch index this often costs next to nothing.
	drainPoll = 50 * time.Millisecond
)

// riverFetchCooldown is the River baseline's FetchCooldown, as the issue
// sets it (10 ms, River's fastest on this machine with many workers).
const riverFetchCooldown = 10 * time.Millisecond

// drainResult is what one drain of a backlog measured (see drain).
type drainResult struct {
	backlog   int
	completed int
	elapsed   time.Duration
	// partial is set when the time limit ended the drain early.
	partial bool
	// cpu is the CPU the drain used (see sampleCPU), read when the drain
	// was seen done: a robust figure on a busy machine, where rates drift.
	cpu cpuTimes
}

func (d drainResult) rate() float64 {
	if d.elapsed <= 0 {
		return 0
	}
	return float64(d.completed) / d.elapsed.Seconds()
}

// add accumulates another drain of the same backlog.
func (d *drainResult) add(o drainResult) {
	d.backlog = o.backlog
	d.completed += o.completed
	d.elapsed += o.elapsed
	d.partial = d.partial || o.partial
	d.cpu = d.cpu.add(o.cpu)
}

// cpuPerTask is the CPU per completed task, all processes together.
func (d drainResult) cpuPerTask() time.Duration {
	if d.completed == 0 {
		return 0
	}
	return (d.cpu.postgres + d.cpu.server + d.cpu.bench) / time.Duration(d.completed)
}

func (d drainResult) String() string {
	s := perSec(d.rate())
	if d.partial {
		s += fmt.Sprintf(" (%s of %s in %s)", countLabel(d.completed), countLabel(d.backlog), d.elapsed.Round(time.Second))
	}
	return s
}

// work measures figure 3: the server draining a backlog of noop tasks at
// its production defaults, results recorded exactly once, against bare
// River at its best on this machine draining the same backlog of bare jobs.
//
// River's best: one drain at each MaxWorkers of -river-workers (500 to
// 5000, FetchCooldown 10 ms), then the fastest setting is the
// baseline. With two rounds the drains then run server, River, River,
// server, so that a drift of the machine's speed during the phase weighs on
// both sides alike; the baseline is the mean of those River drains.
func (b *bench) work(ctx context.Context) error {
	n := b.opts.workN
	var (
		bestWorkers int
		best        drainResult
		sweep       []string
	)
	for _, w := range b.opts.riverWorkers {
		tune := b.opts.tune
		tune.workers = w
		tune.fetchCooldown = riverFetchCooldown
		res, err := b.drainRiver(ctx, n, b.opts.drainLimit, tune, false)
		if err != nil {
			return err
		}
		sweep = append(sweep, fmt.Sprintf("%d: %s", w, res))
		if res.rate() > best.rate() {
			best, bestWorkers = res, w
		}
	}
	b.report.info(row{
		figure: fmt.Sprintf("River alone by MaxWorkers, %s bare jobs", countLabel(n)),
		value:  strings.Join(sweep, ", "),
	})
	riverTune := b.opts.tune
	riverTune.workers = bestWorkers
	riverTune.fetchCooldown = riverFetchCooldown

	var handoff, alone drainResult
	for round := range b.opts.workRounds {
		serverFirst := round%2 == 0
		for _, server := range []bool{serverFirst, !serverFirst} {
			if server {
				res, err := b.drainServer(ctx, n, b.opts.drainLimit, nil)
				if err != nil {
					return err
				}
				handoff.add(res)
				continue
			}
			res, err := b.drainRiver(ctx, n, b.opts.drainLimit, riverTune, false)
			if err != nil {
				return err
			}
			alone.add(res)
		}
	}
	b.drained[n] = handoff
	r, v := ratio(handoff.rate(), alone.rate())
	rw := row{
		figure:   fmt.Sprintf("drain, %s noop backlog, defaults", countLabel(n)),
		value:    handoff.String(),
		baseline: fmt.Sprintf("%s River at MaxWorkers %d", alone, bestWorkers),
		ratio:    r,
		target:   "≥ 0.80",
	}
	if handoff.partial || alone.partial {
		rw.note = fmt.Sprintf("work: a drain hit its %s limit; rates are over what completed", b.opts.drainLimit)
	}
	b.report.check(rw, v >= 0.80)
	// The same comparison by CPU, which a busy machine disturbs less than
	// wall-clock rates: River's CPU per task over the server's.
	rc, _ := ratio(float64(alone.cpuPerTask()), float64(handoff.cpuPerTask()))
	b.report.info(row{
		figure:   "drain CPU per task (Postgres + process), River / server",
		value:    fmt.Sprintf("%.1f µs (%s)", float64(handoff.cpuPerTask())/1e3, handoff.cpu.perTask(handoff.completed)),
		baseline: fmt.Sprintf("%.1f µs River", float64(alone.cpuPerTask())/1e3),
		ratio:    rc,
	})
	// What a River user writes to get what Handoff gives: a result row
	// written in the transaction that completes the job. One drain, after
	// the rounds, at River's best MaxWorkers.
	recorded, err := b.drainRiver(ctx, n, b.opts.drainLimit, riverTune, true)
	if err != nil {
		return err
	}
	rr, _ := ratio(handoff.rate(), recorded.rate())
	b.report.info(row{
		figure: "drain against River recording each result itself (JobCompleteTx)",
		value:  handoff.String(),
		baseline: fmt.Sprintf("%s River at MaxWorkers %d, %.1f µs a task (%s)", recorded, bestWorkers,
			float64(recorded.cpuPerTask())/1e3, recorded.cpu.perTask(recorded.completed)),
		ratio: rr,
	})
	return nil
}

// drainServer loads n noop tasks into a fresh database, then starts the
// server on it and lets it work them, for at most limit. It checks that
// every completed task's result was recorded exactly once: each completed
// task has its result and ran one attempt, and tasks agrees with river_job.
//
// env is more server environment; nil for the server as configured.
func (b *bench) drainServer(ctx context.Context, n int, limit time.Duration, env map[string]string) (_ drainResult, err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "drain", 0, benchPoolConns)
	if err != nil {
		return drainResult{}, err
	}
	defer pool.Close()
	t0 := time.Now()
	if err := loadBacklog(ctx, pool, n); err != nil {
		return drainResult{}, err
	}
	b.logger.Info("backlog loaded", slog.Int("tasks", n), slog.Duration("took", time.Since(t0).Round(time.Millisecond)))

	serverEnv := b.opts.tune.env()
	// The drain is measured at the production log level (the bench's
	// servers log at warn otherwise): what a task's completion logs is
	// part of its cost.
	serverEnv["LOG_LEVEL"] = strings.ToLower(config.Defaults().LogLevel.String())
	maps.Copy(serverEnv, env)
	srv, err := b.servers.start(ctx, dbURL, serverEnv)
	if err != nil {
		return drainResult{}, err
	}
	defer func() { err = errors.Join(err, b.servers.stop(srv)) }()
	cpu, err := startCPU(pool.Config().ConnConfig.Database, srv.cmd.Process.Pid)
	if err != nil {
		return drainResult{}, err
	}
	// Stopping with SIGTERM lets running tasks finish and River flush its
	// completer, so the counts are final.
	res, err := drain(ctx, pool, n, limit, func() error {
		if err := cpu.stop(); err != nil {
			return err
		}
		return b.servers.stop(srv)
	})
	if err != nil {
		return drainResult{}, err
	}
	res.cpu = cpu.used
	once, err := verifyOnce(ctx, pool, n, res.partial)
	if err != nil {
		return drainResult{}, err
	}
	b.logger.Info("server drain", slog.Int("backlog", n), slog.Int("completed_once", once),
		slog.Float64("per_s", res.rate()), slog.String("cpu", res.cpu.perTask(res.completed)), slog.Bool("partial", res.partial))
	if env == nil {
		b.drained[n] = res
	}
	return res, nil
}

// verifyOnce checks that every completed task's result was recorded
// exactly once: each completed task has its result and ran one attempt,
// tasks agrees with river_job, and, unless the drain was cut short, every
// task completed. It returns the number of such tasks.
func verifyOnce(ctx context.Context, pool *pgxpool.Pool, n int, partial bool) (int, error) {
	var once, completedJobs int
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM tasks WHERE state = 'completed' AND result IS NOT NULL AND attempt = 1),
		(SELECT count(*) FROM river_job WHERE state = 'completed')`).Scan(&once, &completedJobs)
	if err != nil {
		return 0, fmt.Errorf("verify results: %w", err)
	}
	if once != completedJobs || (!partial && once != n) {
		return 0, fmt.Errorf("results not recorded exactly once: %d tasks completed with a result after one attempt, %d jobs completed, backlog %d", once, completedJobs, n)
	}
	return once, nil
}

// bareNoopWorker works the River-alone baseline's jobs: nothing, and no
// output recorded, so River's completion carries no domain data.
type bareNoopWorker struct {
	river.WorkerDefaults[jobs.NoopArgs]
}

func (*bareNoopWorker) Work(context.Context, *river.Job[jobs.NoopArgs]) error { return nil }

// drainRiver is the baseline of figure 3: n bare noop jobs in a database
// with River's schema only (no tasks table, no trigger), drained by a River
// client in this process with tune.
//
// With record, each job also has a row in a table of results, and the
// worker writes its job's outcome there and completes the job in one
// transaction (recordingWorker): what a River user writes to get results
// recorded exactly once, the promise Handoff keeps. The drain then checks
// that every completed job's row was written once.
func (b *bench) drainRiver(ctx context.Context, n int, limit time.Duration, tune tuning, record bool) (_ drainResult, err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "river", riverOnlyVersion, tune.dbMaxConns)
	if err != nil {
		return drainResult{}, err
	}
	defer pool.Close()
	if err := loadBacklog(ctx, pool, n); err != nil {
		return drainResult{}, err
	}

	workers := river.NewWorkers()
	if record {
		if err := loadResults(ctx, pool); err != nil {
			return drainResult{}, err
		}
		// River's completion query is planned afresh on every
		// JobCompleteTx (~0.4 ms: Postgres keeps custom plans for it); a
		// generic plan nearly doubles this baseline (2.1k → 3.5k/s at 20k
		// jobs), so it runs at its best with one.
		u, err := url.Parse(dbURL)
		if err != nil {
			return drainResult{}, fmt.Errorf("parse database URL: %w", err)
		}
		q := u.Query()
		q.Set("plan_cache_mode", "force_generic_plan")
		u.RawQuery = q.Encode()
		pool.Close()
		if pool, err = openPool(ctx, u.String(), tune.dbMaxConns); err != nil {
			return drainResult{}, err
		}
		defer pool.Close()
		river.AddWorker(workers, &recordingWorker{pool: pool})
	} else {
		river.AddWorker(workers, &bareNoopWorker{})
	}
	client, err := newRiverClient(pool, tune, workers, b.logger)
	if err != nil {
		return drainResult{}, err
	}
	cpu, err := startCPU(pool.Config().ConnConfig.Database, 0)
	if err != nil {
		return drainResult{}, err
	}
	if err := client.Start(ctx); err != nil {
		return drainResult{}, fmt.Errorf("start River client: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, stopRiver(client))
		}
	}()
	res, err := drain(ctx, pool, n, limit, func() error {
		if err := cpu.stop(); err != nil {
			return err
		}
		stopped = true
		return stopRiver(client)
	})
	if err != nil {
		return drainResult{}, err
	}
	res.cpu = cpu.used
	if record {
		if err := checkResults(ctx, pool, res.completed); err != nil {
			return drainResult{}, err
		}
	}
	b.logger.Info("River drain", slog.Int("backlog", n), slog.Int("workers", tune.workers), slog.Bool("record", record),
		slog.Float64("per_s", res.rate()), slog.String("cpu", res.cpu.perTask(res.completed)), slog.Bool("partial", res.partial))
	return res, nil
}

// recordingWorker works the recording baseline's jobs (drainRiver with
// record): it writes the job's result into its row of results and completes
// the job with river.JobCompleteTx in the same transaction, so that a result
// is written exactly once, whatever fails when.
type recordingWorker struct {
	river.WorkerDefaults[jobs.NoopArgs]

	pool *pgxpool.Pool
}

func (w *recordingWorker) Work(ctx context.Context, job *river.Job[jobs.NoopArgs]) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE results SET state = 'completed', result = '{}', attempt = $2, finished_at = now() WHERE id = $1`,
			job.ID, job.Attempt); err != nil {
			return fmt.Errorf("record result: %w", err)
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("complete job: %w", err)
		}
		return nil
	})
}

// loadResults makes the recording baseline's table of results, with a row
// per job of the backlog, indexed for a list by state as tasks are.
func loadResults(ctx context.Context, pool *pgxpool.Pool) error {
	for _, q := range []string{
		`CREATE TABLE results (id bigint PRIMARY KEY, state text NOT NULL, attempt int NOT NULL DEFAULT 0,
			result jsonb, finished_at timestamptz)`,
		`CREATE INDEX results_state_id_idx ON results (state, id)`,
		`INSERT INTO results (id, state) SELECT id, 'available' FROM river_job`,
		`VACUUM ANALYZE results`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("load results: %w", err)
		}
	}
	return nil
}

// checkResults checks that the recording baseline wrote each completed
// job's result once, from the attempt that completed it.
func checkResults(ctx context.Context, pool *pgxpool.Pool, completed int) error {
	var written, mismatched int
	err := pool.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE r.state = 'completed'),
       count(*) FILTER (WHERE (r.state = 'completed') <> (j.state = 'completed') OR r.attempt <> j.attempt AND r.state = 'completed')
FROM results r JOIN river_job j USING (id)`).Scan(&written, &mismatched)
	if err != nil {
		return fmt.Errorf("check results: %w", err)
	}
	if written != completed || mismatched != 0 {
		return fmt.Errorf("recording baseline: %d jobs completed, %d results written, %d disagree with their job", completed, written, mismatched)
	}
	return nil
}

// newRiverClient configures River as cmd/server/serve.go does, with tune.
func newRiverClient(pool *pgxpool.Pool, tune tuning, workers *river.Workers, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		CompletedJobRetentionPeriod: 24 * time.Hour,
		FetchCooldown:               tune.fetchCooldown,
		FetchPollInterval:           tune.fetchPollInterval,
		JobTimeout:                  time.Minute,
		Logger:                      logger.With(slog.String("component", "river")),
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: tune.workers}},
		RescueStuckJobsAfter:        2 * time.Minute,
		Workers:                     workers,
	})
	if err != nil {
		return nil, fmt.Errorf("create River client: %w", err)
	}
	return client, nil
}

func stopRiver(client *river.Client[pgx.Tx]) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := client.Stop(ctx); err != nil {
		return fmt.Errorf("stop River client: %w", err)
	}
	return nil
}

// drain watches a drain that has just been started on pool, for at most
// limit, then calls stop (which must stop whatever works the jobs and let
// its completer flush) and measures it.
//
// The rate is completed tasks over the time from the first job's fetch
// (river_job.attempted_at) to the moment the bench saw no job available or
// running any more, within drainPoll, or to the end of stop for a drain cut
// short. It ends when the last result is committed, not when the last
// worker returned (finalized_at is the latter: River's completer commits
// later, in batches), so it charges the completion, trigger included, in
// full. It leaves out process start.
func drain(ctx context.Context, pool *pgxpool.Pool, n int, limit time.Duration, stop func() error) (drainResult, error) {
	deadline := time.Now().Add(limit)
	var (
		end     time.Time
		partial bool
	)
	for {
		var busy bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE state IN ('available', 'running'))`).Scan(&busy)
		if err != nil {
			return drainResult{}, fmt.Errorf("watch drain: %w", err)
		}
		if !busy {
			end = time.Now()
			break
		}
		if time.Now().After(deadline) {
			partial = true
			break
		}
		select {
		case <-ctx.Done():
			return drainResult{}, fmt.Errorf("watch drain: %w", ctx.Err())
		case <-time.After(drainPoll):
		}
	}
	if err := stop(); err != nil {
		return drainResult{}, err
	}
	if partial {
		end = time.Now()
	}

	var (
		completed int
		start     *time.Time
	)
	err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed'), min(attempted_at) FROM river_job`).Scan(&completed, &start)
	if err != nil {
		return drainResult{}, fmt.Errorf("measure drain: %w", err)
	}
	if completed == 0 || start == nil {
		return drainResult{}, errors.New("measure drain: no job completed")
	}
	return drainResult{backlog: n, completed: completed, elapsed: end.Sub(*start), partial: partial}, nil
}

// growth measures figure 8's drain half: the drain rate at a small and a
// large backlog (and the work phase's one between them), to show that the
// cost per task does not grow with the backlog.
func (b *bench) growth(ctx context.Context) error {
	sizes := []int{b.opts.growthSmall, b.opts.workN, b.opts.growthLarge}
	for _, n := range sizes {
		if _, ok := b.drained[n]; ok {
			continue
		}
		limit := b.opts.drainLimit
		if n == b.opts.growthLarge {
			limit = b.opts.largeLimit
		}
		if _, err := b.drainServer(ctx, n, limit, nil); err != nil {
			return err
		}
	}
	small := b.drained[b.opts.growthSmall]
	for _, n := range sizes[:2] {
		b.report.info(row{
			figure: "growth: drain rate, " + countLabel(n) + " backlog",
			value:  b.drained[n].String(),
		})
	}
	large := b.drained[b.opts.growthLarge]
	r, v := ratio(large.rate(), small.rate())
	rw := row{
		figure:   "growth: drain rate, " + countLabel(large.backlog) + " backlog",
		value:    large.String(),
		baseline: small.String() + " at " + countLabel(small.backlog),
		ratio:    r,
		target:   "≥ 0.70",
	}
	if large.partial {
		rw.note = fmt.Sprintf("growth: the %s drain is time-boxed to %s: its rate is that of the first %s tasks worked with the whole backlog queued behind them",
			countLabel(large.backlog), b.opts.largeLimit, countLabel(large.completed))
	}
	b.report.check(rw, v >= 0.70)
	return nil
}
