// Package admin is what operators steer Handoff with, apart from HTTP: the
// queue listing and pause/resume behind GET /v1/queues, and the River UI
// dashboard mounted at /riverui/. Changes to River's tables go through
// River's client; this package only reads them (internal/store).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"riverqueue.com/riverui"

	"github.com/handoff/handoff/internal/store"
)

// ErrQueueNotFound is returned for a queue River has no record of: no
// client has ever worked it (or it has been unused long enough for River to
// delete it).
var ErrQueueNotFound = errors.New("queue not found")

// ErrQueueWildcard is returned for the queue name "*", which River's
// QueuePause and QueueResume read as every queue: Pause and Resume act on
// one queue, and change nothing for it.
var ErrQueueWildcard = errors.New(`"*" names no queue (River reads it as every queue); pause or resume each queue by name`)

// Queue is one queue's state for an operator.
type Queue struct {
	// Name is the queue's name.
	Name string `json:"name"`
	// Paused is whether fetching from the queue is paused.
	Paused bool `json:"paused"`
	// PausedAt is when it was paused, if it is.
	PausedAt *time.Time `json:"paused_at"`
	// Available, Running, Scheduled, Retryable and Pending count the
	// queue's unfinished tasks by state.
	Available int64 `json:"available"`
	Running   int64 `json:"running"`
	Scheduled int64 `json:"scheduled"`
	Retryable int64 `json:"retryable"`
	Pending   int64 `json:"pending"`
	// OldestAvailableAgeSeconds is how long the oldest available task has
	// been due; 0 when none is available.
	OldestAvailableAgeSeconds float64 `json:"oldest_available_age_seconds"`
}

// Queues lists, pauses and resumes queues.
type Queues struct {
	pool       *pgxpool.Pool
	client     *river.Client[pgx.Tx]
	configured []string
}

// NewQueues returns the queue service of client, whose database is pool;
// configured are the queues this process works, listed even before River
// records them.
func NewQueues(pool *pgxpool.Pool, client *river.Client[pgx.Tx], configured []string) *Queues {
	return &Queues{pool: pool, client: client, configured: configured}
}

// List returns every queue River records, every configured queue and every
// queue with unfinished tasks, sorted by name.
func (q *Queues) List(ctx context.Context) ([]*Queue, error) {
	byName := map[string]*Queue{}
	get := func(name string) *Queue {
		if byName[name] == nil {
			byName[name] = &Queue{Name: name}
		}
		return byName[name]
	}
	for _, name := range q.configured {
		get(name)
	}
	res, err := q.client.QueueList(ctx, river.NewQueueListParams().First(10_000))
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	for _, rq := range res.Queues {
		item := get(rq.Name)
		item.Paused, item.PausedAt = rq.PausedAt != nil, rq.PausedAt
	}
	if err := q.addDepth(ctx, get); err != nil {
		return nil, err
	}
	return slices.SortedFunc(maps.Values(byName), func(a, b *Queue) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	}), nil
}

func (q *Queues) addDepth(ctx context.Context, get func(string) *Queue) error {
	depth, err := store.New().QueueDepth(ctx, q.pool)
	if err != nil {
		return fmt.Errorf("queue depth: %w", err)
	}
	for _, row := range depth {
		item := get(row.Queue)
		switch rivertype.JobState(row.State) {
		case rivertype.JobStateAvailable:
			item.Available = row.Jobs
		case rivertype.JobStateRunning:
			item.Running = row.Jobs
		case rivertype.JobStateScheduled:
			item.Scheduled = row.Jobs
		case rivertype.JobStateRetryable:
			item.Retryable = row.Jobs
		case rivertype.JobStatePending:
			item.Pending = row.Jobs
		case rivertype.JobStateCancelled, rivertype.JobStateCompleted, rivertype.JobStateDiscarded:
			// Not selected by QueueDepth.
		}
	}
	oldest, err := store.New().QueueOldestAvailable(ctx, q.pool)
	if err != nil {
		return fmt.Errorf("oldest available task: %w", err)
	}
	for _, row := range oldest {
		get(row.Queue).OldestAvailableAgeSeconds = row.AgeSeconds
	}
	return nil
}

// Get returns one queue.
//
// Errors: ErrQueueNotFound.
func (q *Queues) Get(ctx context.Context, name string) (*Queue, error) {
	queues, err := q.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, item := range queues {
		if item.Name == name {
			return item, nil
		}
	}
	return nil, ErrQueueNotFound
}

// riverAllQueues is the name River's QueuePause and QueueResume read as
// every queue.
const riverAllQueues = "*"

// Pause stops every client from fetching the queue's tasks; running tasks
// finish. It returns the queue as it now stands.
//
// Errors: ErrQueueNotFound, ErrQueueWildcard.
func (q *Queues) Pause(ctx context.Context, name string) (*Queue, error) {
	if name == riverAllQueues {
		return nil, ErrQueueWildcard
	}
	if err := q.client.QueuePause(ctx, name, nil); err != nil {
		return nil, queueError("pause", name, err)
	}
	return q.Get(ctx, name)
}

// Resume lets clients fetch the queue's tasks again.
//
// Errors: ErrQueueNotFound, ErrQueueWildcard.
func (q *Queues) Resume(ctx context.Context, name string) (*Queue, error) {
	if name == riverAllQueues {
		return nil, ErrQueueWildcard
	}
	if err := q.client.QueueResume(ctx, name, nil); err != nil {
		return nil, queueError("resume", name, err)
	}
	return q.Get(ctx, name)
}

func queueError(action, name string, err error) error {
	if errors.Is(err, rivertype.ErrNotFound) {
		return fmt.Errorf("%s queue %q: %w", action, name, ErrQueueNotFound)
	}
	return fmt.Errorf("%s queue %q: %w", action, name, err)
}

// NewRiverUI returns River UI's handler for client, serving under prefix
// (e.g. "/riverui"), started: its background services stop when ctx ends.
// River UI has no authentication of its own; mount it behind the operator
// guard (internal/httpapi).
func NewRiverUI(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger, prefix string) (*riverui.Handler, error) {
	handler, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    prefix,
	})
	if err != nil {
		return nil, fmt.Errorf("create River UI: %w", err)
	}
	if err := handler.Start(ctx); err != nil {
		return nil, fmt.Errorf("start River UI: %w", err)
	}
	return handler, nil
}
