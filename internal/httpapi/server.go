// Package httpapi serves Handoff's HTTP API: tasks under /v1 and the health
// probes at the root.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

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
}

// NewServer returns the API's handler. The middleware order is visible here:
// recovery, request logging and the canonical-path check wrap everything;
// cross-origin protection, the body read (type, size, deadline) and then the
// request timeout wrap /v1.
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

	v1 := http.NewServeMux()
	addV1Routes(v1, logger, tasks)

	root := http.NewServeMux()
	root.Handle("/v1/", crossOriginProtection(logger, readBody(logger, MaxBodyBytes, timeout, withTimeout(timeout, v1))))
	addRootRoutes(root, logger, ready)

	return recoverPanics(logger, logRequests(logger, cleanPaths(logger, root)))
}
