package riverseam

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/store"
)

// TaskRow is the Go projection of a job into its tasks row: what the
// triggers of migrations 00010 and 00012 (insert) and 00011 (handoff_task_sync) write
// for it. Service.Create answers with it for the job it just inserted, and
// the conformance suite compares it with the row the triggers wrote: the two
// must never disagree.
//
// Columns River knows nothing of keep their zero value: progress (written
// by workers) and cancel_requested_at (written by Service.Cancel).
func TaskRow(job *rivertype.JobRow) (*store.Task, error) {
	// A new job, which is most of what is projected (each insert is
	// answered with it), has no errors: no encoding.
	errorsJSON := []byte("[]")
	if len(job.Errors) > 0 {
		var err error
		if errorsJSON, err = json.Marshal(job.Errors); err != nil {
			return nil, fmt.Errorf("encode errors of job %d: %w", job.ID, err)
		}
	}
	// Decoded by encoding/json/v2's semantics (go-json-experiment), at half
	// encoding/json's CPU: names match exactly, as the triggers' metadata
	// ->> 'handoff_tenant' does (encoding/json would also take
	// "Handoff_Tenant"). Duplicate names and invalid UTF-8, which v2 refuses
	// and jsonb never returns, are let through as encoding/json let them:
	// a committed job must never be answered as an error.
	var meta struct {
		Output         jsontext.Value `json:"output"`
		IdempotencyKey *string        `json:"handoff_idempotency_key"`
		RequestHash    *string        `json:"handoff_request_hash"`
		Tenant         *string        `json:"handoff_tenant"`
		CallbackURL    *string        `json:"handoff_callback_url"`
	}
	if len(job.Metadata) > 0 {
		if err := jsonv2.Unmarshal(job.Metadata, &meta, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)); err != nil {
			return nil, fmt.Errorf("decode metadata of job %d: %w", job.ID, err)
		}
	}
	var err error
	row := &store.Task{
		ID:             job.ID,
		Kind:           job.Kind,
		Queue:          job.Queue,
		Priority:       int16(job.Priority), //nolint:gosec // River keeps priority in 1-4.
		Args:           job.EncodedArgs,
		State:          string(job.State),
		Attempt:        int16(job.Attempt),     //nolint:gosec // river_job.attempt is a smallint.
		MaxAttempts:    int16(job.MaxAttempts), //nolint:gosec // river_job.max_attempts is a smallint.
		Errors:         errorsJSON,
		IdempotencyKey: meta.IdempotencyKey,
		CreatedAt:      job.CreatedAt,
		ScheduledAt:    job.ScheduledAt,
		StartedAt:      job.AttemptedAt,
		FinishedAt:     job.FinalizedAt,
		Tenant:         "default",
		CallbackURL:    meta.CallbackURL,
	}
	if meta.Tenant != nil {
		row.Tenant = *meta.Tenant
	}
	if job.State == rivertype.JobStateCompleted && len(meta.Output) > 0 {
		row.Result = json.RawMessage(meta.Output)
	}
	if meta.RequestHash != nil {
		if row.RequestHash, err = hex.DecodeString(*meta.RequestHash); err != nil {
			return nil, fmt.Errorf("decode request hash of job %d: %w", job.ID, err)
		}
	}
	return row, nil
}

// AttemptOf is the attempt a job's metadata says its last outcome came from
// (MetadataKeyAttempt), and whether it says one.
func AttemptOf(job *rivertype.JobRow) (int, bool) {
	var meta map[string]json.RawMessage
	if json.Unmarshal(job.Metadata, &meta) != nil {
		return 0, false
	}
	var attempt int
	if raw, ok := meta[MetadataKeyAttempt]; !ok || json.Unmarshal(raw, &attempt) != nil {
		return 0, false
	}
	return attempt, true
}
