package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/internal/auth"
	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/internal/telemetry"
	"github.com/handoff/handoff/jobs"
	"github.com/handoff/handoff/migrations"
)

// serve runs the HTTP API and the River workers until ctx is cancelled, then
// stops gracefully: HTTP first (no new tasks), then River (running tasks get
// ShutdownTimeout to finish, then are cancelled and go back to River), then
// the pool.
func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// The runtime applied a GOGC of the process's environment itself;
		// without one, Handoff's measured default.
		debug.SetGCPercent(cfg.GCPercent)
	}
	logger := newLogger(cfg, stderr)

	pool, err := openPool(ctx, cfg, cfg.StatementTimeout)
	if err != nil {
		return err
	}
	defer pool.Close()

	schema := newSchema(pool)
	defer schema.Close()
	if err := schema.prepare(ctx, logger, cfg.AutoMigrate); err != nil {
		return err
	}

	liveOpts, err := newLiveOpts(ctx, cfg, pool, logger)
	if err != nil {
		return err
	}
	// The base URL that http tasks' receivers report progress to: PUBLIC_URL,
	// or the listen address once it is known (HTTP_ADDR may pick the port).
	var publicURL atomic.Pointer[string]
	if cfg.PublicURL != "" {
		publicURL.Store(&cfg.PublicURL)
	}
	httpKind, httpTransport := httpDeps(logger, cfg, pool)
	defer httpTransport.CloseIdleConnections()
	httpKind.ProgressURLFunc = func(taskID int64, attempt int, validFor time.Duration) string {
		base := publicURL.Load()
		if base == nil {
			return ""
		}
		return fmt.Sprintf("%s/v1/tasks/%d/progress?attempt=%d&token=%s", *base, taskID, attempt, liveOpts.Tokens.SignProgress(taskID, attempt, validFor))
	}
	kinds := jobs.Kinds(jobs.Deps{Logger: logger, Progress: live.NewProgressWriter(pool), HTTP: httpKind})
	workers, err := jobs.Workers(kinds)
	if err != nil {
		return err
	}
	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
	for name, n := range cfg.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	kindNames := make([]string, len(kinds))
	for i, k := range kinds {
		kindNames[i] = k.Name
	}
	ops, err := newOperations(ctx, cfg, logger, pool, queues, kindNames)
	if err != nil {
		return err
	}
	defer ops.shutdown(context.WithoutCancel(ctx))
	seam := riverseam.NewMiddleware(pool, logger, float64(cfg.InlineCompleteBelow))
	seam.CheckArgs = jobs.CheckArgs(kinds)
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		CompletedJobRetentionPeriod: cfg.CompletedRetention,
		FetchCooldown:               cfg.FetchCooldown,
		FetchPollInterval:           cfg.FetchPollInterval,
		// River requires JobTimeout ≤ RescueStuckJobsAfter; kinds with long
		// tasks set their own Timeout.
		JobTimeout:           min(time.Minute, cfg.RescueAfter),
		Logger:               telemetry.RiverLogger(logger),
		Middleware:           append(ops.riverMiddleware(), seam),
		Queues:               queues,
		RescueStuckJobsAfter: cfg.RescueAfter,
		SoftStopTimeout:      cfg.ShutdownTimeout,
		Workers:              workers,
	})
	if err != nil {
		return fmt.Errorf("create River client: %w", err)
	}
	tasks := task.NewService(pool, riverClient, kinds, &task.ServiceOpts{
		Queues:        slices.Collect(maps.Keys(queues)),
		Logger:        logger,
		MaxUnfinished: cfg.MaxUnfinished,
		MaxArgsBytes:  cfg.MaxArgsBytes,
		BatchMax:      cfg.EnqueueBatchMax,
	})
	// handoff.enqueue checks SQL callers' kinds and queues against these.
	if err := tasks.Register(ctx); err != nil {
		return fmt.Errorf("record kinds and queues: %w", err)
	}

	// Operator routes and metrics sampling stop with the process, after
	// the HTTP server.
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	operator, err := ops.start(opsCtx, pool, riverClient, queues)
	if err != nil {
		return err
	}
	authOpts, err := newAuthOpts(ctx, cfg, pool, logger)
	if err != nil {
		return err
	}
	handler := httpapi.NewServer(logger, tasks, &httpapi.ServerOpts{
		ReadyFunc:      schema.ready,
		RequestTimeout: cfg.RequestTimeout,
		Metrics:        ops.metrics,
		TracerProvider: ops.tracerProvider(),
		Operator:       operator,
		Live:           liveOpts,
		Auth:           authOpts,
	})
	listener, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	if publicURL.Load() == nil {
		base := listenURL(listener.Addr())
		publicURL.Store(&base)
	}
	srv := &http.Server{
		Handler: handler,
		// Bounds on slow clients, so that none can hold a connection (and a
		// graceful stop) open: a body is at most 1 MiB.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// A request may take REQUEST_TIMEOUT to send its body (then 408)
		// and REQUEST_TIMEOUT of work (then 503): the answer must still
		// be writable after both.
		WriteTimeout: 2*cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:  cfg.IdleTimeout,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Event streams never go idle: end them when the stop begins.
	srv.RegisterOnShutdown(liveOpts.Hub.Shutdown)

	// River runs on a context that the signal does not cancel: the stop
	// order below decides when it stops.
	if err := riverClient.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start River client: %w", err)
	}
	// The listener stops with the pool's users, after HTTP and River.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		_ = liveOpts.Hub.Run(hubCtx)
	}()
	defer func() { stopHub(); <-hubDone }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()

	logger.InfoContext(ctx, "handoff serving",
		slog.String("addr", listener.Addr().String()),
		slog.String("river_client_id", riverClient.ID()),
		slog.Int("workers", cfg.Workers),
		slog.Any("queues", slices.Sorted(maps.Keys(queues))),
		slog.String("rescue_after", cfg.RescueAfter.String()),
		slog.String("shutdown_timeout", cfg.ShutdownTimeout.String()),
		slog.String("fetch_cooldown", cfg.FetchCooldown.String()),
		slog.Int("db_max_conns", cfg.DBMaxConns),
	)
	fmt.Fprintf(stdout, "handoff: serving on http://%s\n", listener.Addr())

	select {
	case err = <-serveErr:
		err = fmt.Errorf("HTTP server: %w", err)
	case <-ctx.Done():
		logger.Info("shutting down: draining HTTP requests, then running tasks", slog.String("shutdown_timeout", cfg.ShutdownTimeout.String()))
	}
	return errors.Join(err, shutdown(logger, srv, riverClient, cfg.ShutdownTimeout))
}

// shutdown stops HTTP, then River, within one deadline: timeout for both,
// plus a margin for cancelled workers to return and River to record that.
func shutdown(logger *slog.Logger, srv *http.Server, riverClient *river.Client[pgx.Tx], timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()

	// In-flight requests get the same time as running tasks. A client too
	// slow for that is cut off: its request was not accepted, and it
	// must not keep the rest of the stop waiting.
	httpCtx, cancelHTTP := context.WithTimeout(ctx, timeout)
	defer cancelHTTP()
	if err := srv.Shutdown(httpCtx); err != nil {
		logger.Warn("HTTP requests still running at the shutdown timeout; closing their connections", slog.Any("error", err))
		_ = srv.Close()
	}
	// Stop waits for running tasks up to SoftStopTimeout, then cancels
	// them; River puts cancelled tasks back without using up an attempt.
	if err := riverClient.Stop(ctx); err != nil {
		return fmt.Errorf("stop River client: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newLiveOpts builds the event hub and the read-token signer.
func newLiveOpts(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, logger *slog.Logger) (*httpapi.LiveOpts, error) {
	secret := []byte(cfg.LiveSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		logger.WarnContext(ctx, "LIVE_SECRET is not set: task page links work only on this process until it restarts")
	}
	tokens, err := live.NewTokenSigner(secret, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("LIVE_SECRET: %w", err)
	}
	hub := live.NewHub(pool, &live.HubOpts{
		Logger:     logger,
		MaxStreams: cfg.LiveMaxStreams,
		AdmitFunc: live.TenantCap(cfg.EffectiveLiveMaxStreamsPerTenant(), func(ctx context.Context, taskID int64) (string, error) {
			return task.WatcherTenant(ctx, pool, taskID)
		}),
	})
	return &httpapi.LiveOpts{Hub: hub, Tokens: tokens, Progress: live.NewProgressWriter(pool)}, nil
}

// listenURL is the http URL of the address the server listens on, with an
// unspecified host (0.0.0.0, ::) read as loopback: where this machine
// reaches the server (config.ListenURL).
func listenURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	return config.ListenURL(host, port)
}

// newAuthOpts turns AUTH_DISABLED and the limits into the API's auth
// settings, and says at start-up, loudly when it is open, how it treats
// requests without a key.
func newAuthOpts(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, logger *slog.Logger) (*httpapi.AuthOpts, error) {
	opts := &httpapi.AuthOpts{
		Authenticator: auth.NewAuthenticator(pool, &auth.AuthenticatorOpts{Logger: logger}),
		AllowedHosts:  cfg.AllowedHosts,
		RateLimit:     float64(cfg.RateLimit),
		RateBurst:     cfg.EffectiveRateBurst(),
	}
	if host, _, err := net.SplitHostPort(cfg.HTTPAddr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			opts.AllowedHosts = append(opts.AllowedHosts, host)
		}
	}
	switch cfg.AuthMode() {
	case config.AuthDisabled:
		opts.Mode = httpapi.AuthDisabled
		logger.WarnContext(ctx, "AUTH_DISABLED=true: /v1 is served WITHOUT API keys, as the default tenant, to anyone who can reach "+cfg.HTTPAddr+"; for local development only")
	case config.AuthUntilKeys:
		opts.Mode = httpapi.AuthUntilKeys
		exists, err := auth.AnyExists(ctx, pool)
		if err != nil {
			return nil, err //nolint:wrapcheck // auth wraps it
		}
		if !exists {
			logger.WarnContext(ctx, "no API key exists yet: /v1 is served WITHOUT keys, on loopback only, until the first is made with `handoff keys create --tenant NAME`; set AUTH_DISABLED=false to require keys now")
		}
	case config.AuthRequired:
		opts.Mode = httpapi.AuthRequired
		logger.InfoContext(ctx, "API keys required on /v1 (make one with `handoff keys create --tenant NAME`)")
	}
	return opts, nil
}

// newLogger logs JSON, or text when LOG_FORMAT says so or, unset, when w is
// a terminal (a developer reading it, not a log shipper).
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openPool connects to Postgres and checks that it answers, so that a wrong
// DATABASE_URL fails at start-up with a clear message. A statementTimeout
// above zero becomes every connection's statement_timeout.
func openPool(ctx context.Context, cfg *config.Config, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid Postgres URL: %w", err)
	}
	migrations.SetSearchPath(poolCfg.ConnConfig)
	if statementTimeout > 0 {
		poolCfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(statementTimeout.Milliseconds(), 10)
	}
	poolCfg.MaxConns = int32(cfg.DBMaxConns) //nolint:gosec // bounded by config.Parse
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach Postgres at %s:%d/%s: %w", poolCfg.ConnConfig.Host, poolCfg.ConnConfig.Port, poolCfg.ConnConfig.Database, err)
	}
	return pool, nil
}
