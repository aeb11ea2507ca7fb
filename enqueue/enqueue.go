package enqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// ValidationError lists what is wrong with a request, by field ("kind",
// "args.seconds", "callback_url", ...).
type ValidationError = task.ValidationError

// IdempotencyConflictError means the idempotency key belongs to a task
// created from another request; TaskID names it.
type IdempotencyConflictError = task.IdempotencyConflictError

// ErrIdempotencyConflict matches an *IdempotencyConflictError with
// errors.Is.
var ErrIdempotencyConflict = task.ErrIdempotencyConflict

// Config configures a Client; nil means defaults.
type Config struct {
	// Kinds are the kinds the client accepts and validates args for.
	// Defaults to Handoff's built-in kinds (jobs.Kinds). The database
	// checks again that the server runs the kind.
	Kinds []jobs.Kind

	// Queues are the queues tasks may name. Defaults to none, which leaves
	// the check to the database: the queues the server serves.
	Queues []string

	// NowFunc returns the current time, for checking run_at. Defaults to
	// time.Now.
	NowFunc func() time.Time
}

// Client enqueues tasks. It holds no connection and is safe for concurrent
// use; create one and keep it.
type Client struct {
	validator *task.Validator
}

// NewClient returns a Client with config (nil means defaults).
func NewClient(config *Config) *Client {
	if config == nil {
		config = &Config{}
	}
	kinds := config.Kinds
	if kinds == nil {
		kinds = jobs.Kinds(jobs.Deps{})
	}
	return &Client{validator: task.NewValidator(kinds, config.Queues, config.NowFunc)}
}

// Opts are a task's options; nil or zero fields mean defaults.
type Opts struct {
	// Queue defaults to "default".
	Queue string
	// Priority is 1 (highest, the default) to 4.
	Priority int
	// MaxAttempts is 1 to 1000; defaults to 25.
	MaxAttempts int
	// RunAt schedules the task; zero or a time already past means now.
	// Within 10 years.
	RunAt time.Time
	// IdempotencyKey, up to 255 bytes, makes a repeat of the same request
	// return the same task.
	IdempotencyKey string
	// CallbackURL, an absolute http or https URL, receives the final task
	// object (POST, signed) when the task completes, is discarded or
	// cancelled.
	CallbackURL string
	// Tenant scopes the idempotency key; defaults to "default".
	Tenant string
}

// Enqueue creates a task of kind with args (a JSON object; nil means {})
// in tx, and returns its ID. The task exists when tx commits.
//
// Errors: *ValidationError for a bad request; *IdempotencyConflictError
// for a key used with another request.
func (c *Client) Enqueue(ctx context.Context, tx pgx.Tx, kind string, args json.RawMessage, opts *Opts) (int64, error) {
	if opts == nil {
		opts = &Opts{}
	}
	req := task.CreateRequest{
		Kind:           kind,
		Args:           args,
		Queue:          opts.Queue,
		Priority:       opts.Priority,
		MaxAttempts:    opts.MaxAttempts,
		IdempotencyKey: opts.IdempotencyKey,
		CallbackURL:    opts.CallbackURL,
		Tenant:         opts.Tenant,
	}
	if !opts.RunAt.IsZero() {
		req.RunAt = &opts.RunAt
	}
	p, err := c.validator.Prepare(req)
	if err != nil {
		return 0, err
	}
	return task.EnqueueTx(ctx, tx, p)
}

// Typed is Enqueue for a kind's typed args (jobs.SleepArgs, ...): the
// kind is args.Kind(), and the args are validated as if sent as JSON.
func Typed[T jobs.Args](ctx context.Context, c *Client, tx pgx.Tx, args T, opts *Opts) (int64, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return 0, fmt.Errorf("encode %s args: %w", args.Kind(), err)
	}
	return c.Enqueue(ctx, tx, args.Kind(), raw, opts)
}
