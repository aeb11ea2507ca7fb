package riverseam

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrSecondStatement is returned, without sending it, for a statement that
// would follow the one statement of RunOwnStatement's pgx.Tx: each would
// commit on its own, so two of them would not be atomic. River's InsertTx
// sends one INSERT, then (outside any atomicity) its insert notification;
// were River to send more, this error says so instead of splitting a write.
var ErrSecondStatement = errors.New("a second statement in a one-statement transaction")

// Statements River sends around its INSERT that write nothing needing to be
// atomic with it (riverdriver/riverpgxv5/internal/dbsqlc/pg_misc.sql):
// the probe of Postgres's version, once per driver, before or after the
// INSERT, which reads only; and the insert NOTIFY, a wake-up for workers,
// after it.
const (
	versionProbe = "-- name: PGGetProductAndVersion "
	insertNotify = "-- name: PGNotifyMany "
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
// Only one statement may go through it (ErrSecondStatement); on any path
// (Exec, Query, QueryRow, SendBatch, CopyFrom) it has committed once its
// answer was read without error, and nothing after it can undo it. River's only
// later statement is its insert NOTIFY, a wake-up for the workers; were its
// failure returned, River would report the insert failed and the client
// would hear 503 for a task that exists (TestChaosPostgresRestart caught
// that). So an Exec that fails after a committed statement is kept in
// lateErr, for the caller to log, and reported to River as done.
type ownStatement struct {
	conn      *pgxpool.Conn
	sent      bool // the one statement went to Postgres
	committed bool
	lateErr   error
	// lockTimeoutSet: the connection's lock_timeout is
	// RunOwnStatementWaiting's, to be reset before any later statement
	// (River's insert NOTIFY, which takes a lock at its commit) and before
	// the connection goes back to the pool.
	lockTimeoutSet bool
}

// resetLockTimeout puts the connection's lock_timeout back, and reports
// whether it could.
func (s *ownStatement) resetLockTimeout(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, cancelGrace)
	defer cancel()
	if _, err := s.conn.Exec(ctx, "RESET lock_timeout"); err != nil {
		s.lateErr = errors.Join(s.lateErr, fmt.Errorf("reset lock_timeout: %w", err))
		return false
	}
	s.lockTimeoutSet = false
	return true
}

// admit lets the first statement through, River's version probe at any
// time, and River's insert NOTIFY once the first statement committed.
// The probe, which reads only, passes untracked (probe true).
func (s *ownStatement) admit(sql string) (probe bool, err error) {
	switch {
	case strings.HasPrefix(sql, versionProbe):
		return true, nil
	case !s.sent:
		s.sent = true
		return false, nil
	case s.committed && strings.HasPrefix(sql, insertNotify):
		return false, nil
	}
	return false, fmt.Errorf("%w (refused, not sent): %.80q", ErrSecondStatement, sql)
}

// Bounds on the wait for one statement.
const (
	// statementTimeout bounds a statement whose caller has not given up.
	statementTimeout = 10 * time.Second
	// cancelGrace bounds the wait for a statement's answer after Postgres
	// was asked to cancel it.
	cancelGrace = 5 * time.Second
)

// RunOwnStatement runs fn with a pgx.Tx whose statements commit one by one,
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
func RunOwnStatement(ctx context.Context, pool *pgxpool.Pool, fn func(ctx context.Context, tx pgx.Tx) error) (late, err error) {
	return RunOwnStatementWaiting(ctx, pool, 0, fn)
}

// RunOwnStatementWaiting is RunOwnStatement whose statement waits at most
// lockWait for a lock (Postgres's lock_timeout; 0 waits as long as the
// statement may): a row lock, such as another transaction's uncommitted
// row with the same unique key, or a table lock. Past it the statement
// fails with SQLSTATE 55P03 (lock_not_available) and wrote nothing. The
// setting is the connection's only while fn runs: it costs a round trip
// before fn and one after, and a connection whose setting could not be
// put back is closed rather than returned to the pool.
func RunOwnStatementWaiting(ctx context.Context, pool *pgxpool.Pool, lockWait time.Duration, fn func(ctx context.Context, tx pgx.Tx) error) (late, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	stmt := &ownStatement{conn: conn}
	if lockWait > 0 {
		if _, err := conn.Exec(ctx, "SELECT set_config('lock_timeout', $1, false)", strconv.FormatInt(max(lockWait.Milliseconds(), 1), 10)); err != nil {
			conn.Release()
			return nil, fmt.Errorf("set lock_timeout: %w", err)
		}
		stmt.lockTimeoutSet = true
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
	// giveUp closes the connection instead of returning it to the pool.
	giveUp := func() {
		closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
		defer cancelClose()
		_ = conn.Hijack().Close(closeCtx)
	}

	finished := false
	defer func() {
		if finished {
			return
		}
		// fn panicked: what its statement did is unknown, and a cancel
		// request may be on its way, so the connection is not reused.
		if !stop() {
			<-cancelled
		}
		giveUp()
	}()
	err = fn(stmtCtx, stmt)
	finished = true
	if !stop() {
		// A cancel request went out: it may still reach Postgres after the
		// statement ended and hit the next one on this connection, so the
		// connection is not reused.
		<-cancelled
		giveUp()
		if err != nil {
			err = errors.Join(err, limitCtx.Err())
		}
		return stmt.lateErr, err
	}
	if stmt.lockTimeoutSet && !stmt.resetLockTimeout(context.WithoutCancel(ctx)) {
		// A connection that kept the setting would give it to whatever
		// statement borrows it next.
		giveUp()
		return stmt.lateErr, err
	}
	conn.Release()
	return stmt.lateErr, err
}

var _ pgx.Tx = (*ownStatement)(nil)

// Begin refuses: a transaction inside this one would give it a second
// statement.
func (s *ownStatement) Begin(context.Context) (pgx.Tx, error) {
	return nil, fmt.Errorf("%w: Begin", ErrSecondStatement)
}

func (s *ownStatement) Commit(context.Context) error { return nil }

func (s *ownStatement) Rollback(context.Context) error { return nil }

func (s *ownStatement) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if _, err := s.admit("COPY " + table.Sanitize()); err != nil {
		return 0, err
	}
	n, err := s.conn.CopyFrom(ctx, table, columns, rows)
	if err == nil {
		s.committed = true
	}
	return n, err
}

// SendBatch sends the batch as the one statement: pgx sends its queries with
// one Sync, so Postgres runs them in one implicit transaction, committed
// when the results close without error.
func (s *ownStatement) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if _, err := s.admit("batch"); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return &committingBatch{BatchResults: s.conn.SendBatch(ctx, b), s: s}
}

// LargeObjects cannot be served outside a transaction, and River does not
// use them: the zero value returned panics on use.
func (s *ownStatement) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (s *ownStatement) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return s.conn.Conn().Prepare(ctx, name, sql)
}

func (s *ownStatement) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	after := s.committed
	probe, err := s.admit(sql)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if after && s.lockTimeoutSet {
		// The statement that needed the bound committed; what follows
		// (the NOTIFY) waits as any statement does. If the reset fails,
		// the connection is broken and so is what follows.
		s.resetLockTimeout(ctx)
	}
	tag, err := s.conn.Exec(ctx, sql, args...)
	if probe {
		return tag, err
	}
	switch {
	case err != nil && after:
		s.lateErr = errors.Join(s.lateErr, err)
		return tag, nil
	case err == nil:
		s.committed = true
	}
	return tag, err
}

func (s *ownStatement) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	probe, err := s.admit(sql)
	if err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil || probe {
		return rows, err
	}
	return &committingRows{Rows: rows, s: s}, nil
}

func (s *ownStatement) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	probe, err := s.admit(sql)
	if err != nil {
		return errRow{err: err}
	}
	if probe {
		return s.conn.QueryRow(ctx, sql, args...)
	}
	return &committingRow{row: s.conn.QueryRow(ctx, sql, args...), s: s}
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

// committingRow notes that its statement committed when Scan read its
// answer: a row, or none (pgx.ErrNoRows), both after ReadyForQuery.
type committingRow struct {
	row pgx.Row
	s   *ownStatement
}

func (r *committingRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		r.s.committed = true
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// committingBatch notes that the batch committed when it closes without
// error.
type committingBatch struct {
	pgx.BatchResults
	s *ownStatement
}

func (b *committingBatch) Close() error {
	err := b.BatchResults.Close()
	if err == nil {
		b.s.committed = true
	}
	return err
}
