package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/handoff/handoff/internal/admin"
	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/telemetry"
)

// operations is what operators see the server through: metrics, tracing,
// the attempt log, and the operator routes (dashboard, queue control).
type operations struct {
	cfg     *config.Config
	logger  *slog.Logger
	tracing *telemetry.Tracing
	metrics *metrics.Metrics // nil when METRICS_ENABLED=false
}

// newOperations sets up tracing (off unless OTEL_TRACES_EXPORTER says) and
// metrics (unless METRICS_ENABLED=false), before the River client that
// reports to them.
func newOperations(ctx context.Context, cfg *config.Config, logger *slog.Logger, pool *pgxpool.Pool, queues map[string]river.QueueConfig, kinds []string) (*operations, error) {
	tracing, err := telemetry.New(ctx, cfg.TracesExporter)
	if err != nil {
		return nil, err
	}
	if tracing.Enabled {
		// The SDK's own errors (an export that failed) as log lines like
		// every other, not plain text from the standard logger.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.WarnContext(ctx, "tracing", slog.Any("error", err))
		}))
	}
	workers := map[string]int{}
	for name, q := range queues {
		workers[name] = q.MaxWorkers
	}
	o := &operations{cfg: cfg, logger: logger, tracing: tracing}
	if cfg.MetricsEnabled {
		o.metrics = metrics.New(pool, logger, &metrics.Opts{Queues: workers, Kinds: kinds, Interval: cfg.MetricsInterval})
	}
	return o, nil
}

// riverMiddleware is the River middleware of operations, outermost first:
// metrics time and count everything inside; the tracing middleware opens the
// work span that the attempt log then names.
func (o *operations) riverMiddleware() []rivertype.Middleware {
	var mw []rivertype.Middleware
	if o.metrics != nil {
		mw = append(mw, o.metrics.RiverMiddleware())
	}
	if o.tracing.Enabled {
		mw = append(mw, o.tracing.RiverMiddleware())
	}
	return append(mw, telemetry.LogAttempts(o.logger))
}

// tracerProvider is the provider for HTTP spans, nil when tracing is off
// (no span is even started then).
func (o *operations) tracerProvider() trace.TracerProvider {
	if !o.tracing.Enabled {
		return nil
	}
	return o.tracing.Provider
}

// start begins sampling metrics and builds the operator routes' settings
// for client. Its background work ends with ctx.
func (o *operations) start(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], queues map[string]river.QueueConfig) (*httpapi.OperatorOpts, error) {
	if o.metrics != nil {
		o.metrics.SetClientID(client.ID())
		go o.metrics.Run(ctx)
	}

	opts := &httpapi.OperatorOpts{
		User:          o.cfg.AdminUser,
		Password:      o.cfg.AdminPassword,
		ReadOnly:      o.cfg.AdminReadOnly,
		MetricsPublic: o.cfg.MetricsPublic,
		Queues:        admin.NewQueues(pool, client, slices.Sorted(maps.Keys(queues))),
	}
	if o.cfg.AdminUser == "" {
		o.logger.WarnContext(ctx, "operator routes are off (503): /riverui/, /v1/queues and /metrics need ADMIN_USER and ADMIN_PASSWORD (METRICS_PUBLIC=true opens /metrics alone)")
		return opts, nil
	}
	ui, err := admin.NewRiverUI(ctx, client, o.logger, "/riverui")
	if err != nil {
		return nil, fmt.Errorf("operator dashboard: %w", err)
	}
	opts.RiverUI = ui
	o.logger.InfoContext(ctx, "operator routes on: /riverui/, /v1/queues, /metrics (HTTP basic auth)",
		slog.String("admin_user", o.cfg.AdminUser), slog.Bool("read_only", o.cfg.AdminReadOnly), slog.Bool("metrics_public", o.cfg.MetricsPublic))
	return opts, nil
}

// shutdown flushes the spans not yet exported.
func (o *operations) shutdown(ctx context.Context) {
	if err := o.tracing.Shutdown(ctx); err != nil {
		o.logger.WarnContext(ctx, "flush traces", slog.Any("error", err))
	}
}
