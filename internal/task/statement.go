package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ownStatement lets River's InsertTx run its INSERT as a statement of its
// own, committed by Postgres when it ends, instead of inside BEGIN ... COMMIT.
//
// Accepting a task is a single INSERT into river_job whose trigger writes the
// tasks row (migration 00010), and one statement is already atomic: wrapping
// it in a transaction would only add two round trips, which measured as a
// third of the enqueue rate (docs/performance.md). River takes a pgx.Tx for
// its insert, so this is a pgx.Tx whose statements go straight to a pooled
// connection and whose Commit and Rollback have nothing to do.
//
// Whatever else River may send through it (an insert NOTIFY) also runs on
// its own; none of it needs to be atomic with the job, and the trigger keeps
// the job and its task together whatever River does.
type ownStatement struct {
	conn *pgxpool.Conn
}

// Bounds on the wait for one statement.
const (
	// statementTimeout bounds a statement whose caller has not given up.
	statementTimeout = 10 * time.Second
	// cancelGrace bounds the wait for a statement's answer after Postgres
	// was asked to cancel it.
	cancelGrace = 5 * time.Second
)

// runOwnStatement runs fn with a pgx.Tx whose statements commit one by one,
// on a connection of pool.
//
// When ctx ends first, the statement is cancelled in Postgres and its answer
// still read: cancelled, or done because it committed first. pgx's own
// reaction to a cancelled context is to close the connection, with a cancel
// request it does not wait for: a statement waiting on a lock that goes
// first still commits, its client having been told that it failed (seen in
// TestCreate/RequestThatGivesUpWritesNothing). Only when Postgres does not answer within
// statementTimeout, or cancelGrace after the cancel, is the connection given
// up, and the outcome unknown to the caller (no *pgconn.PgError).
func runOwnStatement(ctx context.Context, pool *pgxpool.Pool, fn func(ctx context.Context, tx pgx.Tx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	stmtCtx, cancelStmt := context.WithTimeout(context.WithoutCancel(ctx), statementTimeout)
	defer cancelStmt()

	cancelled := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cancelled)
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
		defer cancel()
		_ = conn.Conn().PgConn().CancelRequest(cancelCtx)
		// Give the answer cancelGrace to arrive, from now on.
		time.AfterFunc(cancelGrace, cancelStmt)
	})

	err = fn(stmtCtx, ownStatement{conn: conn})
	if stop() {
		conn.Release()
		return err
	}
	// A cancel request went out: it may still reach Postgres after the
	// statement ended and hit the next one on this connection, so the
	// connection is not reused.
	<-cancelled
	_ = conn.Hijack().Close(context.WithoutCancel(ctx))
	return errors.Join(err, ctx.Err())
}

var _ pgx.Tx = ownStatement{}

func (s ownStatement) Begin(ctx context.Context) (pgx.Tx, error) { return s.conn.Begin(ctx) }

func (s ownStatement) Commit(context.Context) error { return nil }

func (s ownStatement) Rollback(context.Context) error { return nil }

func (s ownStatement) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	return s.conn.CopyFrom(ctx, table, columns, rows)
}

func (s ownStatement) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return s.conn.SendBatch(ctx, b)
}

// LargeObjects cannot be served outside a transaction, and River does not
// use them: the zero value returned panics on use.
func (s ownStatement) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (s ownStatement) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return s.conn.Conn().Prepare(ctx, name, sql)
}

func (s ownStatement) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return s.conn.Exec(ctx, sql, args...)
}

func (s ownStatement) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return s.conn.Query(ctx, sql, args...)
}

func (s ownStatement) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.conn.QueryRow(ctx, sql, args...)
}

func (s ownStatement) Conn() *pgx.Conn { return s.conn.Conn() }
