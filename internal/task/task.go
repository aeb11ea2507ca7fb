package task

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/handoff/handoff/internal/store"
)

// States are the states a task can be in: River's job states, in River's words.
var States = []string{
	"available", "scheduled", "pending", "running",
	"retryable", "completed", "discarded", "cancelled",
}

// Task is a task as clients see it.
type Task struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	Args        json.RawMessage `json:"args"`
	Queue       string          `json:"queue"`
	Priority    int             `json:"priority"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Errors      []AttemptError  `json:"errors"`
	Result      json.RawMessage `json:"result"`
	Progress    json.RawMessage `json:"progress"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	StartedAt   *time.Time      `json:"started_at"`
	FinishedAt  *time.Time      `json:"finished_at"`
	// CancelRequestedAt is set when a running task was asked to cancel;
	// State becomes "cancelled" when its worker returns.
	CancelRequestedAt *time.Time `json:"cancel_requested_at"`
	// CallbackURL receives the final task object, POSTed by an http task,
	// when the task reaches completed, discarded or cancelled.
	CallbackURL *string `json:"callback_url"`
}

// AttemptError is the error of one failed attempt.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

func fromRow(row *store.Task) (*Task, error) {
	t := &Task{
		ID:          row.ID,
		Kind:        row.Kind,
		State:       row.State,
		Args:        row.Args,
		Queue:       row.Queue,
		Priority:    int(row.Priority),
		Attempt:     int(row.Attempt),
		MaxAttempts: int(row.MaxAttempts),
		Errors:      []AttemptError{},
		Result:      nullIfEmpty(row.Result),
		Progress:    nullIfEmpty(row.Progress),
		CreatedAt:   row.CreatedAt,
		ScheduledAt: row.ScheduledAt,
		StartedAt:   row.StartedAt,
		FinishedAt:  row.FinishedAt,

		CancelRequestedAt: row.CancelRequestedAt,
		CallbackURL:       row.CallbackURL,
	}
	// River's error entries also carry a stack trace, which stays in the
	// database: it is for operators, not API clients.
	if len(row.Errors) > 0 && string(row.Errors) != "[]" {
		if err := json.Unmarshal(row.Errors, &t.Errors); err != nil {
			return nil, fmt.Errorf("decode errors of task %d: %w", row.ID, err)
		}
	}
	return t, nil
}

func nullIfEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
