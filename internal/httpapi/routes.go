package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/handoff/handoff/internal/task"
)

// addV1Routes lists the whole task API.
func addV1Routes(mux *http.ServeMux, logger *slog.Logger, tasks *task.Service) {
	mux.Handle("POST /v1/tasks", handleTaskCreate(logger, tasks))
	mux.Handle("GET /v1/tasks", handleTaskList(logger, tasks))
	mux.Handle("GET /v1/tasks/{id}", handleTaskGet(logger, tasks))
	mux.Handle("POST /v1/tasks/{id}/cancel", handleTaskCancel(logger, tasks))
	mux.Handle("POST /v1/tasks/{id}/retry", handleTaskRetry(logger, tasks))
	// Known paths asked with another method: 405 with Allow, not 404.
	mux.Handle("/v1/tasks", handleMethodNotAllowed(logger, "GET, HEAD, POST"))
	mux.Handle("/v1/tasks/{id}", handleMethodNotAllowed(logger, "GET, HEAD"))
	mux.Handle("/v1/tasks/{id}/cancel", handleMethodNotAllowed(logger, "POST"))
	mux.Handle("/v1/tasks/{id}/retry", handleMethodNotAllowed(logger, "POST"))
	mux.Handle("/", handleNotFound(logger))
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
