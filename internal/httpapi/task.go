package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/task"
)

// idempotencyHeader may carry the idempotency key instead of the body.
const idempotencyHeader = "Idempotency-Key"

// handleTaskCreate serves POST /v1/tasks: 202 with the new task, or 200 with
// the existing one when the idempotency key was seen with the same request.
func handleTaskCreate(logger *slog.Logger, tasks *task.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[task.CreateRequest](r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		if header := r.Header.Get(idempotencyHeader); header != "" {
			if req.IdempotencyKey != "" && req.IdempotencyKey != header {
				writeProblem(w, r, logger, &requestError{
					status: http.StatusUnprocessableEntity,
					detail: "idempotency_key in the body and the Idempotency-Key header differ; send one",
					fields: map[string]string{"idempotency_key": "differs from the Idempotency-Key header"},
				})
				return
			}
			req.IdempotencyKey = header
		}

		t, created, err := tasks.Create(r.Context(), req)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusAccepted
		}
		w.Header().Set("Location", "/v1/tasks/"+strconv.FormatInt(t.ID, 10))
		respond(w, r, logger, status, t)
	})
}

// handleTaskGet serves GET /v1/tasks/{id}?wait=: with a wait (at most
// MaxWait), it answers once the task is terminal or the wait runs out.
func handleTaskGet(logger *slog.Logger, tasks *task.Service, hub *live.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		wait, err := waitParam(r)
		if err == nil && wait > 0 && hub == nil {
			err = badRequest("wait is not available on this server")
		}
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		var t *task.Task
		if wait > 0 {
			t, err = waitTerminal(r.Context(), tasks, hub, id, wait)
		} else {
			t, err = tasks.Get(r.Context(), id)
		}
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		respond(w, r, logger, http.StatusOK, t)
	})
}

// taskList is the body of a list response.
type taskList struct {
	Tasks []*task.Task `json:"tasks"`
	Next  *string      `json:"next"`
}

// handleTaskList serves GET /v1/tasks?state=&kind=&limit=&after=, newest
// first, one page at a time.
func handleTaskList(logger *slog.Logger, tasks *task.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := listParams(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		page, next, err := tasks.List(r.Context(), params)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		body := taskList{Tasks: page}
		if next != 0 {
			cursor := encodeCursor(next)
			body.Next = &cursor
		}
		respond(w, r, logger, http.StatusOK, body)
	})
}

func listParams(r *http.Request) (task.ListParams, error) {
	q := r.URL.Query()
	params := task.ListParams{State: q.Get("state"), Kind: q.Get("kind")}
	if !task.ValidText(params.Kind) {
		return params, badRequest("kind must be valid UTF-8 without NUL characters")
	}
	if params.State != "" && !slices.Contains(task.States, params.State) {
		return params, badRequest(fmt.Sprintf("state %q is not a task state; use one of: %s", params.State, strings.Join(task.States, ", ")))
	}
	if raw := q.Get("limit"); raw != "" {
		limit, err := strconv.Atoi(raw)
		if err != nil || limit < 1 || limit > task.ListLimitMax {
			return params, badRequest(fmt.Sprintf("limit must be an integer from 1 to %d", task.ListLimitMax))
		}
		params.Limit = limit
	}
	if raw := q.Get("after"); raw != "" {
		after, ok := decodeCursor(raw)
		if !ok {
			return params, badRequest("after is not a valid cursor; pass the \"next\" value of the previous page")
		}
		params.AfterID = after
	}
	return params, nil
}

// The cursor is opaque to clients so that its content can change without
// breaking them; today it is the last task ID of the page.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("t" + strconv.FormatInt(id, 10)))
}

func decodeCursor(cursor string) (int64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, false
	}
	digits, ok := strings.CutPrefix(string(raw), "t")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	return id, err == nil && id > 0
}

// handleTaskCancel serves POST /v1/tasks/{id}/cancel.
func handleTaskCancel(logger *slog.Logger, tasks *task.Service) http.Handler {
	return handleTaskControl(logger, tasks.Cancel)
}

// handleTaskRetry serves POST /v1/tasks/{id}/retry.
func handleTaskRetry(logger *slog.Logger, tasks *task.Service) http.Handler {
	return handleTaskControl(logger, tasks.Retry)
}

func handleTaskControl(logger *slog.Logger, control func(ctx context.Context, id int64) (*task.Task, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		t, err := control(r.Context(), id)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		respond(w, r, logger, http.StatusOK, t)
	})
}

func pathID(r *http.Request) (int64, error) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest(fmt.Sprintf("task id %q is not valid; ids are positive integers", raw))
	}
	return id, nil
}

// respond writes a success body; a failure here means the client went away,
// which is only worth a debug line.
func respond[T any](w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, v T) {
	if err := encode(w, status, v); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		logger.DebugContext(r.Context(), "write response", slog.Any("error", err))
	}
}
