package live

import (
	"context"
	"encoding/json"
	"fmt"

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
