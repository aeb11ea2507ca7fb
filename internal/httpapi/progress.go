package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/jobs"
)

// ProgressEvery is the least time between two progress reports of one task
// that reach the database through handleTaskProgress, as for workers
// (jobs.ProgressEveryDefault): a chatty receiver gets 429 in between.
const ProgressEvery = 500 * time.Millisecond

// progressRequest is a receiver's report: jobs.Progress, strictly decoded.
type progressRequest struct {
	Done    *float64 `json:"done"`
	Total   float64  `json:"total"`
	Message string   `json:"message"`
}

// progressThrottle remembers when each task last reported, per process.
type progressThrottle struct {
	mu   sync.Mutex
	last map[int64]time.Time
}

// allow reports whether taskID may report now, and records it if so.
func (p *progressThrottle) allow(taskID int64, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last[taskID]) < ProgressEvery {
		return false
	}
	if len(p.last) > 100_000 {
		// Bounded: a forgotten entry only lets one report through early.
		clear(p.last)
	}
	p.last[taskID] = now
	return true
}

// handleTaskProgress serves POST /v1/tasks/{id}/progress?attempt=&token=:
// the receiver of an http task reports the progress of the attempt it is
// serving, at the URL the Handoff-Progress-URL request header gave it. The
// token (live.TokenSigner.SignProgress) is its only credential: it opens
// this task's attempt and nothing else, for the attempt's time. 204 when
// stored; 409 once the attempt no longer runs; 429 faster than
// ProgressEvery.
func handleTaskProgress(logger *slog.Logger, lv *LiveOpts) http.Handler {
	throttle := &progressThrottle{last: map[int64]time.Time{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := queryParams(r, "attempt", "token")
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		id, err := pathID(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		attempt, err := strconv.Atoi(q["attempt"])
		if err != nil || attempt < 1 || attempt > math.MaxInt16 || strconv.Itoa(attempt) != q["attempt"] {
			writeProblem(w, r, logger, paramError("attempt", "must be the attempt number of the Handoff-Progress-URL header",
				"query parameter attempt must be the attempt number of the Handoff-Progress-URL header"))
			return
		}
		if err := lv.Tokens.VerifyProgress(id, attempt, q["token"]); err != nil {
			writeProblem(w, r, logger, &requestError{status: http.StatusUnauthorized, detail: "the progress token is missing, invalid or expired: report at the Handoff-Progress-URL of the request being served"})
			return
		}
		body, err := decode[progressRequest](r)
		var fields jsonstrict.FieldsError
		if errors.As(err, &fields) {
			if err := notAnObject(fields, `send a JSON object {"done": ...}`); err != nil {
				writeProblem(w, r, logger, err)
				return
			}
			writeProblem(w, r, logger, &requestError{status: http.StatusUnprocessableEntity, detail: "the progress report is invalid: " + fields.Error(), fields: fields})
			return
		}
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		progress := jobs.Progress{Total: body.Total, Message: body.Message}
		if body.Done != nil {
			progress.Done = *body.Done
		}
		problems := map[string]string{}
		switch {
		case body.Done == nil:
			problems["done"] = "is required"
		case math.IsNaN(progress.Done) || progress.Done < 0 || (progress.Total > 0 && progress.Done > progress.Total):
			problems["done"] = "must be between 0 and total"
		}
		if math.IsNaN(progress.Total) || progress.Total < 0 {
			problems["total"] = "must be 0 (unknown) or more"
		}
		if len(progress.Message) > jobs.ProgressMessageMaxBytes {
			problems["message"] = "must be at most " + strconv.Itoa(jobs.ProgressMessageMaxBytes) + " bytes"
		}
		if len(problems) > 0 {
			writeProblem(w, r, logger, &requestError{status: http.StatusUnprocessableEntity, detail: "the progress report is invalid", fields: problems})
			return
		}
		if !throttle.allow(id, time.Now()) {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, logger, &requestError{status: http.StatusTooManyRequests, detail: "progress is stored at most twice a second per task; report less often (the last report before the answer is what shows)"})
			return
		}
		raw, err := json.Marshal(progress)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		err = lv.Progress.WriteAttemptProgress(r.Context(), id, attempt, raw)
		if errors.Is(err, live.ErrNotRunning) {
			writeProblem(w, r, logger, &requestError{status: http.StatusConflict, detail: "the task is not running this attempt any more; its progress is closed"})
			return
		}
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
