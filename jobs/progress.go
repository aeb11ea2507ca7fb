package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Progress is what a running task reports about itself: how much of how much
// is done, in units the kind chooses, and a line for people. It is stored as
// the task's "progress" member, {"done", "total", "message"}.
type Progress struct {
	// Done is the amount of work done, between 0 and Total.
	Done float64 `json:"done"`
	// Total is the amount of work in all; 0 when unknown.
	Total float64 `json:"total"`
	// Message says what the task is doing, for people; may be empty.
	Message string `json:"message"`
}

// ProgressMessageMaxBytes bounds a progress message from outside a worker
// (an http task's receiver).
const ProgressMessageMaxBytes = 1024

// ProgressWriter stores a running task's progress. It is best effort: a lost
// progress write changes nothing about the task's outcome. The
// implementation lives outside this package (internal/live), which keeps
// jobs free of storage: workers get it through Deps.
type ProgressWriter interface {
	WriteProgress(ctx context.Context, taskID int64, progress json.RawMessage) error
}

// ProgressEveryDefault is the least time between two progress writes of one
// task: a chatty task reports as often as it likes, and at most two reports a
// second reach the database; the last one always does (see
// ProgressReporter.Flush).
const ProgressEveryDefault = 500 * time.Millisecond

// ProgressReporter throttles one task's progress reports. Report may be
// called as often as a worker likes; a report that comes sooner than Every
// after the last write is held, and written when Every has passed unless a
// newer one replaced it. Flush writes a held report at once; call it before
// the task finishes, so that its last report lands.
type ProgressReporter struct {
	writer ProgressWriter
	logger *slog.Logger
	taskID int64
	every  time.Duration

	mu        sync.Mutex
	lastWrite time.Time
	pending   json.RawMessage
	timer     *time.Timer
	ctx       context.Context //nolint:containedctx // the held report is written later on the worker's context
}

// NewProgressReporter returns a reporter for one task. A nil writer makes a
// reporter that drops every report; every ≤ 0 means ProgressEveryDefault.
func NewProgressReporter(writer ProgressWriter, logger *slog.Logger, taskID int64, every time.Duration) *ProgressReporter {
	if every <= 0 {
		every = ProgressEveryDefault
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ProgressReporter{writer: writer, logger: logger, taskID: taskID, every: every}
}

// Report records p, now or within Every. It never blocks on a held report.
func (r *ProgressReporter) Report(ctx context.Context, p Progress) {
	if r == nil || r.writer == nil {
		return
	}
	raw, err := json.Marshal(p)
	if err != nil {
		r.logger.WarnContext(ctx, "encode progress", slog.Int64("task_id", r.taskID), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	wait := r.every - time.Since(r.lastWrite)
	if wait > 0 {
		r.pending, r.ctx = raw, ctx
		if r.timer == nil {
			r.timer = time.AfterFunc(wait, r.flushHeld)
		}
		r.mu.Unlock()
		return
	}
	r.pending = nil
	r.lastWrite = time.Now()
	r.mu.Unlock()
	r.write(ctx, raw)
}

// Flush writes a held report now, so that the task's last report lands
// before its result.
func (r *ProgressReporter) Flush(ctx context.Context) {
	if r == nil || r.writer == nil {
		return
	}
	r.mu.Lock()
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	raw := r.pending
	r.pending = nil
	r.lastWrite = time.Now()
	r.mu.Unlock()
	if raw != nil {
		r.write(ctx, raw)
	}
}

func (r *ProgressReporter) flushHeld() {
	r.mu.Lock()
	r.timer = nil
	raw, ctx := r.pending, r.ctx
	r.pending = nil
	r.lastWrite = time.Now()
	r.mu.Unlock()
	if raw != nil && ctx.Err() == nil {
		r.write(ctx, raw)
	}
}

func (r *ProgressReporter) write(ctx context.Context, raw json.RawMessage) {
	if err := r.writer.WriteProgress(ctx, r.taskID, raw); err != nil && ctx.Err() == nil {
		r.logger.WarnContext(ctx, "record progress", slog.Int64("task_id", r.taskID), slog.Any("error", fmt.Errorf("write progress: %w", err)))
	}
}
