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

	// RequestTimeout bounds each /v1 request, so that a slow or unreachable
	// database yields a 503 rather than a hung client. Defaults to 10 s.
	RequestTimeout time.Duration

	// Live wires the event stream, ?wait= and the browser pages; nil
	// leaves them out.
	Live *LiveOpts
}

// NewServer returns the API's handler. The middleware order is visible here:
// recovery and request logging wrap everything; the body limit and request
// timeout wrap /v1.
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

	v1 := http.NewServeMux()
	addV1Routes(v1, logger, tasks, lv)

	root := http.NewServeMux()
	root.Handle("/v1/", limitBody(MaxBodyBytes, withTimeout(timeout, v1)))
	if lv != nil {
		addLiveRoutes(root, logger, tasks, lv, v1, timeout)
		addPageRoutes(root, logger, tasks, lv)
	}
	addRootRoutes(root, logger, ready)

	return recoverPanics(logger, logRequests(logger, root))
}
