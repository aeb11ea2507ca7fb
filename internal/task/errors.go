package task

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

var (
	// ErrNotFound means no task has the ID.
	ErrNotFound = errors.New("task not found")

	// ErrIdempotencyConflict means the idempotency key belongs to a task that
	// was created from a different request.
	ErrIdempotencyConflict = errors.New("idempotency key was already used with a different request")

	// ErrKeyInUse means another transaction holds the idempotency key and
	// has not finished (an app's SQL enqueue still open): the request waited
	// flightLockWait for it (twice when it first shared a statement with
	// other requests), and wrote nothing. Retried once that
	// transaction ends, it is answered as a repeat, a conflict, or a new task
	// if the holder rolled back.
	ErrKeyInUse = errors.New("a request with this idempotency key is still in progress in another transaction; retry shortly")

	// ErrJobDeleted means the task finished long enough ago that River's
	// cleaner removed its job, so it can no longer be retried.
	ErrJobDeleted = errors.New("task's job was removed after its retention period; submit a new task instead")

	// ErrAttemptLimit means the task has used as many attempts as River can
	// count (32767), so it cannot be retried again.
	ErrAttemptLimit = errors.New("task has used as many attempts as River can count (32767) and cannot be retried; submit a new task instead")
)

// ValidationError lists what is wrong with a request, by field. Field names
// are the request's JSON names; args fields are prefixed "args.".
type ValidationError struct {
	Fields map[string]string
}

// Error lists the problems in a stable order.
func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for _, field := range slices.Sorted(maps.Keys(e.Fields)) {
		parts = append(parts, field+": "+e.Fields[field])
	}
	return strings.Join(parts, "; ")
}

// IdempotencyConflictError is ErrIdempotencyConflict with the task that
// holds the key (errors.Is(err, ErrIdempotencyConflict) holds for it).
type IdempotencyConflictError struct {
	// TaskID is the task created with the key.
	TaskID int64
}

func (e *IdempotencyConflictError) Error() string {
	return fmt.Sprintf("%s: task %d holds the key", ErrIdempotencyConflict, e.TaskID)
}

// Is makes errors.Is(err, ErrIdempotencyConflict) true.
func (e *IdempotencyConflictError) Is(target error) bool {
	return target == ErrIdempotencyConflict
}
