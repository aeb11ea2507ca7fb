package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/handoff/handoff/internal/metrics"
	"github.com/handoff/handoff/internal/task"
)

// problem is an RFC 9457 problem details body.
type problem struct {
	Type     string            `json:"type"`
	Title    string            `json:"title"`
	Status   int               `json:"status"`
	Detail   string            `json:"detail"`
	Instance string            `json:"instance,omitempty"`
	Errors   map[string]string `json:"errors,omitempty"`
	// TaskID names the task that holds a reused idempotency key (409).
	TaskID int64 `json:"task_id,omitempty"`
}

// requestError is a client mistake found by this package (a malformed body,
// a bad path or query parameter), with the status that describes it.
type requestError struct {
	status int
	detail string
	fields map[string]string
	// retryAfter, when set, is the answer's Retry-After, in seconds.
	retryAfter string
}

func (e *requestError) Error() string { return e.detail }

func badRequest(detail string) error {
	return &requestError{status: http.StatusBadRequest, detail: detail}
}

// writeProblem is the only place an error becomes a response. Errors the
// client can act on are shown as they are; anything else is logged with its
// cause and shown as a generic 500 (or 503 when the database is unreachable
// or too slow, which a client may retry).
func writeProblem(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	p := problemOf(w.Header(), r, logger, err)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	if err := json.NewEncoder(w).Encode(p); err != nil {
		logger.DebugContext(r.Context(), "write problem", slog.Any("error", err))
	}
}

// problemOf is the problem an error shows as, with the headers that go with
// it (Location, Retry-After) set in header.
func problemOf(header http.Header, r *http.Request, logger *slog.Logger, err error) problem {
	p := problem{Type: "about:blank", Instance: r.URL.Path}

	var (
		reqErr      *requestError
		validation  *task.ValidationError
		maxBytesErr *http.MaxBytesError
		conflict    *task.IdempotencyConflictError
		limit       *task.LimitError
	)
	switch {
	case errors.As(err, &reqErr):
		p.Status, p.Detail, p.Errors = reqErr.status, reqErr.detail, reqErr.fields
		if reqErr.retryAfter != "" {
			header.Set("Retry-After", reqErr.retryAfter)
		}
	case errors.As(err, &maxBytesErr):
		p.Status = http.StatusRequestEntityTooLarge
		p.Detail = "request body is larger than " + byteSize(maxBytesErr.Limit)
	case errors.As(err, &validation):
		p.Status, p.Detail, p.Errors = http.StatusUnprocessableEntity, "the request is invalid: "+validation.Error(), validation.Fields
	case errors.Is(err, task.ErrNotFound):
		p.Status, p.Detail = http.StatusNotFound, "no task has this id"
	case errors.As(err, &conflict):
		// The task that holds the key, for a client that lost its answer.
		header.Set("Location", "/v1/tasks/"+strconv.FormatInt(conflict.TaskID, 10))
		p.Status, p.Detail, p.TaskID = http.StatusConflict, err.Error(), conflict.TaskID
	case errors.As(err, &limit):
		header.Set("Retry-After", retryAfter(limit.RetryAfter))
		p.Status, p.Detail = http.StatusTooManyRequests, err.Error()
	case errors.Is(err, task.ErrKeyInUse):
		header.Set("Retry-After", "1")
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, task.ErrIdempotencyConflict), errors.Is(err, task.ErrJobDeleted), errors.Is(err, task.ErrAttemptLimit):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		logger.DebugContext(r.Context(), "client gone", slog.String("path", r.URL.Path))
		p.Status, p.Detail = http.StatusServiceUnavailable, "the request was cancelled"
	case isDataException(err):
		// Postgres refused a value (class 22): input that slipped past
		// validation is still the client's, never a 500, and the answer
		// names the actual cause. It is logged: validation should have
		// caught it.
		logger.WarnContext(r.Context(), "value refused by Postgres", slog.String("path", r.URL.Path), slog.Any("error", err))
		p.Status, p.Detail = http.StatusUnprocessableEntity, "a value in the request cannot be stored: "+dataExceptionCause(err)
	case isUnavailable(err):
		logger.WarnContext(r.Context(), "database unavailable", slog.String("path", r.URL.Path), slog.Any("error", err))
		header.Set("Retry-After", "1")
		p.Status, p.Detail = http.StatusServiceUnavailable, "the database is unavailable or too slow right now; retry shortly"
	default:
		logger.ErrorContext(r.Context(), "internal error", slog.String("method", shownMethod(r.Method)), slog.String("path", r.URL.Path), slog.Any("error", err))
		p.Status, p.Detail = http.StatusInternalServerError, "an internal error occurred; it has been logged"
	}
	p.Title = http.StatusText(p.Status)
	return p
}

func isDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// dataExceptionCause says what Postgres refused, in the client's terms
// where the code is one the API's input can cause, else in Postgres's.
func dataExceptionCause(err error) string {
	var pgErr *pgconn.PgError
	errors.As(err, &pgErr)
	switch pgErr.Code {
	case "22021", "22P05":
		// character_not_in_repertoire, untranslatable_character.
		return "text must be valid UTF-8 without NUL characters (\\u0000)"
	case "22003":
		return "a number is out of range (" + pgErr.Message + ")"
	default:
		return pgErr.Message
	}
}

// isUnavailable reports errors that mean the database could not be reached
// or did not answer in time, as opposed to a bug.
func isUnavailable(err error) bool {
	var (
		connectErr *pgconn.ConnectError
		netErr     net.Error
		pgErr      *pgconn.PgError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &connectErr), errors.As(err, &netErr):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down or starting; 57014: statement timeout; 40001 and
		// 40P01: a serialization failure or a deadlock (with a migration's
		// DDL, say), whose statement was rolled back and may be sent again.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "57014" || pgErr.Code == "40001" || pgErr.Code == "40P01"
	default:
		return pgconn.SafeToRetry(err)
	}
}

// handleMethodNotAllowed answers a known path asked with another method.
func handleMethodNotAllowed(logger *slog.Logger, allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeProblem(w, r, logger, &requestError{status: http.StatusMethodNotAllowed, detail: fmt.Sprintf("%s %s is not supported; use %s", shownMethod(r.Method), r.URL.Path, allow)})
	})
}

// handleNotFound answers requests no route matches.
func handleNotFound(logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, &requestError{status: http.StatusNotFound, detail: "no such endpoint: " + shownMethod(r.Method) + " " + r.URL.Path})
	})
}

// shownMethod is a request's method as an answer may echo it: a method is
// any token the client sends, up to the header limit, so one that is not
// among net/http's nine is cut to 32 bytes (a token is ASCII).
func shownMethod(method string) string {
	const most = 32
	if metrics.MethodLabel(method) == "other" && len(method) > most {
		return method[:most] + "…"
	}
	return method
}

// byteSize writes a body limit as people read it: 1 MiB, 4 KiB, 100 bytes.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
