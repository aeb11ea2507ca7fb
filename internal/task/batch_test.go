package task_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

// poisonTrigger makes Postgres refuse, with a data exception (22023), the
// row of any job whose idempotency key begins with "poison": a request that
// passes every check in Go but fails in SQL, as one row of a shared
// statement.
const poisonTrigger = `
CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'poisoned row %', NEW.metadata ->> 'handoff_idempotency_key' USING ERRCODE = '22023';
END $$;
CREATE TRIGGER test_poison BEFORE INSERT ON river_job FOR EACH ROW
    WHEN (NEW.metadata ->> 'handoff_idempotency_key' LIKE 'poison%')
    EXECUTE FUNCTION test_poison();`

// lockTasks holds a lock that makes every INSERT of task_records (the
// insert trigger's) wait until the returned function releases it.
func lockTasks(t *testing.T, pool *pgxpool.Pool) func() {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "LOCK TABLE task_records IN EXCLUSIVE MODE")
	require.NoError(t, err)
	var once sync.Once
	release := func() { once.Do(func() { require.NoError(t, tx.Rollback(context.WithoutCancel(t.Context()))) }) }
	t.Cleanup(release)
	return release
}

// blockedInserts counts the statements waiting on lockTasks.
func blockedInserts(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%river_job%'`).Scan(&n))
	return n
}

// holdKey makes a task with key in a transaction it leaves open (an app's
// SQL enqueue, not yet committed), and returns that transaction and the
// task's id.
func holdKey(t *testing.T, pool *pgxpool.Pool, key string) (pgx.Tx, int64) {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	var id int64
	require.NoError(t, tx.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', idempotency_key => $1)`, key).Scan(&id))
	return tx, id
}

type createAnswer struct {
	task    *task.Task
	created bool
	err     error
}

// TestGroupCommit: 64 concurrent Create calls of every sort, most of them
// made to queue behind the two statements in flight (held on a lock), are
// each answered as they would have been alone, and the rows written are
// exactly the accepted tasks; the queued calls shared statements.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	_, err := bundle.pool.Exec(ctx, poisonTrigger)
	require.NoError(t, err)

	holder, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "held"})
	require.NoError(t, err)
	require.True(t, created)

	type call struct {
		name string
		req  task.CreateRequest
	}
	var calls []call
	add := func(n int, name string, req func(i int) task.CreateRequest) {
		for i := range n {
			calls = append(calls, call{name: name, req: req(i)})
		}
	}
	add(24, "fresh", func(i int) task.CreateRequest {
		return task.CreateRequest{Kind: "sleep", Args: sleepArgs(float64(i), 0)}
	})
	add(12, "keyed", func(i int) task.CreateRequest {
		return task.CreateRequest{Kind: "sleep", Args: sleepArgs(1, i), IdempotencyKey: fmt.Sprintf("keyed-%d", i)}
	})
	add(12, "repeat", func(int) task.CreateRequest {
		return task.CreateRequest{Kind: "sleep", Args: sleepArgs(2, 0), IdempotencyKey: "same", Priority: 3}
	})
	add(6, "conflict", func(int) task.CreateRequest {
		return task.CreateRequest{Kind: "sleep", Args: sleepArgs(1, 0), IdempotencyKey: "held"}
	})
	add(6, "invalid", func(int) task.CreateRequest {
		return task.CreateRequest{Kind: "no_such_kind"}
	})
	add(4, "poison", func(i int) task.CreateRequest {
		return task.CreateRequest{Kind: "noop", IdempotencyKey: fmt.Sprintf("poison-%d", i)}
	})
	require.Len(t, calls, 64)
	// Calls that reach the insert: all but the conflicts (found by the
	// lookup before it) and the invalid ones.
	const inserting = 64 - 6 - 6

	release := lockTasks(t, bundle.pool)
	answers := make([]createAnswer, len(calls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			<-start
			tk, created, err := bundle.svc.Create(ctx, c.req)
			answers[i] = createAnswer{tk, created, err}
		})
	}
	close(start)
	// Two statements are in flight, waiting on the lock; every other call
	// that inserts is queued behind them (or follows one with its key).
	require.Eventually(t, func() bool {
		return task.GroupWaiting(bundle.svc) == inserting && blockedInserts(t, bundle.pool) >= 2
	}, 30*time.Second, 10*time.Millisecond, "calls waiting: %d", task.GroupWaiting(bundle.svc))
	release()
	wg.Wait()

	accepted := map[int64]task.CreateRequest{holder.ID: {Kind: "noop", IdempotencyKey: "held"}}
	var sameID int64
	sameCreated := 0
	for i, c := range calls {
		a := answers[i]
		switch c.name {
		case "fresh", "keyed":
			require.NoError(t, a.err, "%s %d", c.name, i)
			require.True(t, a.created)
			require.Equal(t, "sleep", a.task.Kind)
			require.JSONEq(t, string(jobsArgs(t, c.req.Args)), string(a.task.Args), "each caller gets its own task")
			require.NotContains(t, accepted, a.task.ID)
			accepted[a.task.ID] = c.req
		case "repeat":
			require.NoError(t, a.err)
			require.Equal(t, 3, a.task.Priority)
			if sameID == 0 {
				sameID = a.task.ID
				accepted[sameID] = c.req
			}
			require.Equal(t, sameID, a.task.ID, "one task for the key")
			if a.created {
				sameCreated++
			}
		case "conflict":
			var conflict *task.IdempotencyConflictError
			require.ErrorAs(t, a.err, &conflict)
			require.Equal(t, holder.ID, conflict.TaskID)
		case "invalid":
			var invalid *task.ValidationError
			require.ErrorAs(t, a.err, &invalid)
			require.Contains(t, invalid.Fields, "kind")
		case "poison":
			var pgErr *pgconn.PgError
			require.ErrorAs(t, a.err, &pgErr, "refused alone, with its own error")
			require.Equal(t, "22023", pgErr.Code)
			require.Contains(t, pgErr.Message, c.req.IdempotencyKey)
		}
	}
	require.Equal(t, 1, sameCreated, "exactly one call created the repeated key's task")

	// The rows are exactly the accepted tasks, each with its job.
	rows, err := bundle.pool.Query(ctx, `SELECT t.id, t.kind, coalesce(t.idempotency_key, ''), j.id IS NOT NULL FROM tasks t LEFT JOIN river_job j USING (id)`)
	require.NoError(t, err)
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (int64, error) {
		var (
			id       int64
			kind     string
			key      string
			hasJob   bool
			scanErrs = row.Scan(&id, &kind, &key, &hasJob)
		)
		if scanErrs != nil {
			return 0, scanErrs
		}
		want, ok := accepted[id]
		if !ok || want.Kind != kind || want.IdempotencyKey != key || !hasJob {
			return 0, fmt.Errorf("task %d (%s, key %q, job %t) was not accepted as such", id, kind, key, hasJob)
		}
		return id, nil
	})
	require.NoError(t, err)
	require.Len(t, stored, len(accepted))
	tasks, jobRows := countRows(t, bundle.pool)
	require.Equal(t, len(accepted), tasks)
	require.Equal(t, len(accepted), jobRows)

	// The calls that queued went in shared statements: more requests than
	// statements. (The poisoned statements' requests went again alone.)
	statements, grouped, alone := task.GroupStats(bundle.svc)
	t.Logf("group commit: %d statements carried %d requests; %d inserted again alone", statements, grouped, alone)
	require.Positive(t, statements)
	require.Greater(t, grouped, statements, "at least one statement carried several requests")
	require.GreaterOrEqual(t, alone, int64(4), "the poisoned requests were refused alone")
}

// jobsArgs is args as the task shows them: the kind's parsed args encoded
// again (sleep's fail_times stays, 0 or not).
func jobsArgs(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var a jobs.SleepArgs
	require.NoError(t, json.Unmarshal(raw, &a))
	out, err := json.Marshal(a)
	require.NoError(t, err)
	return out
}

// TestGroupCommitCancel: a call whose context ends while it is queued
// leaves at once with its context's error, without waiting for the
// statements ahead of it, and nothing of it is written.
// TestGroupCommitKeyHeldElsewhere: idempotency keys held by transactions
// that have not committed (an app's SQL enqueues, still open) made the two
// group-commit statements in flight wait for them, and every create of
// every tenant behind them. Now a flight gives such a statement up after
// flightLockWait: the creates without keys are answered while the keys are
// still held; the keyed ones are told the key is in use (ErrKeyInUse, a
// 409 to retry), having held a connection no longer than the bound; and
// retried once the holders commit, they are repeats of the SQL calls'
// tasks.
func TestGroupCommitKeyHeldElsewhere(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setupRegistered(t, false)

	held := map[string]int64{}
	var holders []pgx.Tx
	for _, key := range []string{"held-a", "held-b"} {
		tx, id := holdKey(t, bundle.pool, key)
		held[key] = id
		holders = append(holders, tx)
	}

	type answer struct {
		task    *task.Task
		created bool
		err     error
	}
	// The keyed creates and twenty without keys set off together, so that
	// they share statements.
	_, _, aloneBefore := task.GroupStats(bundle.svc)
	start := make(chan struct{})
	keyed := map[string]chan answer{}
	for key := range held {
		keyed[key] = make(chan answer, 1)
		go func() {
			<-start
			tk, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: key})
			keyed[key] <- answer{tk, created, err}
		}()
	}

	// Creates without keys go through while the keys are held. (Before,
	// they waited behind the two flights until the statement limit, 10 s,
	// failed the keyed ones; the deadline only stops a hang.)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range cap(errs) {
		wg.Go(func() {
			<-start
			freeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, created, err := bundle.svc.Create(freeCtx, task.CreateRequest{Kind: "sleep", Args: sleepArgs(float64(i), 0)})
			if err == nil && !created {
				err = errors.New("not created")
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a create without a key waited for another transaction's key")
	}
	// A statement given up for a held key sends its keyless requests again
	// together: only the keyed ones went alone.
	_, _, alone := task.GroupStats(bundle.svc)
	require.LessOrEqual(t, alone-aloneBefore, int64(len(held)))
	for key, ch := range keyed {
		a := <-ch
		require.ErrorIs(t, a.err, task.ErrKeyInUse, key)
	}

	for _, tx := range holders {
		require.NoError(t, tx.Commit(ctx))
	}
	for key, id := range held {
		tk, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: key})
		require.NoError(t, err, key)
		require.False(t, created, "%s: a repeat of the SQL call", key)
		require.Equal(t, id, tk.ID, key)
	}
}

// TestGroupCommitLoneKeyHeldElsewhere: a keyed create that meets its key
// held by an open transaction, with nothing else in flight, is a flight of
// one. Its statement waited flightLockWait and then went again alone, to
// wait as long once more before ErrKeyInUse; now the flight's answer is
// the ErrKeyInUse it would get alone, and it does not go again.
func TestGroupCommitLoneKeyHeldElsewhere(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setupRegistered(t, false)

	tx, id := holdKey(t, bundle.pool, "lone-held")

	statementsBefore, _, aloneBefore := task.GroupStats(bundle.svc)
	_, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "lone-held"})
	require.ErrorIs(t, err, task.ErrKeyInUse)
	statements, _, alone := task.GroupStats(bundle.svc)
	require.Equal(t, aloneBefore, alone, "the flight's answer was final: the request did not go again alone")
	require.Equal(t, statementsBefore, statements, "a flight of one sends no shared statement")

	require.NoError(t, tx.Commit(ctx))
	tk, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "lone-held"})
	require.NoError(t, err)
	require.False(t, created, "a repeat of the SQL call")
	require.Equal(t, id, tk.ID)
}

// TestKeyedCreateTablesLocked: a keyed create whose bounded wait
// (flightLockWait) was for the task tables themselves, locked by another
// session (LOCK TABLE, a migration's DDL), not for its key, waits on as a
// request without a key does, and is created once the lock goes. It was
// told ErrKeyInUse, a 409 that blames the client's own request for the
// server's condition (found by make chaos: its overload scenario locks
// task_records under load, and a rolling deploy's migrations lock tables).
func TestKeyedCreateTablesLocked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setupRegistered(t, false)
	release := lockTasks(t, bundle.pool)
	// The bounded statement waits, gives up, and a second one waits on:
	// two waiting statements seen one after the other (query_start).
	waiting := func() (time.Time, bool) {
		var start time.Time
		err := bundle.pool.QueryRow(ctx, `SELECT query_start FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%river_job%'`).Scan(&start)
		if errors.Is(err, pgx.ErrNoRows) {
			return time.Time{}, false
		}
		require.NoError(t, err)
		return start, true
	}
	// createWaitingOn starts a keyed create, sees it wait on past its
	// bound, and returns where its answer will come.
	createWaitingOn := func(key, behind string) chan createAnswer {
		answer := make(chan createAnswer, 1)
		go func() {
			tk, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: key})
			answer <- createAnswer{tk, created, err}
		}()
		var first time.Time
		require.Eventually(t, func() bool {
			var ok bool
			first, ok = waiting()
			return ok
		}, 30*time.Second, time.Millisecond)
		var early *createAnswer
		require.Eventually(t, func() bool {
			select {
			case a := <-answer:
				early = &a
				return true
			default:
			}
			next, ok := waiting()
			return ok && next.After(first)
		}, 30*time.Second, 5*time.Millisecond, "the keyed insert waits on "+behind)
		if early != nil {
			require.Failf(t, "answered while waiting "+behind, "%v", early.err)
		}
		return answer
	}

	answer := createWaitingOn("behind-a-table-lock", "behind a held table lock")
	release()
	a := <-answer
	require.NoError(t, a.err)
	require.True(t, a.created)

	// A table lock still queued (DDL behind a long transaction, found by
	// an attacker) makes the insert queue behind it as well: the same.
	long, err := bundle.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = long.Rollback(context.WithoutCancel(ctx)) })
	_, err = long.Exec(ctx, "LOCK TABLE task_records IN ROW EXCLUSIVE MODE")
	require.NoError(t, err)
	ddl, err := bundle.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ddl.Rollback(context.WithoutCancel(ctx)) })
	ddlDone := make(chan error, 1)
	go func() {
		_, err := ddl.Exec(ctx, "LOCK TABLE task_records IN SHARE MODE")
		ddlDone <- err
	}()
	require.Eventually(t, func() bool {
		var queued bool
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE NOT granted AND mode = 'ShareLock' AND relation = 'task_records'::regclass)`).Scan(&queued))
		return queued
	}, 30*time.Second, time.Millisecond)
	answer = createWaitingOn("behind-a-queued-lock", "behind a queued table lock")
	require.NoError(t, long.Rollback(ctx))
	require.NoError(t, <-ddlDone)
	require.NoError(t, ddl.Rollback(ctx))
	a = <-answer
	require.NoError(t, a.err)
	require.True(t, a.created)

	// The same tables of another database (pg_locks is the cluster's,
	// and their OIDs may be the same) are not ours: a held key is a key.
	other := setupRegistered(t, false)
	releaseOther := lockTasks(t, other.pool)
	defer releaseOther()
	holdKey(t, bundle.pool, "held-here")
	_, _, err = bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "held-here"})
	require.ErrorIs(t, err, task.ErrKeyInUse)
}

func TestGroupCommitCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)

	release := lockTasks(t, bundle.pool)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, created, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop"})
			require.NoError(t, err)
			require.True(t, created)
		})
	}
	require.Eventually(t, func() bool { return blockedInserts(t, bundle.pool) == 2 }, 30*time.Second, 10*time.Millisecond)

	queuedCtx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() {
		_, _, err := bundle.svc.Create(queuedCtx, task.CreateRequest{Kind: "noop", IdempotencyKey: "gave-up"})
		gone <- err
	}()
	require.Eventually(t, func() bool { return task.GroupWaiting(bundle.svc) == 3 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	// Answered while the statements ahead still wait on the lock.
	require.ErrorIs(t, <-gone, context.Canceled)
	require.Equal(t, 2, blockedInserts(t, bundle.pool))

	release()
	wg.Wait()
	tasks, jobRows := countRows(t, bundle.pool)
	require.Equal(t, 2, tasks)
	require.Equal(t, 2, jobRows)
	var keyed int
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*) FROM tasks WHERE idempotency_key = 'gave-up'`).Scan(&keyed))
	require.Zero(t, keyed)
}

// TestGroupCommitOff: BatchMax 1 sends every call alone.
func TestGroupCommitOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	svc := task.NewService(bundle.pool, bundle.client, jobs.Kinds(jobs.Deps{}), &task.ServiceOpts{BatchMax: 1})

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, created, err := svc.Create(ctx, task.CreateRequest{Kind: "noop"})
			require.NoError(t, err)
			require.True(t, created)
		})
	}
	wg.Wait()
	statements, _, _ := task.GroupStats(svc)
	require.Zero(t, statements)
	tasks, _ := countRows(t, bundle.pool)
	require.Equal(t, 16, tasks)
}

// TestCreateMany: every request of a bulk create is answered on its own,
// as Create would answer it, and exactly the accepted tasks are written.
func TestCreateMany(t *testing.T) {
	t.Parallel()

	t.Run("EachRequestOnItsOwn", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		_, err := bundle.pool.Exec(ctx, poisonTrigger)
		require.NoError(t, err)
		holder, _, err := bundle.svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "held"})
		require.NoError(t, err)

		reqs := []task.CreateRequest{
			{Kind: "sleep", Args: sleepArgs(1, 0)},                              // 0: new
			{Kind: "no_such_kind"},                                              // 1: invalid
			{Kind: "noop", IdempotencyKey: "held"},                              // 2: repeat of an existing task
			{Kind: "sleep", Args: sleepArgs(1, 0), IdempotencyKey: "held"},      // 3: key held by another request
			{Kind: "noop", IdempotencyKey: "twice"},                             // 4: new
			{Kind: "noop", IdempotencyKey: "twice"},                             // 5: repeat of 4
			{Kind: "sleep", Args: sleepArgs(2, 0), IdempotencyKey: "twice"},     // 6: conflicts with 4
			{Kind: "noop", IdempotencyKey: "poison-1"},                          // 7: refused by Postgres
			{Kind: "sleep", Args: sleepArgs(3, 0), Priority: 2, MaxAttempts: 4}, // 8: new
			{Kind: "noop", MaxAttempts: 5000},                                   // 9: invalid
		}
		for i := range 20 {
			reqs = append(reqs, task.CreateRequest{Kind: "sleep", Args: sleepArgs(float64(10+i), 0)})
		}
		results := bundle.svc.CreateMany(ctx, reqs)
		require.Len(t, results, len(reqs))

		created := map[int64]bool{}
		requireCreated := func(i int) *task.Task {
			t.Helper()
			require.NoError(t, results[i].Err, "request %d", i)
			require.True(t, results[i].Created, "request %d", i)
			require.NotContains(t, created, results[i].Task.ID)
			created[results[i].Task.ID] = true
			return results[i].Task
		}
		requireCreated(0)
		var invalid *task.ValidationError
		require.ErrorAs(t, results[1].Err, &invalid)
		require.NoError(t, results[2].Err)
		require.False(t, results[2].Created)
		require.Equal(t, holder.ID, results[2].Task.ID)
		var conflict *task.IdempotencyConflictError
		require.ErrorAs(t, results[3].Err, &conflict)
		require.Equal(t, holder.ID, conflict.TaskID)
		twice := requireCreated(4)
		require.NoError(t, results[5].Err)
		require.False(t, results[5].Created)
		require.Equal(t, twice.ID, results[5].Task.ID)
		require.ErrorAs(t, results[6].Err, &conflict)
		require.Equal(t, twice.ID, conflict.TaskID)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, results[7].Err, &pgErr)
		require.Equal(t, "22023", pgErr.Code)
		got := requireCreated(8)
		require.Equal(t, 2, got.Priority)
		require.Equal(t, 4, got.MaxAttempts)
		require.ErrorAs(t, results[9].Err, &invalid)
		require.Contains(t, invalid.Fields, "max_attempts")
		for i := 10; i < len(reqs); i++ {
			tk := requireCreated(i)
			require.JSONEq(t, string(jobsArgs(t, reqs[i].Args)), string(tk.Args))
		}

		tasks, jobRows := countRows(t, bundle.pool)
		require.Equal(t, len(created)+1, tasks, "the accepted tasks and the holder")
		require.Equal(t, tasks, jobRows)
		var poisoned int
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE metadata ->> 'handoff_idempotency_key' LIKE 'poison%'`).Scan(&poisoned))
		require.Zero(t, poisoned)
		statements, grouped, _ := task.GroupStats(bundle.svc)
		t.Logf("bulk: %d statements carried %d requests", statements, grouped)
		require.Less(t, statements, int64(len(created)), "the tasks shared statements")
	})

	t.Run("CleanBatchIsOneStatement", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		reqs := make([]task.CreateRequest, task.BulkMax)
		for i := range reqs {
			reqs[i] = task.CreateRequest{Kind: "noop", IdempotencyKey: fmt.Sprintf("k%d", i)}
		}
		for i, res := range bundle.svc.CreateMany(ctx, reqs) {
			require.NoError(t, res.Err, "request %d", i)
			require.True(t, res.Created)
		}
		statements, grouped, _ := task.GroupStats(bundle.svc)
		require.Equal(t, int64(1), statements)
		require.Equal(t, int64(task.BulkMax), grouped)

		// The whole batch again: every request a repeat, nothing written.
		for i, res := range bundle.svc.CreateMany(ctx, reqs) {
			require.NoError(t, res.Err, "request %d", i)
			require.False(t, res.Created)
		}
		tasks, _ := countRows(t, bundle.pool)
		require.Equal(t, task.BulkMax, tasks)
	})

	t.Run("CapCountedOnce", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		svc := task.NewService(bundle.pool, bundle.client, jobs.Kinds(jobs.Deps{}), &task.ServiceOpts{MaxUnfinished: 4})
		_, _, err := svc.Create(ctx, task.CreateRequest{Kind: "noop", IdempotencyKey: "old"})
		require.NoError(t, err)

		reqs := []task.CreateRequest{
			{Kind: "noop"}, {Kind: "noop"}, {Kind: "noop"}, // room for three more
			{Kind: "noop"},                        // over the cap
			{Kind: "noop", IdempotencyKey: "old"}, // a repeat: answered even over the cap
			{Kind: "noop", IdempotencyKey: "new"}, // over the cap
		}
		results := svc.CreateMany(ctx, reqs)
		for i := range 3 {
			require.NoError(t, results[i].Err)
			require.True(t, results[i].Created)
		}
		var limit *task.LimitError
		require.ErrorAs(t, results[3].Err, &limit)
		require.Equal(t, 4, limit.Max)
		require.NoError(t, results[4].Err)
		require.False(t, results[4].Created)
		require.ErrorAs(t, results[5].Err, &limit)
		tasks, _ := countRows(t, bundle.pool)
		require.Equal(t, 4, tasks)
	})

	t.Run("TenantFromContext", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		results := bundle.svc.CreateMany(task.WithTenant(ctx, "acme"), []task.CreateRequest{
			{Kind: "noop", IdempotencyKey: "k", Tenant: "other"}, {Kind: "noop"},
		})
		for _, res := range results {
			require.NoError(t, res.Err)
		}
		var tenants []string
		rows, err := bundle.pool.Query(ctx, `SELECT DISTINCT tenant FROM tasks`)
		require.NoError(t, err)
		tenants, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"acme"}, tenants)
		// The same key in another tenant is another task.
		res := bundle.svc.CreateMany(task.WithTenant(ctx, "other"), []task.CreateRequest{{Kind: "noop", IdempotencyKey: "k"}})
		require.NoError(t, res[0].Err)
		require.True(t, res[0].Created)
		require.NotEqual(t, results[0].Task.ID, res[0].Task.ID)
	})

	t.Run("GivingUpWritesNothing", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		bundle := setup(t, false)
		release := lockTasks(t, bundle.pool)
		reqCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		results := bundle.svc.CreateMany(reqCtx, []task.CreateRequest{{Kind: "noop"}, {Kind: "noop"}})
		for _, res := range results {
			require.ErrorIs(t, res.Err, context.DeadlineExceeded)
		}
		release()
		require.Eventually(t, func() bool { return blockedInserts(t, bundle.pool) == 0 }, 5*time.Second, 20*time.Millisecond)
		tasks, jobRows := countRows(t, bundle.pool)
		require.Zero(t, tasks)
		require.Zero(t, jobRows)
	})
}
