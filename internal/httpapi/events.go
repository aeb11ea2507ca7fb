package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/handoff/handoff/internal/jsonstrict"
	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/task"
)

// MaxWait bounds GET /v1/tasks/{id}?wait=.
const MaxWait = 60 * time.Second

// LiveOpts wire the live routes: the event stream, ?wait= and the pages. A
// nil LiveOpts in ServerOpts leaves them out.
type LiveOpts struct {
	// Hub fans task changes out to streams. Required.
	Hub *live.Hub

	// Tokens signs and checks per-task read tokens. Required.
	Tokens *live.TokenSigner

	// Progress stores progress reported by http tasks' receivers
	// (POST /v1/tasks/{id}/progress); nil leaves that route out.
	Progress *live.ProgressWriter

	// KeepAlive is the time between keep-alive comments on an idle stream;
	// each also re-reads the task, a safety net under NOTIFY. Default 15 s.
	KeepAlive time.Duration

	// WriteTimeout bounds each write to a stream; a client that does not
	// read for this long is dropped. Default 10 s.
	WriteTimeout time.Duration
}

func (o *LiveOpts) withDefaults() *LiveOpts {
	c := *o
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	return &c
}

// terminal reports the states after which a task never changes by itself.
func terminal(state string) bool {
	return state == "completed" || state == "discarded" || state == "cancelled"
}

// handleTaskEvents serves GET /v1/tasks/{id}/events: Server-Sent Events,
// each event's data the task object as GET /v1/tasks/{id} returns it. The
// current task first, then one event per change (state, attempt error,
// progress, result), then the stream closes after a terminal state. Event
// ids count the snapshots a client has seen: a reconnect with Last-Event-ID
// n gets the current task as event n+1, so nothing is missed (each event is
// the whole task, not a delta).
func handleTaskEvents(logger *slog.Logger, tasks *task.Service, lv *LiveOpts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := queryParams(r, "token"); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		id, err := pathID(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		if err := checkReadToken(r, lv.Tokens, id); err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		seq, err := lastEventID(r)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		ctx := r.Context()
		sub, err := subscribe(ctx, lv.Hub, id)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}
		defer sub.Close()
		t, err := tasks.Get(ctx, id)
		if err != nil {
			writeProblem(w, r, logger, err)
			return
		}

		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // no proxy buffering (nginx)
		rc := http.NewResponseController(w)
		var last []byte
		send := func(t *task.Task, prefix string) error {
			body, err := json.Marshal(t)
			if err != nil {
				return fmt.Errorf("encode task: %w", err)
			}
			if bytes.Equal(body, last) {
				return nil
			}
			seq++
			last = body
			return writeEvent(rc, w, lv.WriteTimeout, fmt.Sprintf("%sid: %d\ndata: %s\n\n", prefix, seq, body))
		}
		w.WriteHeader(http.StatusOK)
		if err := send(t, "retry: 1000\n"); err != nil {
			logger.DebugContext(ctx, "stream write", slog.Any("error", err))
			return
		}
		keepAlive := time.NewTicker(lv.KeepAlive)
		defer keepAlive.Stop()
		for !terminal(t.State) {
			select {
			case <-ctx.Done():
				return
			case <-lv.Hub.Stopping():
				return
			case <-sub.C:
			case <-keepAlive.C:
				if err := writeEvent(rc, w, lv.WriteTimeout, ": keep-alive\n\n"); err != nil {
					return
				}
			}
			if t, err = tasks.Get(ctx, id); err != nil {
				if ctx.Err() == nil {
					logger.WarnContext(ctx, "stream: read task", slog.Int64("task_id", id), slog.Any("error", err))
				}
				return
			}
			if err := send(t, ""); err != nil {
				logger.DebugContext(ctx, "stream write", slog.Any("error", err))
				return
			}
		}
	})
}

// writeEvent writes one event under its own deadline, which replaces the
// server's WriteTimeout for this connection: a stream lives as long as its
// client reads.
func writeEvent(rc *http.ResponseController, w http.ResponseWriter, timeout time.Duration, event string) error {
	if err := rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := w.Write([]byte(event)); err != nil { //nolint:gosec // text/event-stream of JSON, never rendered as HTML
		return fmt.Errorf("write event: %w", err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// maxEventID bounds event ids: 2^53 - 1, the largest a Last-Event-ID may
// lead to.
const maxEventID = 1<<53 - 1

func lastEventID(r *http.Request) (int64, error) {
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	// Ids go on from n+1, and stay at most 2^53-1 (exact in JavaScript),
	// far from wrapping: a stream sends fewer events than the gap.
	if err != nil || n < 0 || n >= maxEventID || strconv.FormatInt(n, 10) != raw {
		return 0, badRequest(fmt.Sprintf("Last-Event-ID %s is not an event id of this stream; ids are integers from 0 to %d", jsonstrict.Quote(raw), int64(maxEventID-1)))
	}
	return n, nil
}

// checkReadToken accepts a request whose token query parameter is a valid
// read token for the task. A request without one passes: the gate
// (auth.go) has asked it for an API key.
func checkReadToken(r *http.Request, tokens *live.TokenSigner, taskID int64) error {
	token := r.URL.Query().Get("token")
	if token == "" {
		return nil
	}
	if err := tokens.Verify(taskID, token); err != nil {
		return &requestError{status: http.StatusForbidden, detail: "token is not a valid read token for this task, or it has expired: create links last an hour"}
	}
	return nil
}

func subscribe(ctx context.Context, hub *live.Hub, id int64) (*live.Subscription, error) {
	sub, err := hub.Subscribe(ctx, id)
	if errors.Is(err, live.ErrTooManyStreams) {
		return nil, &requestError{status: http.StatusServiceUnavailable, detail: err.Error() + "; retry later", retryAfter: "1"}
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return sub, nil
}

// waitParam reads ?wait=: absent means no wait; else a duration from 0s to
// MaxWait.
func waitParam(r *http.Request) (time.Duration, error) {
	raw := r.URL.Query().Get("wait")
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 || d > MaxWait {
		return 0, &requestError{
			status: http.StatusBadRequest,
			detail: fmt.Sprintf("wait=%s: must be a duration from 0s to %s, e.g. wait=30s", jsonstrict.Quote(raw), MaxWait),
			fields: map[string]string{"wait": fmt.Sprintf("must be a duration from 0s to %s", MaxWait)},
		}
	}
	return d, nil
}

// waitTerminal returns the task once it is terminal, or as it is when wait
// runs out.
func waitTerminal(ctx context.Context, tasks *task.Service, hub *live.Hub, id int64, wait time.Duration) (*task.Task, error) {
	sub, err := subscribe(ctx, hub, id)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		t, err := tasks.Get(ctx, id)
		if err != nil || terminal(t.State) {
			return t, err //nolint:wrapcheck // Get's errors are the service's own
		}
		select {
		case <-sub.C:
		case <-hub.Stopping():
			return tasks.Get(ctx, id) //nolint:wrapcheck // Get's errors are the service's own
		case <-timer.C:
			return tasks.Get(ctx, id) //nolint:wrapcheck // Get's errors are the service's own
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for task %d: %w", id, ctx.Err())
		}
	}
}

// withWaitTimeout is withTimeout for GET /v1/tasks/{id}: a request with a
// valid ?wait= gets the wait on top of the timeout, and so does its write
// deadline, which would otherwise be the server's WriteTimeout.
func withWaitTimeout(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total := timeout
		if wait, err := waitParam(r); err == nil && wait > 0 {
			total += wait
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(total + time.Second))
		}
		withTimeout(total, next).ServeHTTP(w, r)
	})
}
