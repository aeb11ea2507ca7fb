package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/task"
)

// idempotencyHeader may carry the idempotency key instead of the body.
const idempotencyHeader = "Idempotency-Key"

// handleTaskCreate serves POST /v1/tasks: 202 with the new task, or 200 with
// the existing one when the idempotency key was seen with the same request.
func handleTaskCreate(logger *slog.Logger, tasks *task.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := queryParams(r); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		req, err := decode[task.CreateRequest](r)
		fields := jsonstrict.FieldsError{}
		if err != nil && !errors.As(err, &fields) {
			writeProblem(w, r, logger, err)
			return
		}
		if err := idempotencyKeyHeader(r, &req); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		if len(fields) > 0 {
			// Report the service's own checks of what did decode too, so
			// that the client sees every problem at once.
			writeProblem(w, r, logger, withFieldsError(fields, tasks.Validate(req)))
			return
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

// idempotencyKeyHeader moves the Idempotency-Key header into req. The
// header must be given at most once and not empty (net/http trims the
// spaces around a value, so a blank key would otherwise vanish and two
// "idempotent" requests make two tasks), and must agree with the body's key
// when both are given.
func idempotencyKeyHeader(r *http.Request, req *task.CreateRequest) error {
	values := r.Header.Values(idempotencyHeader)
	switch {
	case len(values) == 0:
		return nil
	case len(values) > 1:
		return badRequest("the Idempotency-Key header is given more than once; send one")
	case values[0] == "":
		return &requestError{
			status: http.StatusUnprocessableEntity,
			detail: "the Idempotency-Key header is empty; send a key of 1 to 255 bytes, or no header",
			fields: map[string]string{idempotencyHeader: "must not be empty"},
		}
	case (req.IdempotencyKey != "" || req.Given.Has("idempotency_key")) && req.IdempotencyKey != values[0]:
		return &requestError{
			status: http.StatusUnprocessableEntity,
			detail: "idempotency_key in the body and the Idempotency-Key header differ; send one",
			fields: map[string]string{"idempotency_key": "differs from the Idempotency-Key header"},
		}
	}
	req.IdempotencyKey = values[0]
	return nil
}

// withFieldsError combines the decoder's field errors with the service's
// validation of the same request; for a field both name, the decoder's
// comes first (a field of the wrong type looks missing to the service).
func withFieldsError(fields jsonstrict.FieldsError, validationErr error) error {
	if err := notAnObject(fields, "send a JSON object"); err != nil {
		// Not an object at all: not a request to validate.
		return err
	}
	merged := map[string]string{}
	var validation *task.ValidationError
	if errors.As(validationErr, &validation) {
		maps.Copy(merged, validation.Fields)
	}
	maps.Copy(merged, fields)
	return &task.ValidationError{Fields: merged}
}

// handleTaskGet serves GET /v1/tasks/{id}?wait=: with a wait (at most
// MaxWait), it answers once the task is terminal or the wait runs out.
func handleTaskGet(logger *slog.Logger, tasks *task.Service, hub *live.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := queryParams(r, "wait", "token"); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		id, err := pathID(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		wait, err := waitParam(r)
		if err == nil && wait > 0 && hub == nil {
			err = paramError("wait", "is not available on this server", "wait is not available on this server")
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

// listParams reads the list's query: state and kind filter (empty means no
// filter), limit and after page. Each bad parameter is a 400 naming it.
func listParams(r *http.Request) (task.ListParams, error) {
	q, err := queryParams(r, "state", "kind", "limit", "after")
	if err != nil {
		return task.ListParams{}, err
	}
	params := task.ListParams{State: q["state"], Kind: q["kind"]}
	if !task.ValidText(params.Kind) {
		return params, paramError("kind", "must be valid UTF-8 without NUL characters",
			"query parameter kind must be valid UTF-8 without NUL characters")
	}
	if params.State != "" && !slices.Contains(task.States, params.State) {
		return params, paramError("state", "must be one of: "+strings.Join(task.States, ", "),
			fmt.Sprintf("query parameter state: %s is not a task state; use one of: %s", jsonstrict.Quote(params.State), strings.Join(task.States, ", ")))
	}
	if raw, ok := q["limit"]; ok {
		limit, err := strconv.Atoi(raw)
		// Canonical digits only: "05" or "+5" is not 5.
		if err != nil || limit < 1 || limit > task.ListLimitMax || strconv.Itoa(limit) != raw {
			return params, paramError("limit", fmt.Sprintf("must be an integer from 1 to %d", task.ListLimitMax),
				fmt.Sprintf("query parameter limit must be an integer from 1 to %d, not %s", task.ListLimitMax, jsonstrict.Quote(raw)))
		}
		params.Limit = limit
	}
	if raw, ok := q["after"]; ok {
		after, ok := decodeCursor(raw)
		if !ok {
			return params, paramError("after", "is not a valid cursor",
				"query parameter after is not a valid cursor; pass the \"next\" value of the previous page, or leave it out for the first page")
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
	// One cursor per page: "t05" or "t+5" is not "t5".
	return id, err == nil && id > 0 && strconv.FormatInt(id, 10) == digits
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
		if err := takesNothing(r); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
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

// pathID reads the task id of the path: a positive integer in canonical
// form, so that a task has one path ("01" and "+1" are not 1).
func pathID(r *http.Request) (int64, error) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	// Digits alone, not starting with 0, yet no int64: a canonical number
	// too large to be an id.
	if errors.Is(err, strconv.ErrRange) && raw[0] != '0' && strings.Trim(raw, "0123456789") == "" {
		return 0, badRequest(fmt.Sprintf("task id %s is out of range; ids are positive integers up to %d", jsonstrict.Quote(raw), int64(math.MaxInt64)))
	}
	if err != nil || id < 1 || strconv.FormatInt(id, 10) != raw {
		return 0, badRequest(fmt.Sprintf("task id %s is not valid; ids are positive integers, written without sign or leading zeros", jsonstrict.Quote(raw)))
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
