package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/handoff/handoff/internal/admin"
	"github.com/handoff/handoff/internal/jsonstrict"
)

// OperatorOpts configure the operator routes: GET /metrics, the River UI
// dashboard under /riverui/, and queue control under /v1/queues. All of
// them need operator credentials (HTTP basic auth); without any configured
// they are refused with 503.
type OperatorOpts struct {
	// User and Password are the operator's credentials (ADMIN_USER,
	// ADMIN_PASSWORD). Both empty: operator routes are refused.
	User, Password string

	// ReadOnly refuses every request under the operator routes that is not
	// GET or HEAD (ADMIN_READ_ONLY): the dashboard shows, nothing changes.
	ReadOnly bool

	// MetricsPublic serves GET /metrics without credentials (METRICS_PUBLIC),
	// for a scraper on a private network.
	MetricsPublic bool

	// RiverUI is River UI's handler, serving under /riverui. Nil: no
	// dashboard (404).
	RiverUI http.Handler

	// Queues backs /v1/queues. Nil: no queue control (404).
	Queues *admin.Queues
}

// enabled reports whether operator credentials are configured.
func (o *OperatorOpts) enabled() bool { return o != nil && o.User != "" && o.Password != "" }

// operatorRealm names the credentials a browser asks for.
const operatorRealm = `Basic realm="Handoff operators", charset="UTF-8"`

// requireOperator lets a request through only with the operator's
// credentials, compared in constant time (as hashes, so that not even their
// lengths leak). With none configured it refuses every request with 503.
func requireOperator(logger *slog.Logger, opts *OperatorOpts, next http.Handler) http.Handler {
	if !opts.enabled() {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, r, logger, &requestError{status: http.StatusServiceUnavailable, detail: "operator routes are off: the server has no ADMIN_USER and ADMIN_PASSWORD"})
		})
	}
	wantUser, wantPassword := sha256.Sum256([]byte(opts.User)), sha256.Sum256([]byte(opts.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		gotUser, gotPassword := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
		// Both compared, always: no early exit tells which one was wrong.
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passwordOK := subtle.ConstantTimeCompare(gotPassword[:], wantPassword[:])
		if !ok || userOK&passwordOK != 1 {
			if ok {
				logger.WarnContext(r.Context(), "operator authentication failed", slog.String("path", r.URL.Path), slog.String("remote", r.RemoteAddr))
			}
			w.Header().Set("WWW-Authenticate", operatorRealm)
			writeProblem(w, r, logger, &requestError{status: http.StatusUnauthorized, detail: "operator credentials required (HTTP basic auth)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readOnly refuses every method but GET and HEAD when on is true.
func readOnly(logger *slog.Logger, on bool, next http.Handler) http.Handler {
	if !on {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeProblem(w, r, logger, &requestError{status: http.StatusForbidden, detail: "operator routes are read-only (ADMIN_READ_ONLY=true)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossOrigin refuses cross-origin requests that change state (a page on
// another site POSTing to the dashboard's API with the operator's cached
// credentials): River UI's API decodes any body as JSON whatever its
// content type, so a "simple" cross-site form post would reach it.
func crossOrigin(logger *slog.Logger, next http.Handler) http.Handler {
	protection := http.NewCrossOriginProtection()
	protection.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.WarnContext(r.Context(), "cross-origin request refused", slog.String("method", shownMethod(r.Method)), slog.String("path", r.URL.Path), slog.String("origin", r.Header.Get("Origin")))
		writeProblem(w, r, logger, &requestError{status: http.StatusForbidden, detail: "cross-origin request refused"})
	}))
	return protection.Handler(next)
}

// operatorHeaders sets what every operator answer carries. River UI's
// bulk cancel, retry and delete are one click away, and cross-origin
// protection lets a framed page's clicks through (they are same-origin),
// so no other site may frame any of it. Its JSON shows every tenant's
// args: no cache keeps it, except River UI's static assets
// (/riverui/assets/, the same for everybody).
func operatorHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(r.URL.Path, "/riverui/assets/") {
			next.ServeHTTP(w, r)
			return
		}
		// Set now, and again as the header is written: net/http's file
		// server drops Cache-Control from an error (River UI's path to its
		// page for a route of its own, /riverui/jobs).
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(&noStoreWriter{ResponseWriter: w}, r)
	})
}

// noStoreWriter sets Cache-Control: no-store on the header it writes.
type noStoreWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *noStoreWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.Header().Set("Cache-Control", "no-store")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noStoreWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p) //nolint:wrapcheck // a pass-through writer
}

// Flush sends what is buffered, the header with no-store first.
func (w *noStoreWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *noStoreWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// operator is the chain every operator route gets, outermost first:
// its headers, cross-origin protection, credentials, read-only mode.
func operator(logger *slog.Logger, opts *OperatorOpts, next http.Handler) http.Handler {
	return operatorHeaders(crossOrigin(logger, requireOperator(logger, opts, readOnly(logger, opts.ReadOnly, next))))
}

// queuesResponse is GET /v1/queues's body.
type queuesResponse struct {
	Queues []*admin.Queue `json:"queues"`
}

// handleQueueList serves GET /v1/queues: every queue with its paused state,
// its unfinished tasks by state, and its oldest available task's age.
func handleQueueList(logger *slog.Logger, queues *admin.Queues) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := queryParams(r); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		list, err := queues.List(r.Context())
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		_ = encode(w, http.StatusOK, queuesResponse{Queues: list})
	})
}

// handleQueuePause serves POST /v1/queues/{name}/pause: no client fetches
// the queue's tasks until it is resumed; running tasks finish.
func handleQueuePause(logger *slog.Logger, queues *admin.Queues) http.Handler {
	return handleQueueChange(logger, queues.Pause)
}

// handleQueueResume serves POST /v1/queues/{name}/resume.
func handleQueueResume(logger *slog.Logger, queues *admin.Queues) http.Handler {
	return handleQueueChange(logger, queues.Resume)
}

func handleQueueChange(logger *slog.Logger, change func(ctx context.Context, name string) (*admin.Queue, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := takesNothing(r); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		name := r.PathValue("name")
		queue, err := change(r.Context(), name)
		if err != nil {
			writeProblem(w, r, logger, queueProblem(name, err))
			return
		}
		_ = encode(w, http.StatusOK, queue)
	})
}

// queueProblem maps the queue service's errors.
func queueProblem(name string, err error) error {
	if errors.Is(err, admin.ErrQueueWildcard) {
		return &requestError{status: http.StatusUnprocessableEntity, detail: admin.ErrQueueWildcard.Error()}
	}
	if errors.Is(err, admin.ErrQueueNotFound) {
		return &requestError{status: http.StatusNotFound, detail: "queue " + jsonstrict.Quote(name) + " not found: no client has worked it"}
	}
	return err
}
