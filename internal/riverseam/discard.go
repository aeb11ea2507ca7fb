package riverseam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Discarded is what a worker returns once JobDiscardTx's transaction has
// committed: River's JobCancel of cause, which then changes nothing (the job
// is no longer running), marked so that metrics and the attempt's log line
// (telemetry.Outcome) count a discard, not a cancel.
func Discarded(cause error) error {
	return river.JobCancel(&discardedError{cause})
}

// discardedError is a discard's cause, which says it is one.
type discardedError struct{ error }

func (e *discardedError) Unwrap() error { return e.error }

// Discarded marks the error as a discard's (telemetry.Outcome).
func (*discardedError) Discarded() bool { return true }

// JobDiscardTx ends a running job discarded as part of tx, before it has
// used up its attempts: for a worker that knows its job can never succeed
// (an HTTP 404) and wants it to end as River ends a job whose last attempt
// failed, with cause as that attempt's error and output, when not nil, as
// the job's recorded output (metadata.output; the tasks row keeps result
// for completed tasks only, so the caller puts what the client must see in
// cause). River's API offers JobCompleteTx and JobCancel but no discard, so
// this sends the driver query River's own completer uses
// (JobSetStateIfRunningMany), which changes a job only while it is running,
// and marks the update with the job's attempt (MetadataKeyAttempt) like
// every outcome Middleware marks, so that the attempt guard treats it as
// this attempt's.
//
// After tx commits, the worker returns Discarded(cause), a
// river.JobCancel: River then writes its own outcome for a job that is no
// longer running, which changes nothing (JobSetStateIfRunningMany again),
// and logs at debug level only.
//
// It returns the job as it stands after the update: discarded, or in its
// current state if it was no longer running (cancelled meanwhile).
func JobDiscardTx(ctx context.Context, tx pgx.Tx, job *rivertype.JobRow, cause error, output json.RawMessage) (*rivertype.JobRow, error) {
	if job.State != rivertype.JobStateRunning {
		return nil, errors.New("discard job: job must be running")
	}
	now := time.Now().UTC()
	at := now
	if job.AttemptedAt != nil {
		at = *job.AttemptedAt
	}
	errData, err := json.Marshal(rivertype.AttemptError{At: at, Attempt: job.Attempt, Error: cause.Error()})
	if err != nil {
		return nil, fmt.Errorf("discard job: encode error: %w", err)
	}
	metadata := map[string]any{MetadataKeyAttempt: job.Attempt}
	if output != nil {
		metadata[rivertype.MetadataKeyOutput] = output
	}
	metadataBytes, err := json.Marshal(metadata)
	if err != nil {
		return nil, fmt.Errorf("discard job: encode metadata: %w", err)
	}

	params := riverdriver.JobSetStateDiscarded(job.ID, now, errData, metadataBytes)
	rows, err := riverpgxv5.New(nil).UnwrapExecutor(tx).JobSetStateIfRunningMany(ctx, &riverdriver.JobSetStateIfRunningManyParams{
		ID:              []int64{params.ID},
		Attempt:         []*int{params.Attempt},
		ErrData:         [][]byte{params.ErrData},
		FinalizedAt:     []*time.Time{params.FinalizedAt},
		MetadataDoMerge: []bool{params.MetadataDoMerge},
		MetadataUpdates: [][]byte{params.MetadataUpdates},
		ScheduledAt:     []*time.Time{params.ScheduledAt},
		State:           []rivertype.JobState{params.State},
	})
	if err != nil {
		return nil, fmt.Errorf("discard job: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("discard job %d: %w", job.ID, rivertype.ErrNotFound)
	}
	return rows[0], nil
}
