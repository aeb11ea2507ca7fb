package httpapi

import (
	"context"
	"log/slog"
	"net/http"
)

type status struct {
	Status string `json:"status"`
}

// handleHealthz serves GET /healthz: the process is alive and serving HTTP.
// It checks nothing else, so that a database outage does not get healthy
// processes restarted.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = encode(w, http.StatusOK, status{Status: "ok"})
	})
}

// handleReadyz serves GET /readyz: 200 when ready reports nil (the database
// answers and its schema has every migration this binary needs), else 503.
func handleReadyz(logger *slog.Logger, ready func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			writeProblem(w, r, logger, &requestError{status: http.StatusServiceUnavailable, detail: "not ready: " + err.Error()})
			return
		}
		_ = encode(w, http.StatusOK, status{Status: "ready"})
	})
}
