package live_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/live"
	"github.com/handoff/handoff/internal/pgtest"
)

func TestHub(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		pool *pgxpool.Pool
		hub  *live.Hub
	}
	setup := func(t *testing.T, opts *live.HubOpts) *testBundle {
		t.Helper()
		pool := pgtest.NewDB(t)
		if opts == nil {
			opts = &live.HubOpts{}
		}
		opts.Logger = pgtest.Logger(t)
		hub := live.NewHub(pool, opts)
		ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
		done := make(chan struct{})
		go func() { defer close(done); _ = hub.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-hub.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("hub did not start listening")
		}
		return &testBundle{pool: pool, hub: hub}
	}
	watchRows := func(t *testing.T, pool *pgxpool.Pool, taskID int64) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM task_watch WHERE task_id = $1", taskID).Scan(&n))
		return n
	}
	insertTask := func(t *testing.T, pool *pgxpool.Pool, id int64) {
		t.Helper()
		_, err := pool.Exec(t.Context(), `INSERT INTO task_records (id, kind, queue, priority, args, state, max_attempts, scheduled_at)
			VALUES ($1, 'noop', 'default', 1, '{}', 'available', 25, now())`, id)
		require.NoError(t, err)
	}
	requireSignal := func(t *testing.T, sub *live.Subscription) {
		t.Helper()
		select {
		case <-sub.C:
		case <-time.After(10 * time.Second):
			t.Fatal("no signal within 10 s")
		}
	}

	t.Run("OneWatchRowPerTaskWhileSubscribed", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := setup(t, nil)

		first, err := b.hub.Subscribe(ctx, 7)
		require.NoError(t, err)
		second, err := b.hub.Subscribe(ctx, 7)
		require.NoError(t, err)
		require.Equal(t, 1, watchRows(t, b.pool, 7))
		require.Equal(t, 2, b.hub.Streams())

		first.Close()
		first.Close() // a second Close changes nothing
		require.Equal(t, 1, watchRows(t, b.pool, 7), "the other subscriber still watches")
		second.Close()
		require.Zero(t, watchRows(t, b.pool, 7))
		require.Zero(t, b.hub.Streams())
	})

	t.Run("ChangeSignalsOnlyItsTasksSubscribers", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := setup(t, nil)
		insertTask(t, b.pool, 1)
		insertTask(t, b.pool, 2)

		one, err := b.hub.Subscribe(ctx, 1)
		require.NoError(t, err)
		defer one.Close()
		two, err := b.hub.Subscribe(ctx, 2)
		require.NoError(t, err)
		defer two.Close()

		_, err = b.pool.Exec(ctx, `UPDATE task_records SET progress = '{"done": 1, "total": 2, "message": ""}' WHERE id = 1`)
		require.NoError(t, err)
		requireSignal(t, one)
		select {
		case <-two.C:
			t.Fatal("task 2 did not change")
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("ProcessCap", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := setup(t, &live.HubOpts{MaxStreams: 2})
		for id := range int64(2) {
			sub, err := b.hub.Subscribe(ctx, id+1)
			require.NoError(t, err)
			defer sub.Close()
		}
		_, err := b.hub.Subscribe(ctx, 3)
		require.ErrorIs(t, err, live.ErrTooManyStreams)
		require.Zero(t, watchRows(t, b.pool, 3), "a refused subscription writes nothing")
		require.Equal(t, 2, b.hub.Streams())
	})

	t.Run("AdmitFuncRefusesAndReleases", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		var admitted, released int
		b := setup(t, &live.HubOpts{AdmitFunc: func(_ context.Context, taskID int64) (func(), error) {
			if taskID == 13 {
				return nil, errors.Join(live.ErrTooManyStreams, errors.New("tenant cap"))
			}
			admitted++
			return func() { released++ }, nil
		}})
		_, err := b.hub.Subscribe(ctx, 13)
		require.ErrorIs(t, err, live.ErrTooManyStreams)
		sub, err := b.hub.Subscribe(ctx, 12)
		require.NoError(t, err)
		sub.Close()
		require.Equal(t, 1, admitted)
		require.Equal(t, 1, released)
	})

	t.Run("TenantCap", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		// Tasks 1-9 are tenant a's, 10-19 b's; 99 is nobody's (a 404).
		tenantOf := func(_ context.Context, taskID int64) (string, error) {
			switch {
			case taskID == 99:
				return "", nil
			case taskID < 10:
				return "a", nil
			default:
				return "b", nil
			}
		}
		b := setup(t, &live.HubOpts{MaxStreams: 10, AdmitFunc: live.TenantCap(2, tenantOf)})
		a1, err := b.hub.Subscribe(ctx, 1)
		require.NoError(t, err)
		a2, err := b.hub.Subscribe(ctx, 1)
		require.NoError(t, err)
		_, err = b.hub.Subscribe(ctx, 2)
		require.ErrorIs(t, err, live.ErrTooManyStreams, "a's third stream")
		require.ErrorContains(t, err, "LIVE_MAX_STREAMS_PER_TENANT")
		require.Zero(t, watchRows(t, b.pool, 2), "a refused subscription writes nothing")
		for range 2 {
			sub, err := b.hub.Subscribe(ctx, 11)
			require.NoError(t, err, "b is not held back by a")
			defer sub.Close()
		}
		for range 3 {
			sub, err := b.hub.Subscribe(ctx, 99)
			require.NoError(t, err, "a stream of no tenant is not counted")
			defer sub.Close()
		}
		a1.Close()
		a1.Close() // a second Close releases nothing more
		a3, err := b.hub.Subscribe(ctx, 3)
		require.NoError(t, err, "a closed stream makes room")
		defer a3.Close()
		_, err = b.hub.Subscribe(ctx, 4)
		require.ErrorIs(t, err, live.ErrTooManyStreams, "the double Close freed one slot, not two")
		a2.Close()
	})

	t.Run("ReconnectSignalsEverySubscriber", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := setup(t, &live.HubOpts{ReconnectDelay: 10 * time.Millisecond})
		sub, err := b.hub.Subscribe(ctx, 5)
		require.NoError(t, err)
		defer sub.Close()
		// A Postgres crash empties the unlogged table; so does this.
		_, err = b.pool.Exec(ctx, "DELETE FROM task_watch")
		require.NoError(t, err)

		pid := b.hub.ListenerPID()
		_, err = b.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid)) //nolint:gosec // a backend pid
		require.NoError(t, err)
		requireSignal(t, sub)
		// The condition runs on another goroutine: it reports, never fails.
		require.Eventually(t, func() bool {
			var n int
			err := b.pool.QueryRow(ctx, "SELECT count(*) FROM task_watch WHERE task_id = 5").Scan(&n)
			return err == nil && n == 1
		}, 10*time.Second, 10*time.Millisecond, "the watch is registered again after the reconnect")
		require.NotEqual(t, pid, b.hub.ListenerPID())
	})

	// A fetch whose trigger ran before the watch existed, and which commits
	// after it: Subscribe waits for that commit, so the read that follows
	// it sees the job running (no NOTIFY will ever tell of it: migration
	// 00017 copies a fetch only for a watched task).
	t.Run("SubscribeWaitsForAChangeBeingCommitted", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := setup(t, nil)

		var id int64
		require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, metadata, tags)
			VALUES ('{}', 'noop', 25, 1, 'default', 'available', '{}', '{}') RETURNING id`).Scan(&id))
		fetch, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = fetch.Rollback(context.WithoutCancel(ctx)) }()
		_, err = fetch.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1`, id)
		require.NoError(t, err)

		type seen struct {
			state string
			err   error
		}
		got := make(chan seen, 1)
		go func() {
			sub, err := b.hub.Subscribe(ctx, id)
			if err != nil {
				got <- seen{err: err}
				return
			}
			defer sub.Close()
			var s seen
			s.err = b.pool.QueryRow(ctx, `SELECT state FROM tasks WHERE id = $1`, id).Scan(&s.state)
			got <- s
		}()
		// Commit the fetch once the watch waits for it (a backend of this
		// database waiting on a lock), not before: committing early would
		// prove nothing.
		require.Eventually(t, func() bool {
			var waiting bool
			err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%task_watch%')`).Scan(&waiting)
			require.NoError(t, err)
			return waiting
		}, 10*time.Second, 5*time.Millisecond, "the watch never waited for the fetch being committed")
		require.NoError(t, fetch.Commit(ctx))
		s := <-got
		require.NoError(t, s.err)
		require.Equal(t, "running", s.state)
	})
}
