// Package seamtest holds the conformance check of the river_job <-> tasks
// seam, for tests only (like internal/pgtest): RequireNoDrift compares a
// tasks row with what internal/riverseam.TaskRow projects from its job.
// The conformance suite in internal/riverseam runs it after every River
// transition; any test that drives River can call it.
package seamtest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/store"
)

// RequireNoDrift fails tb unless, for every id, the tasks row agrees with the
// river_job row (state, attempt, max attempts, errors, result, times, args,
// idempotency key and request hash, tenant, callback URL) and a completed job's output came from the attempt that
// completed it: the job's marker (riverseam.MetadataKeyAttempt), where it
// carries one, names its current attempt. It returns the job rows it read.
func RequireNoDrift(tb testing.TB, pool *pgxpool.Pool, ids ...int64) []*rivertype.JobRow {
	tb.Helper()
	ctx := tb.Context()
	// Both rows are read in one snapshot: a worker may move the job on
	// between two separate reads, and the trigger changes both in one
	// statement.
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	require.NoError(tb, err)
	defer tx.Rollback(context.WithoutCancel(ctx))
	exec := riverpgxv5.New(pool).UnwrapExecutor(tx)
	jobRows := make([]*rivertype.JobRow, 0, len(ids))
	for _, id := range ids {
		job, err := exec.JobGetByID(ctx, &riverdriver.JobGetByIDParams{ID: id})
		require.NoError(tb, err, "job %d", id)
		got, err := store.New().TaskGetByID(ctx, tx, id)
		require.NoError(tb, err, "task %d", id)
		want, err := riverseam.TaskRow(job)
		require.NoError(tb, err)

		require.Equal(tb, want.State, got.State, "task %d: state", id)
		require.Equal(tb, want.Attempt, got.Attempt, "task %d: attempt", id)
		require.Equal(tb, want.MaxAttempts, got.MaxAttempts, "task %d: max_attempts", id)
		require.Equal(tb, want.Kind, got.Kind, "task %d: kind", id)
		require.Equal(tb, want.Queue, got.Queue, "task %d: queue", id)
		require.Equal(tb, want.Priority, got.Priority, "task %d: priority", id)
		require.JSONEq(tb, string(want.Args), string(got.Args), "task %d: args", id)
		requireErrorsEqual(tb, want.Errors, got.Errors, id)
		if want.Result == nil {
			require.Nil(tb, got.Result, "task %d: result of a job in state %s", id, job.State)
		} else {
			require.NotNil(tb, got.Result, "task %d: result", id)
			require.JSONEq(tb, string(want.Result), string(got.Result), "task %d: result", id)
		}
		require.Equal(tb, want.IdempotencyKey, got.IdempotencyKey, "task %d: idempotency_key", id)
		require.Equal(tb, want.RequestHash, got.RequestHash, "task %d: request_hash", id)
		require.Equal(tb, want.Tenant, got.Tenant, "task %d: tenant", id)
		require.Equal(tb, want.CallbackURL, got.CallbackURL, "task %d: callback_url", id)
		requireTimeEqual(tb, &want.CreatedAt, &got.CreatedAt, "created_at", id)
		requireTimeEqual(tb, &want.ScheduledAt, &got.ScheduledAt, "scheduled_at", id)
		requireTimeEqual(tb, want.StartedAt, got.StartedAt, "started_at", id)
		requireTimeEqual(tb, want.FinishedAt, got.FinishedAt, "finished_at", id)

		if attempt, ok := riverseam.AttemptOf(job); ok && job.State == rivertype.JobStateCompleted {
			require.Equal(tb, job.Attempt, attempt, "task %d: completed attempt %d by attempt %d's outcome", id, job.Attempt, attempt)
		}
		jobRows = append(jobRows, job)
	}
	return jobRows
}

// RequireDeleted fails tb unless the job is gone and its task tells so: a
// job deleted before it finished leaves its task cancelled, a finished one
// leaves it as it was.
func RequireDeleted(tb testing.TB, pool *pgxpool.Pool, id int64, wantState string) *store.Task {
	tb.Helper()
	ctx := tb.Context()
	_, err := riverpgxv5.New(pool).GetExecutor().JobGetByID(ctx, &riverdriver.JobGetByIDParams{ID: id})
	require.ErrorIs(tb, err, rivertype.ErrNotFound, "job %d", id)
	got, err := store.New().TaskGetByID(ctx, pool, id)
	if errors.Is(err, pgx.ErrNoRows) {
		require.FailNow(tb, "the task of a deleted job must stay", "task %d", id)
	}
	require.NoError(tb, err)
	require.Equal(tb, wantState, got.State, "task %d: state", id)
	require.NotNil(tb, got.FinishedAt, "task %d: finished_at", id)
	return got
}

// requireErrorsEqual compares two encodings of River's attempt errors by
// meaning (times as instants, fields by name).
func requireErrorsEqual(tb testing.TB, want, got json.RawMessage, id int64) {
	tb.Helper()
	var w, g []rivertype.AttemptError
	require.NoError(tb, json.Unmarshal(want, &w))
	require.NoError(tb, json.Unmarshal(got, &g), "task %d: errors", id)
	require.Len(tb, g, len(w), "task %d: errors", id)
	for i := range w {
		require.Equal(tb, w[i].Attempt, g[i].Attempt, "task %d: errors[%d].attempt", id, i)
		require.Equal(tb, w[i].Error, g[i].Error, "task %d: errors[%d].error", id, i)
		require.Equal(tb, w[i].Trace, g[i].Trace, "task %d: errors[%d].trace", id, i)
		require.True(tb, w[i].At.Equal(g[i].At), "task %d: errors[%d].at: want %s, got %s", id, i, w[i].At, g[i].At)
	}
}

func requireTimeEqual(tb testing.TB, want, got *time.Time, name string, id int64) {
	tb.Helper()
	if want == nil || got == nil {
		require.Equal(tb, want == nil, got == nil, "task %d: %s: want %v, got %v", id, name, want, got)
		return
	}
	require.True(tb, want.Equal(*got), "task %d: %s: want %s, got %s", id, name, want, got)
}
