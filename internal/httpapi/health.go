package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// NotReadyError is a readiness failure whose Reason is safe to show to
// any caller of /readyz.
type NotReadyError struct {
	Reason string
	Err    error
}

func (e *NotReadyError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *NotReadyError) Unwrap() error { return e.Err }

func notReadyReason(err error) string {
	var nr *NotReadyError
	if errors.As(err, &nr) {
		return nr.Reason
	}
	return "readiness check failed; see the server log"
}

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
			// The cause may name hosts and users: it goes to the log, and
			// the probe's caller gets the kind of problem.
			logger.WarnContext(r.Context(), "not ready", slog.Any("error", err))
			writeProblem(w, r, logger, &requestError{status: http.StatusServiceUnavailable, detail: "not ready: " + notReadyReason(err)})
			return
		}
		_ = encode(w, http.StatusOK, status{Status: "ready"})
	})
}
