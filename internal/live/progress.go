package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/handoff/handoff/internal/store"
	"github.com/handoff/handoff/jobs"
)

// ProgressWriter is the jobs.ProgressWriter that cmd/server gives workers:
// it writes a report to the task's row, whose update notifies the task's
// watchers (migration 00014). Progress is not part of the exactly-once
// result, so a plain autocommit update is enough.
type ProgressWriter struct {
	db      store.DBTX
	queries *store.Queries
}

var _ jobs.ProgressWriter = (*ProgressWriter)(nil)

// NewProgressWriter returns a ProgressWriter that writes through db, a pool
// in the server, a transaction in tests.
func NewProgressWriter(db store.DBTX) *ProgressWriter {
	return &ProgressWriter{db: db, queries: store.New()}
}

// WriteProgress stores progress as the task's "progress" member.
func (p *ProgressWriter) WriteProgress(ctx context.Context, taskID int64, progress json.RawMessage) error {
	if _, err := p.queries.TaskProgressUpdate(ctx, p.db, store.TaskProgressUpdateParams{ID: taskID, Progress: progress}); err != nil {
		return fmt.Errorf("update progress of task %d: %w", taskID, err)
	}
	return nil
}

// ErrNotRunning means a progress report came for an attempt that is not
// running (finished, or the task moved on to another attempt).
var ErrNotRunning = errors.New("the task is not running this attempt")

// WriteAttemptProgress stores progress reported from outside the worker
// (an http task's receiver) while attempt of the task runs.
//
// Errors: ErrNotRunning.
func (p *ProgressWriter) WriteAttemptProgress(ctx context.Context, taskID int64, attempt int, progress json.RawMessage) error {
	n, err := p.queries.TaskProgressUpdateRunning(ctx, p.db, store.TaskProgressUpdateRunningParams{ID: taskID, Attempt: int16(min(attempt, math.MaxInt16)), Progress: progress}) //nolint:gosec // bounded by min
	if err != nil {
		return fmt.Errorf("update progress of task %d: %w", taskID, err)
	}
	if n == 0 {
		return ErrNotRunning
	}
	return nil
}
