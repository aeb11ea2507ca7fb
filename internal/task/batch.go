package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/store"
)

// Group commit: concurrent Create calls that reach the insert share one
// multi-row INSERT (River's InsertManyTx, through riverseam.RunOwnStatement:
// one statement, committed on its own, the trigger writing every tasks row)
// and so one commit. The insert trigger, executor set-up and the commit cost
// about the same for one row as for a hundred, so sharing them is most of
// what enqueue can still gain (issue 11, docs/performance.md).
//
// There is no timer. Up to batchFlights statements may be in flight at once;
// a request that finds a free slot is sent at once, alone (a batch of one is
// the single-row path itself: nothing is added at low load). Requests that
// arrive while every slot is busy queue, and the first statement to finish
// takes everything queued (up to ServiceOpts.BatchMax rows and
// batchMaxBytes of args) as its slot's next statement. So the window a
// request waits in is the rest of one statement in flight: a few
// milliseconds at 32 clients on the 2-core machine, never longer than that
// statement's own bound (riverseam's 10 s statement timeout); the batch cap
// keeps each statement, and so the wait behind it, short.
//
// Every caller is answered only from its own statement's outcome: a task
// only once the statement committed. A statement that Postgres refused
// wrote nothing, so each of its requests is then inserted again on its own
// through the single-row path (Service.insert), and gets exactly the answer
// it would have got alone (an idempotent repeat its task, a reused key 409, a
// bad value 422). When no answer came back (the connection was lost), a
// request with an idempotency key looks its key up as the single path does;
// the others get the error (503).
//
// A caller whose context ends while it is still queued leaves the queue and
// gets its context's error: nothing of it was sent. Once its row is in a sent
// statement it waits for that statement's outcome and is told the truth
// (the task, when the statement committed): its row cannot be taken out of a
// statement that others share. The shared statement is cancelled, as a
// single request's is, only once every caller in it has given up.

const (
	// DefaultBatchMax is the most Create calls one group-commit statement
	// carries (ENQUEUE_BATCH_MAX). 128 rows of a small task are one INSERT
	// of ~1 ms on the 2-core machine; more only made the queue behind it
	// wait longer (docs/performance.md).
	DefaultBatchMax = 128

	// BulkMax is the most requests one CreateMany call takes
	// (POST /v1/tasks/batch).
	BulkMax = 1000

	// batchFlights is how many group-commit statements may be in flight at
	// once; requests queue only when all are. One would serialize the API's
	// inserts behind one connection; more than two left batches of one or
	// two on 2 cores (docs/performance.md).
	batchFlights = 2

	// flightLockWait is the longest a group-commit statement that carries an
	// idempotency key waits for a lock. A key held by a transaction that
	// has not committed (an app's SQL enqueue still open, or another
	// replica's insert of the same key) makes Postgres wait for it, and
	// with it every request in the statement and, with both flights so
	// held, every create of every tenant. Past it the statement is given
	// up, writing nothing, and each of its requests is inserted alone,
	// outside the flights: only the keyed one waits on. Another replica's
	// insert commits in milliseconds; 100 ms is the most a flight waits
	// behind a key held elsewhere; then its requests without a key go
	// again together, unbounded. Statements without keys wait on no row
	// and skip the setting's two round trips.
	flightLockWait = 100 * time.Millisecond

	// batchMaxBytes bounds the args of one multi-row statement (a task's
	// args may be up to 1 MiB): a statement that has more goes in two.
	batchMaxBytes = 4 << 20

	// lookupTimeout bounds the key lookup after an insert whose answer
	// was lost (Service.afterLostAnswer).
	lookupTimeout = 2 * time.Second
)

// manyInserter is River's InsertManyTx; the service's JobClient is a River
// client, which has it.
type manyInserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// grouper coalesces concurrent inserts into shared statements.
type grouper struct {
	maxRows int

	mu      sync.Mutex
	queue   []*member
	flights int
	// keys are the idempotency keys of the rows in flight, by tenant and
	// key, with the flight that carries each.
	keys map[[2]string]*flight

	// waiting counts the calls between their arrival and their answer.
	waiting atomic.Int64

	// For tests: multi-row statements sent (group commit's and
	// CreateMany's), the requests that went in them, and group-commit
	// requests inserted again alone after a refusal.
	statements atomic.Int64
	grouped    atomic.Int64
	alone      atomic.Int64
}

// newGrouper returns a grouper of maxRows rows per statement (0: the
// default); maxRows 1, or a client that cannot insert many rows at once,
// turns group commit off.
func newGrouper(client JobClient, maxRows int) *grouper {
	if _, ok := client.(manyInserter); !ok {
		maxRows = 1
	}
	if maxRows <= 0 {
		maxRows = DefaultBatchMax
	}
	return &grouper{maxRows: min(maxRows, BulkMax)}
}

// flight is one statement in flight, and the calls that wait for it to
// end because they repeat one of its rows' idempotency keys.
type flight struct {
	batch     []*member
	followers []*member
}

// member is one Create call waiting for its row's statement.
type member struct {
	ctx  context.Context
	p    *Prepared
	done chan struct{}
	out  outcome
	// taken is set, under the grouper's mutex, once the member is in a
	// statement: from then on it waits for the outcome.
	taken bool
}

// outcome is what Service.insert returns, or alone: insert it again on its
// own, since the shared statement wrote nothing.
type outcome struct {
	job   *rivertype.JobRow
	found *store.TaskGetByIdempotencyKeyForRequestRow
	err   error
	alone bool
}

// insertGrouped is Service.insert through group commit: same answers, with
// the row possibly sharing its statement with concurrent calls.
func (s *Service) insertGrouped(ctx context.Context, p *Prepared) (*rivertype.JobRow, *store.TaskGetByIdempotencyKeyForRequestRow, error) {
	g := s.group
	if g.maxRows == 1 {
		return s.insert(ctx, p)
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	m := &member{ctx: ctx, p: p, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, m)
	var f *flight
	if g.flights < batchFlights {
		g.flights++
		f = g.takeLocked()
		if f == nil {
			g.flights--
		}
	}
	g.mu.Unlock()
	if f != nil {
		// This caller leads the flight; its own row is in it, or follows
		// it.
		g.fly(s, f)
	}
	select {
	case <-m.done:
	case <-ctx.Done():
		if g.leave(m) {
			return nil, nil, fmt.Errorf("insert job: %w", ctx.Err())
		}
		<-m.done
	}
	if m.out.alone {
		g.alone.Add(1)
		return s.insert(ctx, p)
	}
	return m.out.job, m.out.found, m.out.err
}

// fly runs f as its slot's statement, then the slot's next statement with
// whatever queued meanwhile, on a goroutine of its own so that the caller
// that led this one is answered now.
func (g *grouper) fly(s *Service, f *flight) {
	if len(f.batch) > 0 {
		g.flushSafely(s, f.batch)
	}
	g.mu.Lock()
	for _, m := range f.batch {
		if m.p.IdempotencyKey != nil {
			delete(g.keys, [2]string{m.p.Tenant, *m.p.IdempotencyKey})
		}
	}
	followers := f.followers
	f.followers = nil
	next := g.takeLocked()
	if next == nil {
		g.flights--
	}
	g.mu.Unlock()
	// The key's row is committed, or was refused: either way a repeat is
	// answered by the single-row path now (the key found taken, or free).
	for _, m := range followers {
		m.out.alone = true
		close(m.done)
	}
	for _, m := range f.batch {
		close(m.done)
	}
	if next != nil {
		go g.fly(s, next)
	}
}

// takeLocked takes the queue's next statement: members in arrival order, up
// to maxRows and batchMaxBytes of args. A member whose idempotency key is
// in flight (in this statement or another) follows that statement instead:
// once it ends, the member is answered through the single-row path, where
// it finds the key taken (two rows with one key would make Postgres refuse
// a whole statement). nil: the queue is empty.
func (g *grouper) takeLocked() *flight {
	if len(g.queue) == 0 {
		return nil
	}
	f := &flight{}
	size := 0
	rest := g.queue[:0]
	for _, m := range g.queue {
		var k [2]string
		if m.p.IdempotencyKey != nil {
			k = [2]string{m.p.Tenant, *m.p.IdempotencyKey}
			if holder := g.keys[k]; holder != nil {
				m.taken = true
				holder.followers = append(holder.followers, m)
				continue
			}
		}
		if len(f.batch) >= g.maxRows || (len(f.batch) > 0 && size+len(m.p.EncodedArgs) > batchMaxBytes) {
			rest = append(rest, m)
			continue
		}
		if m.p.IdempotencyKey != nil {
			if g.keys == nil {
				g.keys = map[[2]string]*flight{}
			}
			g.keys[k] = f
		}
		m.taken = true
		f.batch = append(f.batch, m)
		size += len(m.p.EncodedArgs)
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	return f
}

// leave takes m out of the queue if no statement took it yet.
func (g *grouper) leave(m *member) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.taken {
		return false
	}
	if i := slices.Index(g.queue, m); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
	return true
}

// flushSafely is flush, with a panic (of River, an insert hook, an args
// type's MarshalJSON) turned into every member's error: the slot is then
// released and every waiter answered, and a background flight does not end
// the process.
func (g *grouper) flushSafely(s *Service, batch []*member) {
	defer func() {
		if v := recover(); v != nil {
			s.logger.Error("a grouped insert panicked", slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			for _, m := range batch {
				m.out = outcome{err: fmt.Errorf("insert job: panic: %v", v)}
			}
		}
	}()
	g.flush(s, batch)
}

// flush sends one statement for batch and sets every member's outcome.
func (g *grouper) flush(s *Service, batch []*member) {
	if len(batch) == 1 {
		// The single-row path, as with group commit off: a statement that
		// carries a key already waits no longer than a flight may
		// (flightLockWait), and its ErrKeyInUse is the answer it would get
		// alone, so it does not go again.
		m := batch[0]
		m.out.job, m.out.found, m.out.err = s.insert(m.ctx, m.p)
		return
	}
	ctx, stop := untilAllGone(batch)
	defer stop()
	ps := make([]*Prepared, len(batch))
	for i, m := range batch {
		ps[i] = m.p
	}
	outs, refused := s.insertRows(ctx, ps, lockWaitFor(ps...))
	var pgErr *pgconn.PgError
	if errors.As(refused, &pgErr) && pgErr.Code == lockNotAvailable {
		// Only a request with a key waits on another transaction's row:
		// those go alone, and the rest again together, without the bound.
		var free []int
		for i, p := range ps {
			if p.IdempotencyKey == nil {
				free = append(free, i)
			}
		}
		if len(free) > 0 {
			again := make([]*Prepared, len(free))
			for j, i := range free {
				again[j] = ps[i]
			}
			freeOuts, _ := s.insertRows(ctx, again, 0)
			for j, i := range free {
				outs[i] = freeOuts[j]
			}
		}
		refused = nil
	}
	if refused != nil {
		s.logger.DebugContext(ctx, "a shared insert was refused; its requests are inserted one by one", slog.Int("requests", len(ps)), slog.Any("error", refused))
	}
	for i, m := range batch {
		m.out = outs[i]
	}
}

// lockWaitFor is how long a statement inserting ps may wait for a lock:
// flightLockWait when one of them has an idempotency key (a key held
// elsewhere: the statement gives up, and the keyed request answers alone),
// else as long as it may.
func lockWaitFor(ps ...*Prepared) time.Duration {
	for _, p := range ps {
		if p.IdempotencyKey != nil {
			return flightLockWait
		}
	}
	return 0
}

// untilAllGone returns a context, carrying the first member's values, that
// ends once every member's context has ended: the shared statement is
// cancelled only when nobody waits for it any more.
func untilAllGone(batch []*member) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, m := range batch {
		stops[i] = context.AfterFunc(m.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// insertRows inserts ps in one multi-row statement and returns each
// request's outcome, in ps's order. refused is Postgres's refusal of the
// statement (or the reason it was never sent), when every outcome is
// alone: nothing was written. The statement waits at most lockWait for a
// lock (0: as long as it may; RunOwnStatementWaiting), and is then
// refused.
func (s *Service) insertRows(ctx context.Context, ps []*Prepared, lockWait time.Duration) (outs []outcome, refused error) {
	outs = make([]outcome, len(ps))
	allAlone := func(err error) ([]outcome, error) {
		for i := range outs {
			outs[i] = outcome{alone: true}
		}
		return outs, err
	}
	many, ok := s.jobs.(manyInserter)
	if !ok {
		return allAlone(errors.New("the job client cannot insert many jobs at once"))
	}
	params := make([]river.InsertManyParams, len(ps))
	for i, p := range ps {
		params[i] = river.InsertManyParams{Args: p.Args, InsertOpts: p.insertOpts()}
	}

	s.group.statements.Add(1)
	s.group.grouped.Add(int64(len(ps)))
	var (
		res  []*rivertype.JobInsertResult
		sent bool
	)
	late, err := riverseam.RunOwnStatementWaiting(ctx, s.pool, lockWait, func(ctx context.Context, tx pgx.Tx) error {
		w := &sentTx{Tx: tx}
		var err error
		res, err = many.InsertManyTx(ctx, w, params)
		sent = w.sent
		return err
	})
	if late != nil {
		s.logger.WarnContext(ctx, "a statement after the tasks' insert failed; the tasks are accepted", slog.Any("error", late))
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
	case errors.As(err, &pgErr), !sent:
		// Refused by Postgres, or never sent: nothing was written.
		return allAlone(err)
	default:
		// No answer: the INSERT may have committed. Keys tell, as in
		// Service.insert; the others get the error.
		for i, p := range ps {
			outs[i].found, outs[i].err = s.afterLostAnswer(ctx, p, err)
		}
		return outs, nil
	}

	jobs, ok := matchResults(ps, params, res)
	if !ok {
		// River returned other rows than it was given; they are committed,
		// but whose is which cannot be told.
		s.logger.ErrorContext(ctx, "a multi-row insert returned rows that match no request", slog.Int("requests", len(ps)), slog.Int("rows", len(res)))
		for i := range outs {
			outs[i].err = fmt.Errorf("insert job: %d rows returned for %d requests do not match them", len(res), len(ps))
		}
		return outs, nil
	}
	for i, r := range jobs {
		if r.UniqueSkippedAsDuplicate {
			outs[i].err = fmt.Errorf("kind %q sets River UniqueOpts, which Handoff does not support: use idempotency keys", r.Job.Kind)
			continue
		}
		outs[i].job = r.Job
	}
	return outs, nil
}

// matchResults returns River's results in the order of the requests.
// River returns the rows of its INSERT ... SELECT FROM unnest(...) RETURNING
// in input order, and its own tests rely on it (river@v0.51.2 client.go,
// insertMany; riverpgxv5 JobInsertFastMany), but Postgres does not promise
// RETURNING's order, so each row is checked against its request and, were
// one out of place, the rows are matched by content. Requests of equal
// content are interchangeable: their tasks differ only in id.
//
// The check in order leaves args out: what Postgres returns of them is not
// always what was sent byte for byte or even value for value in Go (jsonb
// writes 1e400 out as 401 digits, which Go's decoder refuses), and a row
// the statement committed must never be answered as an error, which a
// client would send again.
func matchResults(ps []*Prepared, params []river.InsertManyParams, res []*rivertype.JobInsertResult) ([]*rivertype.JobInsertResult, bool) {
	if len(res) != len(ps) {
		return nil, false
	}
	inOrder := true
	for i := range ps {
		if !sameRow(ps[i], params[i].InsertOpts, res[i].Job, false) {
			inOrder = false
			break
		}
	}
	if inOrder {
		return res, true
	}
	out := make([]*rivertype.JobInsertResult, len(ps))
	used := make([]bool, len(res))
	for i := range ps {
		for j, r := range res {
			if !used[j] && sameRow(ps[i], params[i].InsertOpts, r.Job, true) {
				out[i], used[j] = r, true
				break
			}
		}
		if out[i] == nil {
			return nil, false
		}
	}
	return out, true
}

// sameRow reports whether job is the row inserted for p: the same kind,
// queue, priority, attempts, Handoff metadata (tenant, key, run_at, callback
// URL) and, with args set, args.
func sameRow(p *Prepared, opts *river.InsertOpts, job *rivertype.JobRow, args bool) bool {
	if job == nil || job.Kind != p.Kind || job.Queue != opts.Queue || job.Priority != opts.Priority || job.MaxAttempts != opts.MaxAttempts {
		return false
	}
	if args && !sameJSON(job.EncodedArgs, p.EncodedArgs) {
		return false
	}
	// Each metadata value as jsonb prints it ("key": "value"), found in the
	// stored metadata: no decoding for the common case. jsonb escapes some
	// characters otherwise than Go; those values are compared decoded.
	// A Handoff key the request does not set must be absent too (an
	// unkeyed request is not the keyed one's row).
	pairs, absent := metadataPairs(p)
	for _, k := range absent {
		if bytes.Contains(job.Metadata, []byte(`"`+k+`":`)) {
			return false
		}
	}
	fast := true
	for _, kv := range pairs {
		if !bytes.Contains(job.Metadata, kv) {
			fast = false
			break
		}
	}
	if fast {
		return true
	}
	var sent, stored map[string]any
	if json.Unmarshal(opts.Metadata, &sent) != nil || json.Unmarshal(job.Metadata, &stored) != nil {
		return false
	}
	for k, v := range sent {
		if stored[k] != v {
			return false
		}
	}
	for _, k := range absent {
		if _, ok := stored[k]; ok {
			return false
		}
	}
	return true
}

// metadataPairs are the metadata insertOpts gives p, each as jsonb prints
// a member ("key": "value"), and the Handoff keys it leaves out.
func metadataPairs(p *Prepared) (pairs [][]byte, absent []string) {
	add := func(k string, v *string) {
		if v == nil {
			absent = append(absent, k)
			return
		}
		pairs = append(pairs, appendString([]byte(`"`+k+`": `), *v))
	}
	add(riverseam.MetadataKeyTenant, &p.Tenant)
	add(riverseam.MetadataKeyIdempotencyKey, p.IdempotencyKey)
	var runAt *string
	if p.RunAt != nil {
		s := p.RunAt.Format(time.RFC3339Nano)
		runAt = &s
	}
	add(riverseam.MetadataKeyRunAt, runAt)
	add(riverseam.MetadataKeyCallbackURL, p.CallbackURL)
	return pairs, absent
}

// sameJSON compares two JSON texts by value (jsonb reorders keys and
// respaces).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sentTx notes whether a statement other than River's version probe (which
// reads only) went out: an error before that means nothing was written.
type sentTx struct {
	pgx.Tx
	sent bool
}

// versionProbe begins River's probe of the Postgres version
// (riverdriver/riverpgxv5/internal/dbsqlc/pg_misc.sql).
const versionProbe = "-- name: PGGetProductAndVersion "

func (t *sentTx) note(sql string) {
	if !strings.HasPrefix(sql, versionProbe) {
		t.sent = true
	}
}

func (t *sentTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t.note(sql)
	return t.Tx.Exec(ctx, sql, args...) //nolint:wrapcheck // a pass-through
}

func (t *sentTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.note(sql)
	return t.Tx.Query(ctx, sql, args...) //nolint:wrapcheck // a pass-through
}

func (t *sentTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	t.note(sql)
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t *sentTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	t.sent = true
	return t.Tx.SendBatch(ctx, b)
}

func (t *sentTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	t.sent = true
	return t.Tx.CopyFrom(ctx, table, columns, rows) //nolint:wrapcheck // a pass-through
}
