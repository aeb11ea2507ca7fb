// Package httpapi serves Handoff's HTTP API: tasks under /v1 and the health
// probes at the root.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/task"
)

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 1 << 20

// ServerOpts are optional settings for NewServer; nil means defaults.
type ServerOpts struct {
	// ReadyFunc reports whether the service can serve: nil error means
	// ready. Defaults to always ready.
	ReadyFunc func(ctx context.Context) error

	// RequestTimeout bounds each /v1 request's work, so that a slow or
	// unreachable database yields a 503 rather than a hung client, and
	// separately the time a client may take to send its body (408).
	// Defaults to 10 s.
	RequestTimeout time.Duration

	// Metrics, when set, counts and times every request and is served at
	// GET /metrics (see Operator for who may read it).
	Metrics *metrics.Metrics

	// TracerProvider, when set, traces every request (otelhttp).
	TracerProvider trace.TracerProvider

	// Operator configures /metrics, /riverui/ and /v1/queues; nil refuses
	// them all.
	Operator *OperatorOpts

	// Live wires the event stream, ?wait= and the browser pages; nil
	// leaves them out.
	Live *LiveOpts

	// Auth says who may call the tenant routes (API keys, AUTH_DISABLED,
	// the per-tenant rate limit). nil serves every request as the default
	// tenant with no checks: for tests, or behind an embedder's own auth;
	// the server (cmd/server) always sets it.
	Auth *AuthOpts
}

// NewServer returns the API's handler. The middleware order is visible here:
// tracing, metrics, the request log, recovery and the canonical-path check
// wrap everything; cross-origin protection, authentication and the rate
// limit (auth.go), the body read (type, size, deadline) and then the request
// timeout wrap /v1; operator routes get their own chain (operator.go).
func NewServer(logger *slog.Logger, tasks *task.Service, opts *ServerOpts) http.Handler {
	if opts == nil {
		opts = &ServerOpts{}
	}
	ready := opts.ReadyFunc
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	timeout := opts.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}

	var lv *LiveOpts
	if opts.Live != nil {
		lv = opts.Live.withDefaults()
	}

	g := newGate(logger, opts.Auth, timeout)

	v1 := http.NewServeMux()
	addV1Routes(v1, logger, tasks, lv)

	root := http.NewServeMux()
	root.Handle("/v1/", crossOriginProtection(logger, g.require(readBody(logger, MaxBodyBytes, timeout, withTimeout(timeout, metrics.WithRoute(v1))))))
	if lv != nil {
		addLiveRoutes(root, logger, tasks, lv, v1, timeout, g)
		addPageRoutes(root, logger, tasks, lv, g)
	}
	addRootRoutes(root, logger, ready)
	addOperatorRoutes(root, logger, opts.Operator, opts.Metrics, timeout)

	return observe(logger, opts.Metrics, opts.TracerProvider, recoverPanics(logger, cleanPaths(logger, metrics.WithRoute(root))))
}
