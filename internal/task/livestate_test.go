package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/task"
)

// TestLiveState checks migration 00017's write path: the fetch of an
// unwatched task writes nothing to task_records, yet the tasks view, Get and
// the state lists show it running with its attempt and start; a watched
// task's record follows the fetch, so its watchers hear of it; the finish is
// written once, with what the attempt did.
func TestLiveState(t *testing.T) {
	t.Parallel()

	type record struct {
		State   string
		Attempt int
		Started bool
	}
	readRecord := func(t *testing.T, bundle *testBundle, id int64) record {
		t.Helper()
		var r record
		require.NoError(t, bundle.pool.QueryRow(t.Context(),
			`SELECT state, attempt, started_at IS NOT NULL FROM task_records WHERE id = $1`, id).Scan(&r.State, &r.Attempt, &r.Started))
		return r
	}
	// fetchByHand moves a job to running as River's fetch does.
	fetchByHand := func(t *testing.T, bundle *testBundle, id int64) {
		t.Helper()
		_, err := bundle.pool.Exec(t.Context(), `
			UPDATE river_job SET state = 'running', attempt = attempt + 1, attempted_at = now(),
				attempted_by = array_append(attempted_by, 'test')
			WHERE id = $1`, id)
		require.NoError(t, err)
	}
	listIDs := func(t *testing.T, bundle *testBundle, params task.ListParams) []int64 {
		t.Helper()
		tasks, _, err := bundle.svc.List(t.Context(), params)
		require.NoError(t, err)
		var ids []int64
		for _, tk := range tasks {
			ids = append(ids, tk.ID)
		}
		return ids
	}

	t.Run("UnwatchedRunningIsReadFromRiver", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, true)

		// A task that runs long enough to be seen running, and one that
		// waits: scheduled an hour out, it is 'scheduled' throughout.
		running, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "sleep", Args: sleepArgs(3600, 0)})
		require.NoError(t, err)
		later := time.Now().Add(time.Hour)
		waiting, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "noop", Args: []byte(`{}`), RunAt: &later})
		require.NoError(t, err)

		got := waitForState(t, bundle.svc, running.ID, "running")
		require.Equal(t, 1, got.Attempt)
		require.NotNil(t, got.StartedAt)

		// The record was not written by the fetch.
		require.Equal(t, record{State: "available", Attempt: 0, Started: false}, readRecord(t, bundle, running.ID))

		// SQL readers of tasks see what the API sees.
		var (
			state   string
			attempt int
			started *time.Time
		)
		require.NoError(t, bundle.pool.QueryRow(t.Context(),
			`SELECT state, attempt, started_at FROM tasks WHERE id = $1`, running.ID).Scan(&state, &attempt, &started))
		require.Equal(t, "running", state)
		require.Equal(t, 1, attempt)
		require.NotNil(t, started)
		require.WithinDuration(t, *got.StartedAt, *started, time.Microsecond)

		// Lists by state agree with Get, with and without a kind.
		require.Equal(t, []int64{running.ID}, listIDs(t, bundle, task.ListParams{State: "running"}))
		require.Equal(t, []int64{running.ID}, listIDs(t, bundle, task.ListParams{State: "running", Kind: "sleep"}))
		require.Empty(t, listIDs(t, bundle, task.ListParams{State: "running", Kind: "noop"}))
		require.Empty(t, listIDs(t, bundle, task.ListParams{State: "available"}))
		require.Equal(t, []int64{waiting.ID}, listIDs(t, bundle, task.ListParams{State: "scheduled"}))
		require.Equal(t, []int64{waiting.ID, running.ID}, listIDs(t, bundle, task.ListParams{}))
		// Another tenant sees none of it.
		other := task.WithTenant(t.Context(), "other")
		tasks, _, err := bundle.svc.List(other, task.ListParams{State: "running"})
		require.NoError(t, err)
		require.Empty(t, tasks)

		// Cancelling writes the finish once: the record goes from what the
		// fetch left to cancelled, with the attempt that ran.
		_, err = bundle.svc.Cancel(t.Context(), running.ID)
		require.NoError(t, err)
		done := waitForState(t, bundle.svc, running.ID, "cancelled")
		require.Equal(t, 1, done.Attempt)
		rec := readRecord(t, bundle, running.ID)
		require.Equal(t, record{State: "cancelled", Attempt: 1, Started: true}, rec)
		require.Empty(t, listIDs(t, bundle, task.ListParams{State: "running"}))
	})

	t.Run("WatchedFetchIsWritten", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, false)

		// Inserted while no worker runs, so the watch is in place before
		// the fetch.
		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "sleep", Args: sleepArgs(3600, 0)})
		require.NoError(t, err)
		_, err = bundle.pool.Exec(t.Context(), `INSERT INTO task_watch (task_id, owner) VALUES ($1, 'test')`, created.ID)
		require.NoError(t, err)

		// River's fetch, as the producer runs it, on this database.
		fetchByHand(t, bundle, created.ID)

		require.Equal(t, record{State: "running", Attempt: 1, Started: true}, readRecord(t, bundle, created.ID))
		got, err := bundle.svc.Get(t.Context(), created.ID)
		require.NoError(t, err)
		require.Equal(t, "running", got.State)
		require.Equal(t, []int64{created.ID}, listIDs(t, bundle, task.ListParams{State: "running"}))
	})

	t.Run("DeletedWhileRunningKeepsItsAttempt", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, false)

		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "sleep", Args: sleepArgs(3600, 0)})
		require.NoError(t, err)
		// An unwatched fetch, which the record does not see, then a
		// delete of the running job by SQL (River's JobDelete refuses
		// running jobs).
		fetchByHand(t, bundle, created.ID)
		require.Equal(t, record{State: "available", Attempt: 0, Started: false}, readRecord(t, bundle, created.ID))
		_, err = bundle.pool.Exec(t.Context(), `DELETE FROM river_job WHERE id = $1`, created.ID)
		require.NoError(t, err)

		got, err := bundle.svc.Get(t.Context(), created.ID)
		require.NoError(t, err)
		require.Equal(t, "cancelled", got.State)
		require.Equal(t, 1, got.Attempt)
		require.NotNil(t, got.StartedAt)
		require.Len(t, got.Errors, 1)
		require.Equal(t, 1, got.Errors[0].Attempt)
	})

	t.Run("OldBinaryWritesThroughView", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, false)

		created, _, err := bundle.svc.Create(t.Context(), task.CreateRequest{Kind: "sleep", Args: sleepArgs(3600, 0)})
		require.NoError(t, err)
		fetchByHand(t, bundle, created.ID)

		// What a binary from before migration 00017 sends (its
		// TaskProgressUpdateRunning and TaskCancelRequestedSet), during a
		// rolling deploy: the view's running state and attempt decide.
		tag, err := bundle.pool.Exec(t.Context(),
			`UPDATE tasks SET progress = '{"done": 1, "total": 2, "message": ""}' WHERE id = $1 AND state = 'running' AND attempt = 1`, created.ID)
		require.NoError(t, err)
		require.Equal(t, int64(1), tag.RowsAffected())
		tag, err = bundle.pool.Exec(t.Context(),
			`UPDATE tasks SET progress = '{"done": 2, "total": 2, "message": ""}' WHERE id = $1 AND state = 'running' AND attempt = 2`, created.ID)
		require.NoError(t, err)
		require.Equal(t, int64(0), tag.RowsAffected(), "another attempt's report")
		_, err = bundle.pool.Exec(t.Context(),
			`UPDATE tasks SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = $1`, created.ID)
		require.NoError(t, err)
		got, err := bundle.svc.Get(t.Context(), created.ID)
		require.NoError(t, err)
		require.JSONEq(t, `{"done": 1, "total": 2, "message": ""}`, string(got.Progress))
		require.NotNil(t, got.CancelRequestedAt)

		// Anything else through the view is refused, and changes nothing.
		_, err = bundle.pool.Exec(t.Context(), `UPDATE tasks SET state = 'completed' WHERE id = $1`, created.ID)
		require.ErrorContains(t, err, "only progress and cancel_requested_at")
		require.Equal(t, record{State: "available", Attempt: 0, Started: false}, readRecord(t, bundle, created.ID))
	})
}
