package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/task"
)

// addV1Routes lists the whole task API.
// With live set, the create answer carries read links; GET
// /v1/tasks/{id}/events and ?wait= are served from the root mux
// (addLiveRoutes), outside the request timeout.
func addV1Routes(mux *http.ServeMux, logger *slog.Logger, tasks *task.Service, lv *LiveOpts) {
	create := handleTaskCreate(logger, tasks)
	var hub *live.Hub
	if lv != nil {
		create = withReadLinks(lv.Tokens, create)
		hub = lv.Hub
	}
	mux.Handle("POST /v1/tasks", create)
	mux.Handle("GET /v1/tasks", handleTaskList(logger, tasks))
	mux.Handle("GET /v1/tasks/{id}", handleTaskGet(logger, tasks, hub))
	mux.Handle("POST /v1/tasks/{id}/cancel", handleTaskCancel(logger, tasks))
	mux.Handle("POST /v1/tasks/{id}/retry", handleTaskRetry(logger, tasks))
	// Known paths asked with another method: 405 with Allow, not 404.
	mux.Handle("/v1/tasks", handleMethodNotAllowed(logger, "GET, POST"))
	mux.Handle("/v1/tasks/{id}", handleMethodNotAllowed(logger, "GET"))
	mux.Handle("/v1/tasks/{id}/cancel", handleMethodNotAllowed(logger, "POST"))
	mux.Handle("/v1/tasks/{id}/retry", handleMethodNotAllowed(logger, "POST"))
	mux.Handle("/v1/tasks/{id}/events", handleMethodNotAllowed(logger, "GET"))
	mux.Handle("/", handleNotFound(logger))
}

// addLiveRoutes lists the routes that hold a request open: the event
// stream, with no request timeout (each write has its own deadline), and
// GET /v1/tasks/{id}, whose timeout grows by its ?wait=. Both take the
// same body limit as the rest of /v1.
func addLiveRoutes(mux *http.ServeMux, logger *slog.Logger, tasks *task.Service, lv *LiveOpts, v1 http.Handler, timeout time.Duration) {
	mux.Handle("GET /v1/tasks/{id}/events", limitBody(MaxBodyBytes, handleTaskEvents(logger, tasks, lv)))
	mux.Handle("GET /v1/tasks/{id}", limitBody(MaxBodyBytes, withWaitTimeout(timeout, v1)))
}

// addRootRoutes lists the probes, outside /v1 so that no auth or body limit
// ever stands between them and an orchestrator.
func addRootRoutes(mux *http.ServeMux, logger *slog.Logger, ready func(context.Context) error) {
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(logger, ready))
	mux.Handle("/", handleNotFound(logger))
}
