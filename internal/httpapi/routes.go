package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/task"
)

// addV1Routes lists the whole task API.
// With live set, the create answer carries read links; GET
// /v1/tasks/{id}/events and ?wait= are served from the root mux
// (addLiveRoutes), outside the request timeout.
func addV1Routes(mux *http.ServeMux, logger *slog.Logger, tasks *task.Service, lv *LiveOpts) {
	create := handleTaskCreate(logger, tasks)
	var hub *live.Hub
	get := handleTaskGet(logger, tasks, nil)
	if lv != nil {
		create = withReadLinks(lv.Tokens, create)
		hub = lv.Hub
		get = withGetReadLinks(lv.Tokens, handleTaskGet(logger, tasks, hub))
	}
	mux.Handle("POST /v1/tasks", create)
	mux.Handle("POST /v1/tasks/batch", handleTaskBatch(logger, tasks))
	mux.Handle("GET /v1/tasks", handleTaskList(logger, tasks))
	mux.Handle("GET /v1/tasks/{id}", notBatch(logger, get))
	mux.Handle("POST /v1/tasks/{id}/cancel", handleTaskCancel(logger, tasks))
	mux.Handle("POST /v1/tasks/{id}/retry", handleTaskRetry(logger, tasks))
	// Known paths asked with another method: 405 with Allow, not 404.
	mux.Handle("/v1/tasks", handleMethodNotAllowed(logger, "GET, HEAD, POST"))
	mux.Handle("/v1/tasks/{id}", notBatch(logger, handleMethodNotAllowed(logger, "GET, HEAD")))
	mux.Handle("/v1/tasks/{id}/cancel", handleMethodNotAllowed(logger, "POST"))
	mux.Handle("/v1/tasks/{id}/retry", handleMethodNotAllowed(logger, "POST"))
	mux.Handle("/v1/tasks/{id}/events", handleMethodNotAllowed(logger, "GET"))
	mux.Handle("/", handleNotFound(logger))
}

// addLiveRoutes lists the routes that hold a request open: the event
// stream, with no request timeout (each write has its own deadline), and
// GET /v1/tasks/{id}, whose timeout grows by its ?wait=. Both take the
// same body limit as the rest of /v1, and an API key or the task's read
// token. The progress route of http tasks' receivers takes its own token.
func addLiveRoutes(mux *http.ServeMux, logger *slog.Logger, tasks *task.Service, lv *LiveOpts, v1 http.Handler, timeout time.Duration, g *gate) {
	mux.Handle("GET /v1/tasks/{id}/events", g.requireOrToken(lv.Tokens, readBody(logger, MaxBodyBytes, timeout, handleTaskEvents(logger, tasks, lv))))
	mux.Handle("GET /v1/tasks/{id}", g.requireOrToken(lv.Tokens, readBody(logger, MaxBodyBytes, timeout, withWaitTimeout(timeout, metrics.WithRoute(v1)))))
	if lv.Progress != nil {
		// A receiver's report, authorised by its progress token alone (not
		// a key, not a read token); not a browser's, so cross-origin
		// requests are refused.
		mux.Handle("POST /v1/tasks/{id}/progress", crossOriginProtection(logger, readBody(logger, 4<<10, timeout, withTimeout(timeout, handleTaskProgress(logger, lv)))))
		// Another method: 405 with Allow, as on every known path (not the
		// API's 401, which would say a key could help).
		mux.Handle("/v1/tasks/{id}/progress", handleMethodNotAllowed(logger, "POST"))
	}
}

// addRootRoutes lists the probes, outside /v1 so that no auth or body limit
// ever stands between them and an orchestrator.
func addRootRoutes(mux *http.ServeMux, logger *slog.Logger, ready func(context.Context) error) {
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(logger, ready))
	mux.Handle("/healthz", handleMethodNotAllowed(logger, "GET, HEAD"))
	mux.Handle("/readyz", handleMethodNotAllowed(logger, "GET, HEAD"))
	// Without this, ServeMux would redirect /v1 to /v1/.
	mux.Handle("/v1", handleNotFound(logger))
	mux.Handle("/", handleNotFound(logger))
}

// addOperatorRoutes lists the operator routes, on the root mux so that the
// /v1 API's own auth and limits do not apply to /v1/queues: every one of
// them goes through the operator chain (cross-origin protection,
// credentials, read-only mode).
func addOperatorRoutes(mux *http.ServeMux, logger *slog.Logger, opts *OperatorOpts, m *metrics.Metrics, timeout time.Duration) {
	if opts == nil {
		opts = &OperatorOpts{}
	}
	guard := func(h http.Handler) http.Handler {
		return operator(logger, opts, readBody(logger, MaxBodyBytes, timeout, withTimeout(timeout, h)))
	}
	if m != nil {
		if opts.MetricsPublic {
			mux.Handle("GET /metrics", m.Handler())
		} else {
			mux.Handle("GET /metrics", guard(m.Handler()))
		}
	}
	if ui := opts.RiverUI; ui != nil || !opts.enabled() {
		if ui == nil {
			// Without credentials the server builds no dashboard; the
			// chain answers 503 before reaching this.
			ui = handleNotFound(logger)
		}
		// River UI's own routes are matched inside it; no timeout, since
		// its pages and assets are not database calls of ours.
		mux.Handle("/riverui/", operator(logger, opts, ui))
		mux.Handle("GET /riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
	}
	if opts.Queues != nil {
		mux.Handle("GET /v1/queues", guard(handleQueueList(logger, opts.Queues)))
		mux.Handle("POST /v1/queues/{name}/pause", guard(handleQueuePause(logger, opts.Queues)))
		mux.Handle("POST /v1/queues/{name}/resume", guard(handleQueueResume(logger, opts.Queues)))
		mux.Handle("/v1/queues", operatorHeaders(handleMethodNotAllowed(logger, "GET, HEAD")))
		mux.Handle("/v1/queues/{name}/pause", operatorHeaders(handleMethodNotAllowed(logger, "POST")))
		mux.Handle("/v1/queues/{name}/resume", operatorHeaders(handleMethodNotAllowed(logger, "POST")))
	}
	if m != nil {
		mux.Handle("/metrics", operatorHeaders(handleMethodNotAllowed(logger, "GET, HEAD")))
	}
}
