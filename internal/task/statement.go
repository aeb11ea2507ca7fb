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
// fifth of the enqueue rate (0.75 -> 0.97 of raw pgx, docs/performance.md).
// River takes a pgx.Tx for its insert, so this is a pgx.Tx whose statements
// go straight to a pooled connection and whose Commit and Rollback have
// nothing to do.
//
// Once a statement that returned rows (the INSERT ... RETURNING) has
// succeeded, it has committed, and nothing after it can undo it. River's only
// later statement is its insert NOTIFY, a wake-up for the workers; were its
// failure returned, River would report the insert failed and the client
// would hear 503 for a task that exists (TestChaosPostgresRestart caught
// that). So an Exec that fails after a committed statement is kept in
// lateErr, for the caller to log, and reported to River as done.
type ownStatement struct {
	conn      *pgxpool.Conn
	committed bool
	lateErr   error
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
// When ctx ends, or statementTimeout passes, while a statement runs, the
// statement is cancelled in Postgres and its answer still read: cancelled,
// or done because it committed first. pgx's own reaction to a context that
// ends is to close the connection, with a cancel request it does not wait
// for: a statement waiting on a lock that goes first still commits, its
// client having been told that it failed
// (TestCreate/RequestThatGivesUpWritesNothing). Only when Postgres does not
// answer within cancelGrace of the cancel is the connection given up, and
// the outcome unknown to the caller (no *pgconn.PgError).
//
// late is the error of statements that failed after one had committed (see
// ownStatement): not fn's failure, but worth a log line.
func runOwnStatement(ctx context.Context, pool *pgxpool.Pool, fn func(ctx context.Context, tx pgx.Tx) error) (late, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	limitCtx, cancelLimit := context.WithTimeout(ctx, statementTimeout)
	defer cancelLimit()
	// The statement's own context ends only cancelGrace after a cancel
	// request, so that pgx waits for Postgres's answer.
	stmtCtx, cancelStmt := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStmt()

	cancelled := make(chan struct{})
	stop := context.AfterFunc(limitCtx, func() {
		defer close(cancelled)
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
		defer cancel()
		_ = conn.Conn().PgConn().CancelRequest(cancelCtx)
		time.AfterFunc(cancelGrace, cancelStmt)
	})

	stmt := &ownStatement{conn: conn}
	err = fn(stmtCtx, stmt)
	if stop() {
		conn.Release()
		return stmt.lateErr, err
	}
	// A cancel request went out: it may still reach Postgres after the
	// statement ended and hit the next one on this connection, so the
	// connection is not reused.
	<-cancelled
	closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
	defer cancelClose()
	_ = conn.Hijack().Close(closeCtx)
	if err != nil {
		err = errors.Join(err, limitCtx.Err())
	}
	return stmt.lateErr, err
}

var _ pgx.Tx = (*ownStatement)(nil)

func (s *ownStatement) Begin(ctx context.Context) (pgx.Tx, error) { return s.conn.Begin(ctx) }

func (s *ownStatement) Commit(context.Context) error { return nil }

func (s *ownStatement) Rollback(context.Context) error { return nil }

func (s *ownStatement) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	return s.conn.CopyFrom(ctx, table, columns, rows)
}

func (s *ownStatement) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return s.conn.SendBatch(ctx, b)
}

// LargeObjects cannot be served outside a transaction, and River does not
// use them: the zero value returned panics on use.
func (s *ownStatement) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (s *ownStatement) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return s.conn.Conn().Prepare(ctx, name, sql)
}

func (s *ownStatement) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := s.conn.Exec(ctx, sql, args...)
	if err != nil && s.committed {
		s.lateErr = errors.Join(s.lateErr, err)
		return tag, nil
	}
	return tag, err
}

func (s *ownStatement) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return &committingRows{Rows: rows, s: s}, nil
}

func (s *ownStatement) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.conn.QueryRow(ctx, sql, args...)
}

func (s *ownStatement) Conn() *pgx.Conn { return s.conn.Conn() }

// committingRows notes that its statement committed when it closes without
// error: pgx has then read Postgres's ReadyForQuery after the commit.
type committingRows struct {
	pgx.Rows
	s *ownStatement
}

func (r *committingRows) Close() {
	r.Rows.Close()
	if r.Err() == nil {
		r.s.committed = true
	}
}
