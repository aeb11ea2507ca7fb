// Command bench measures Handoff against in-run baselines and prints one
// table: figure, value, baseline, ratio, target, pass/fail (see
// docs/performance.md).
//
// It creates its own databases on the server in DATABASE_URL, builds and
// starts the real server binary as a subprocess, drives it over HTTP on
// loopback, and drops and stops everything it made when it ends, also on
// error or interrupt. Every ratio compares two things measured in the same
// run, since absolute numbers on a shared machine drift. A missed target is
// a finding, not an error: the exit status is non-zero only when the bench
// itself could not run.
//
//	make bench                       # everything, under 10 minutes
//	go run ./cmd/bench -quick        # smaller sizes, about 2 minutes
//	go run ./cmd/bench -only=work    # one phase: enqueue, work, latency, list, growth, live
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handoff/handoff/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// tuning is the River and pool configuration under test. The server gets
// it through its environment and the in-process River baselines through
// river.Config, so both always run with the same settings. The defaults
// are the server's own (internal/config).
type tuning struct {
	workers           int
	fetchCooldown     time.Duration
	fetchPollInterval time.Duration
	dbMaxConns        int
	// serverEnv is more environment for the server only, such as GOGC:
	// settings that have no River-baseline counterpart.
	serverEnv envFlag
}

func (t tuning) env() map[string]string {
	env := map[string]string{
		"WORKERS":             strconv.Itoa(t.workers),
		"FETCH_COOLDOWN":      t.fetchCooldown.String(),
		"FETCH_POLL_INTERVAL": t.fetchPollInterval.String(),
		"DB_MAX_CONNS":        strconv.Itoa(t.dbMaxConns),
	}
	maps.Copy(env, t.serverEnv)
	return env
}

func (t tuning) String() string {
	s := fmt.Sprintf("WORKERS=%d FETCH_COOLDOWN=%s FETCH_POLL_INTERVAL=%s DB_MAX_CONNS=%d",
		t.workers, t.fetchCooldown, t.fetchPollInterval, t.dbMaxConns)
	for _, k := range slices.Sorted(maps.Keys(t.serverEnv)) {
		s += " " + k + "=" + t.serverEnv[k]
	}
	return s
}

// envFlag collects repeated -server-env KEY=VALUE flags.
type envFlag map[string]string

func (e envFlag) String() string { return fmt.Sprint(map[string]string(e)) }

func (e envFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", kv)
	}
	e[k] = v
	return nil
}

// options are the command line's settings.
type options struct {
	phases phaseSet
	quick  bool
	tune   tuning
	// riverWorkers are the MaxWorkers settings over which the River
	// baseline of the work figure is swept, to compare with River at its
	// best on the machine.
	riverWorkers []int

	clients       int
	growthClients []int
	enqueueWindow time.Duration
	growthWindow  time.Duration
	rounds        int

	workN       int
	liveN       int
	workRounds  int
	growthSmall int
	growthLarge int
	drainLimit  time.Duration
	largeLimit  time.Duration

	rate          float64
	latencyWindow time.Duration
	sampleEvery   int
	pollInterval  time.Duration

	listRows     int
	listRequests int
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts options
		only string
	)
	fs.BoolVar(&opts.quick, "quick", false, "smaller backlogs and shorter windows (about 2 minutes); figures are noisier")
	fs.StringVar(&only, "only", "", "comma-separated phases to run: enqueue, work, latency, list, growth, live")
	// The server's defaults, from the one options table.
	defaults := config.Defaults()
	fs.IntVar(&opts.tune.workers, "workers", defaults.Workers, "WORKERS for the server and MaxWorkers for the River baseline, as the server's default")
	fs.DurationVar(&opts.tune.fetchCooldown, "fetch-cooldown", defaults.FetchCooldown, "FETCH_COOLDOWN for the server and the River baseline")
	fs.DurationVar(&opts.tune.fetchPollInterval, "fetch-poll-interval", defaults.FetchPollInterval, "FETCH_POLL_INTERVAL for the server and the River baseline")
	fs.IntVar(&opts.tune.dbMaxConns, "db-max-conns", defaults.DBMaxConns, "DB_MAX_CONNS for the server, and the pool size of every baseline")
	fs.IntVar(&opts.clients, "clients", 32, "concurrent clients of the enqueue figures")
	riverWorkers := fs.String("river-workers", "500,1000,2000,5000", "MaxWorkers settings over which the drain's River baseline is swept (the fastest is the baseline)")
	opts.tune.serverEnv = envFlag{}
	fs.Var(opts.tune.serverEnv, "server-env", "KEY=VALUE added to the server's environment only, e.g. GOGC=200 (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	phases, err := parsePhases(only)
	if err != nil {
		return nil, err
	}
	opts.phases = phases
	if opts.tune.workers < 1 || opts.tune.dbMaxConns < 4 || opts.tune.fetchCooldown < time.Millisecond ||
		opts.tune.fetchPollInterval < opts.tune.fetchCooldown || opts.clients < 1 {
		return nil, errors.New("bad tuning: need -workers ≥ 1, -db-max-conns ≥ 4, -fetch-cooldown ≥ 1ms ≤ -fetch-poll-interval, -clients ≥ 1")
	}

	opts.growthClients = []int{1, 8, 32, 64}
	for w := range strings.SplitSeq(*riverWorkers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-river-workers: %q is not a positive number", w)
		}
		opts.riverWorkers = append(opts.riverWorkers, n)
	}
	opts.rate = 100
	opts.sampleEvery = 5
	opts.pollInterval = 5 * time.Millisecond
	opts.listRequests = 1000
	if opts.quick {
		opts.enqueueWindow, opts.growthWindow, opts.rounds = 2*time.Second, time.Second, 2
		opts.workN, opts.workRounds, opts.growthSmall, opts.growthLarge = 20_000, 1, 2_000, 200_000
		opts.drainLimit, opts.largeLimit = time.Minute, 30*time.Second
		opts.liveN = 10_000
		opts.latencyWindow = 6 * time.Second
		opts.listRows, opts.listRequests = 200_000, 300
	} else {
		opts.enqueueWindow, opts.growthWindow, opts.rounds = 5*time.Second, 3*time.Second, 3
		opts.workN, opts.workRounds, opts.growthSmall, opts.growthLarge = 100_000, 2, 10_000, 1_000_000
		opts.drainLimit, opts.largeLimit = 2*time.Minute, time.Minute
		// Half the work backlog: the live phase drains four times.
		opts.liveN = 50_000
		opts.latencyWindow = 20 * time.Second
		opts.listRows = 1_000_000
	}
	return &opts, nil
}

// bench holds what every phase shares.
type bench struct {
	opts    *options
	logger  *slog.Logger
	dbs     *databases
	servers *servers
	report  *report
	// drained remembers drain rates by backlog size, so that the growth
	// phase reuses the work phase's 100k drain instead of repeating it.
	drained map[int]drainResult
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	baseURL := getenv("DATABASE_URL")
	if baseURL == "" {
		return errors.New("DATABASE_URL is not set: run `make bench`, which starts the local Postgres, or export DATABASE_URL")
	}

	tmp, err := os.MkdirTemp("", "handoff-bench-")
	if err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	b := &bench{
		opts:    opts,
		logger:  logger,
		dbs:     &databases{baseURL: baseURL},
		report:  &report{},
		drained: map[int]drainResult{},
	}
	started := time.Now()
	defer func() {
		// Whatever happened, stop what we started and print what we have.
		var servErr error
		if b.servers != nil {
			servErr = b.servers.stopAll()
		}
		err = errors.Join(err, servErr, b.dbs.dropAll(), os.RemoveAll(tmp))
		mode := "full"
		if opts.quick {
			mode = "-quick"
		}
		fmt.Fprintf(stdout, "\nHandoff bench (%s): %s, %d CPUs, took %s\n\n",
			mode, opts.tune, runtime.NumCPU(), time.Since(started).Round(time.Second))
		b.report.print(stdout)
	}()

	logger.Info("building the server binary")
	bin, err := buildServer(ctx, tmp)
	if err != nil {
		return err
	}
	b.servers = &servers{bin: bin, logger: logger}

	type phase struct {
		name string
		run  func(context.Context) error
	}
	for _, p := range []phase{
		{"enqueue", b.enqueue},
		{"work", b.work},
		{"latency", b.latency},
		{"list", b.list},
		{"growth", b.growth},
		{"live", b.live},
	} {
		if !opts.phases[p.name] {
			continue
		}
		logger.Info("phase", slog.String("name", p.name))
		t0 := time.Now()
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("phase %s: %w", p.name, err)
		}
		logger.Info("phase done", slog.String("name", p.name), slog.Duration("took", time.Since(t0).Round(time.Second)))
	}
	return nil
}
