// Package enqueue creates Handoff tasks from Go, in the caller's own
// Postgres transaction: the task exists exactly when that transaction
// commits, together with the app's own rows, and never when it rolls back.
//
// It is for apps that embed Handoff or call it from their own Go service on
// the same database. Requests go through the same validation as the HTTP
// API (internal/task's Validator: kind, strict args, queue, priority,
// max_attempts, run_at, idempotency key, callback URL), then through the
// SQL function handoff.enqueue (migration 00012), which checks them again
// against the kinds and queues the running server recorded, applies the
// idempotency key, and inserts the River job exactly as River's InsertTx
// does; the tasks row is written by the same INSERT.
//
//	client := enqueue.NewClient(nil)
//	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		if _, err := tx.Exec(ctx, "INSERT INTO orders ..."); err != nil {
//			return err
//		}
//		_, err := enqueue.Typed(ctx, client, tx, jobs.NoopArgs{}, nil)
//		return err
//	})
//
// Idempotency keys behave as over HTTP and SQL, per tenant: the same key
// with the same request returns the same task; with another request,
// Enqueue returns an *IdempotencyConflictError naming the task that holds
// it. After any error, roll the transaction back, as after an error from
// River's ...Tx methods: whatever the database refuses (a conflict, a
// *ValidationError for a queue or kind the server does not serve when
// Config leaves that check to it) aborts the transaction, as any failed
// statement does. Only a *ValidationError from the Go checks, found before
// the database is asked, leaves it usable.
package enqueue
