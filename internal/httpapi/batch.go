package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/task"
)

// batchBody is the body of POST /v1/tasks/batch: the tasks, each the body
// POST /v1/tasks takes. It is decoded in one pass; each item's field errors
// ("tasks[3].args.seconds") become that item's problem.
type batchBody struct {
	Tasks []task.CreateRequest `json:"tasks"`
}

// batchResult is one item's answer: its status as POST /v1/tasks would have
// answered it, and the task (200, 202) or the problem.
type batchResult struct {
	Status  int        `json:"status"`
	Task    *task.Task `json:"task,omitempty"`
	Problem *problem   `json:"problem,omitempty"`
}

// handleTaskBatch serves POST /v1/tasks/batch: 200 with one result per task,
// in order, each accepted or refused on its own. A malformed envelope (bad
// JSON, not an object, an unknown field, no tasks or more than
// task.BulkMax) is one problem for the whole request, and writes nothing.
func handleTaskBatch(logger *slog.Logger, tasks *task.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := queryParams(r); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		if len(r.Header.Values(idempotencyHeader)) > 0 {
			writeProblem(w, r, logger, &requestError{
				status: http.StatusUnprocessableEntity,
				detail: "the Idempotency-Key header does not apply to a batch; give each task its own idempotency_key in the body",
				fields: map[string]string{idempotencyHeader: "not accepted on a batch"},
			})
			return
		}
		body, err := decode[batchBody](r)
		fields := jsonstrict.FieldsError{}
		if err != nil && !errors.As(err, &fields) {
			writeProblem(w, r, logger, err)
			return
		}
		envelope, items := splitBatchFields(fields)
		notObject := notAnObject(envelope, `send a JSON object {"tasks": [...]}`)
		switch {
		case notObject != nil:
			writeProblem(w, r, logger, notObject)
			return
		case len(envelope) > 0:
			writeProblem(w, r, logger, &requestError{status: http.StatusUnprocessableEntity, detail: "the batch is invalid: " + envelope.Error(), fields: envelope})
			return
		case len(body.Tasks) == 0 || len(body.Tasks) > task.BulkMax:
			msg := fmt.Sprintf("must be an array of 1 to %d tasks", task.BulkMax)
			if len(body.Tasks) > 0 {
				msg += ", not " + strconv.Itoa(len(body.Tasks))
			}
			writeProblem(w, r, logger, &requestError{status: http.StatusUnprocessableEntity, detail: "the batch is invalid: tasks: " + msg, fields: map[string]string{"tasks": msg}})
			return
		}

		results := make([]batchResult, len(body.Tasks))
		errs := make([]error, len(body.Tasks))
		// The items that decoded go to CreateMany, most often all of them,
		// in place: a copy of 1,000 requests was a twentieth of what a
		// batch allocated.
		reqs := body.Tasks[:0]
		idx := make([]int, 0, len(body.Tasks))
		for i, req := range body.Tasks {
			switch f := items[i]; {
			case f[""] != "":
				// The item itself is not an object: named by its place
				// in the batch, not by an empty field.
				errs[i] = &task.ValidationError{Fields: map[string]string{fmt.Sprintf("tasks[%d]", i): "the task " + f[""] + "; send a JSON object"}}
			case len(f) > 0:
				errs[i] = withFieldsError(f, tasks.Validate(req))
			default:
				reqs = append(reqs, req)
				idx = append(idx, i)
			}
		}
		if len(reqs) > 0 {
			for j, res := range tasks.CreateMany(r.Context(), reqs) {
				i := idx[j]
				switch {
				case res.Err != nil:
					errs[i] = res.Err
				case res.Created:
					results[i] = batchResult{Status: http.StatusAccepted, Task: res.Task}
				default:
					results[i] = batchResult{Status: http.StatusOK, Task: res.Task}
				}
			}
		}

		// Each refusal is its item's problem. Retry-After, when an item
		// has one, is the longest.
		header := http.Header{}
		answered, failed := false, error(nil)
		wait := 0
		for i, err := range errs {
			if err == nil {
				answered = true
				continue
			}
			p := problemOf(header, r, logger, err)
			if p.Status >= http.StatusInternalServerError && failed == nil {
				failed = err
			}
			if s, convErr := strconv.Atoi(header.Get("Retry-After")); convErr == nil {
				wait = max(wait, s)
			}
			header.Del("Retry-After")
			results[i] = batchResult{Status: p.Status, Problem: &p}
		}
		if failed != nil && !answered {
			// No task was accepted and the server failed: one answer for
			// the batch. As for a single create answered 503, a task without
			// a key may have been written if the answer was lost; with keys
			// the batch can be sent again safely.
			writeProblem(w, r, logger, failed)
			return
		}
		if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(wait))
		}
		writeBatch(w, r, logger, results)
	})
}

// batchBuffers holds the buffers answers are written into: the answer to
// 1,000 tasks is ~340 KB, which would otherwise be allocated, zeroed and
// collected for each batch.
var batchBuffers = sync.Pool{New: func() any { return new([]byte) }}

// writeBatch answers 200 with results, as respond would (json.Encoder's
// bytes, newline included), written by appendBatch instead of encoding/json.
func writeBatch(w http.ResponseWriter, r *http.Request, logger *slog.Logger, results []batchResult) {
	bp, _ := batchBuffers.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	// A task that cannot be written (its JSON from Postgres broken, which
	// jsonb does not allow) is committed: its item is a 500 and the others
	// are answered, never the whole batch as an error that a client would
	// send again.
	failed := func(t *task.Task, err error) *problem {
		p := problemOf(http.Header{}, r, logger, fmt.Errorf("encode task %d: %w", t.ID, err))
		return &p
	}
	buf, err := appendBatch((*bp)[:0], results, failed)
	if err != nil {
		writeProblem(w, r, logger, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	//nolint:gosec // JSON with HTML characters escaped, as application/json (G705 sees a request's bytes reach the answer)
	if _, err := w.Write(buf); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		logger.DebugContext(r.Context(), "write response", slog.Any("error", err))
	}
	// A buffer that grew past the largest answer BulkMax tasks of small
	// args make is let go, so that one huge answer is not kept.
	if cap(buf) <= 4<<20 {
		*bp = buf
		batchBuffers.Put(bp)
	}
}

// appendBatch appends what json.Encoder writes for {"results": results}:
// tasks through task.AppendJSON, which spends a fraction of encoding/json's
// CPU on them; problems, rare and small, through encoding/json.
// TestAppendBatch holds the two to the same bytes. A task AppendJSON
// refuses is answered with failed's problem instead (encoding/json would
// have refused the whole answer).
func appendBatch(dst []byte, results []batchResult, failed func(*task.Task, error) *problem) ([]byte, error) {
	dst = append(dst, `{"results":[`...)
	for i := range results {
		res := &results[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		item := len(dst)
		dst = append(dst, `{"status":`...)
		dst = strconv.AppendInt(dst, int64(res.Status), 10)
		prob := res.Problem
		if res.Task != nil {
			dst = append(dst, `,"task":`...)
			withTask, err := task.AppendJSON(dst, res.Task)
			if err == nil {
				dst = withTask
			} else {
				prob = failed(res.Task, err)
				dst = append(dst[:item], `{"status":`...)
				dst = strconv.AppendInt(dst, int64(prob.Status), 10)
			}
		}
		if prob != nil {
			p, err := json.Marshal(prob)
			if err != nil {
				return nil, err
			}
			dst = append(dst, `,"problem":`...)
			dst = append(dst, p...)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}\n"...), nil
}

// splitBatchFields separates the decoder's field errors of a batch body
// into the envelope's and each item's, the latter keyed as in a single
// task's body ("tasks[3].args.seconds" is item 3's "args.seconds"; an error
// of item 3 itself is its "").
func splitBatchFields(fields jsonstrict.FieldsError) (envelope jsonstrict.FieldsError, items map[int]jsonstrict.FieldsError) {
	envelope, items = jsonstrict.FieldsError{}, map[int]jsonstrict.FieldsError{}
	for path, msg := range fields {
		if rest, ok := strings.CutPrefix(path, "tasks["); ok {
			if n, after, ok := strings.Cut(rest, "]"); ok {
				if i, err := strconv.Atoi(n); err == nil && (after == "" || after[0] == '.') {
					if items[i] == nil {
						items[i] = jsonstrict.FieldsError{}
					}
					items[i][strings.TrimPrefix(after, ".")] = msg
					continue
				}
			}
		}
		envelope[path] = msg
	}
	return envelope, items
}

// notBatch answers a request for /v1/tasks/batch that a {id} route matched
// (any method but POST) with 405.
func notBatch(logger *slog.Logger, next http.Handler) http.Handler {
	notAllowed := handleMethodNotAllowed(logger, "POST")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "batch" {
			notAllowed.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
