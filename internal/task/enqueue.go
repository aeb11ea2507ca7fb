package task

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/handoff/handoff/internal/store"
)

// SQLSTATEs that handoff.enqueue raises (migration 00012).
const (
	// invalidParameterValue is a request that fails a rule; the field is
	// the error's COLUMN.
	invalidParameterValue = "22023"
	// uniqueViolation is Postgres's SQLSTATE for a duplicate key, which
	// handoff.enqueue also raises for a key reused with another request.
	uniqueViolation = "23505"
)

// idempotencyIndex is the unique index that refuses a second task with the
// same idempotency key in a tenant (migration 00012).
const idempotencyIndex = "tasks_idempotency_key_idx"

// EnqueueTx inserts the task of p in tx, the caller's transaction, through
// handoff.enqueue, which checks the request again in SQL and applies its
// idempotency key: the same key with the same request returns the task that
// holds it. It returns the task's ID; the task exists exactly when tx
// commits.
//
// Errors: *ValidationError when the database refuses the request (a kind
// or queue the server has not recorded, say), *IdempotencyConflictError for
// a key used with another request. Either leaves tx aborted, as any failed
// statement does.
func EnqueueTx(ctx context.Context, tx pgx.Tx, p *Prepared) (int64, error) {
	params := store.TaskEnqueueParams{
		Kind:           p.Kind,
		Args:           p.EncodedArgs,
		Queue:          &p.Queue,
		Priority:       ptr(int32(p.Priority)),    //nolint:gosec // Prepare keeps it in 1-4.
		MaxAttempts:    ptr(int32(p.MaxAttempts)), //nolint:gosec // Prepare keeps it in 1-1000.
		RunAt:          p.RunAt,
		IdempotencyKey: p.IdempotencyKey,
		CallbackURL:    p.CallbackURL,
		Tenant:         &p.Tenant,
	}
	id, err := store.New().TaskEnqueue(ctx, tx, params)
	if err != nil {
		return 0, enqueueError(err)
	}
	return id, nil
}

// enqueueError turns what handoff.enqueue raises into this package's errors.
func enqueueError(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case !errors.As(err, &pgErr):
	case pgErr.Code == invalidParameterValue && pgErr.ColumnName != "":
		msg, _ := strings.CutPrefix(pgErr.Message, pgErr.ColumnName+" ")
		return &ValidationError{Fields: map[string]string{pgErr.ColumnName: msg}}
	case pgErr.Code == uniqueViolation && pgErr.ConstraintName == idempotencyIndex:
		var id int64
		if _, scanErr := fmt.Sscanf(pgErr.Detail, "held by task %d", &id); scanErr == nil {
			return &IdempotencyConflictError{TaskID: id}
		}
		return ErrIdempotencyConflict
	}
	return fmt.Errorf("enqueue task: %w", err)
}

func ptr[T any](v T) *T { return &v }
