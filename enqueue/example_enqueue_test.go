package enqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/handoff/handoff/enqueue"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// A task enqueued in the app's transaction exists exactly when the app's own
// row commits, and Handoff's workers run it.
func Example() {
	ctx := context.Background()
	pool, done := exampleDB("Example")
	defer done()
	stop := exampleServer(ctx, pool, true)
	defer stop()

	client := enqueue.NewClient(nil)
	if _, err := pool.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, task_id bigint NOT NULL)"); err != nil {
		panic(err)
	}
	seconds := 0.01
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		taskID, err := enqueue.Typed(ctx, client, tx, jobs.SleepArgs{Seconds: &seconds}, &enqueue.Opts{IdempotencyKey: "order-1"})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO orders (id, task_id) VALUES (1, $1)", taskID)
		return err
	})
	if err != nil {
		panic(err)
	}

	// The task's state is one query away, joined to the app's own row.
	var (
		state  string
		result json.RawMessage
	)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && state != "completed"; time.Sleep(20 * time.Millisecond) {
		err := pool.QueryRow(ctx, `SELECT t.state, coalesce(t.result, 'null') FROM orders o JOIN tasks t ON t.id = o.task_id WHERE o.id = 1`).Scan(&state, &result)
		if err != nil {
			panic(err)
		}
	}
	var sleep jobs.SleepResult
	if err := json.Unmarshal(result, &sleep); err != nil {
		panic(err)
	}
	fmt.Printf("order 1: task %s on attempt %d\n", state, sleep.Attempt)
	// Output:
	// order 1: task completed on attempt 1
}

// The same idempotency key with the same request gives the same task; with
// another request, an error naming the task that holds the key.
func ExampleClient_Enqueue() {
	ctx := context.Background()
	pool, done := exampleDB("ExampleClient_Enqueue")
	defer done()
	stop := exampleServer(ctx, pool, false)
	defer stop()

	client := enqueue.NewClient(nil)
	enqueueIn := func(args string) (int64, error) {
		var id int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			id, err = client.Enqueue(ctx, tx, "sleep", json.RawMessage(args), &enqueue.Opts{IdempotencyKey: "report-2026-12"})
			return err
		})
		return id, err
	}
	first, err := enqueueIn(`{"seconds": 1}`)
	if err != nil {
		panic(err)
	}
	again, err := enqueueIn(`{"seconds": 1.0}`)
	if err != nil {
		panic(err)
	}
	fmt.Println("same request, same task:", first == again)

	_, err = enqueueIn(`{"seconds": 2}`)
	var conflict *enqueue.IdempotencyConflictError
	fmt.Println("other request refused:", errors.As(err, &conflict) && conflict.TaskID == first)
	// Output:
	// same request, same task: true
	// other request refused: true
}

// A bad request is refused before the database is asked, with every problem
// by field, and the transaction stays usable.
func ExampleClient_Enqueue_validation() {
	client := enqueue.NewClient(nil)
	// No database needed: validation runs first (a nil tx is never used).
	_, err := client.Enqueue(context.Background(), nil, "sleep", json.RawMessage(`{"seconds": 7200}`),
		&enqueue.Opts{Priority: 7, CallbackURL: "ftp://example.com/done"})
	var validation *enqueue.ValidationError
	if errors.As(err, &validation) {
		fmt.Println(validation)
	}
	// Output:
	// args.seconds: must be between 0 and 3600; callback_url: must be an absolute http or https URL without credentials, at most 2048 bytes; priority: must be between 1 (highest) and 4
}

// exampleServer does what `handoff serve` does at start-up on pool: records
// its kinds and queues for handoff.enqueue and, with work, runs workers.
func exampleServer(ctx context.Context, pool *pgxpool.Pool, work bool) (stop func()) {
	kinds := jobs.Kinds(jobs.Deps{})
	workers, err := jobs.Workers(kinds)
	if err != nil {
		panic(err)
	}
	cfg := &river.Config{Logger: slog.New(slog.DiscardHandler), Workers: workers, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}
	if work {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}}
	}
	riverClient, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		panic(err)
	}
	if err := task.NewService(pool, riverClient, kinds, nil).Register(ctx); err != nil {
		panic(err)
	}
	if !work {
		return func() {}
	}
	if err := riverClient.Start(ctx); err != nil {
		panic(err)
	}
	return func() {
		if err := riverClient.StopAndCancel(ctx); err != nil {
			panic(err)
		}
	}
}
