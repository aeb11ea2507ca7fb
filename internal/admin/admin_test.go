package admin_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/admin"
	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/jobs"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewDB(t)
	workers, err := jobs.Workers(jobs.Kinds(jobs.Deps{}))
	require.NoError(t, err)
	// An insert-only client: River records no queue, so pause has nothing
	// to pause.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers, Logger: pgtest.Logger(t)})
	require.NoError(t, err)
	_, err = client.InsertMany(ctx, []river.InsertManyParams{
		{Args: jobs.NoopArgs{}},
		{Args: jobs.NoopArgs{}, InsertOpts: &river.InsertOpts{Queue: "emails"}},
		{Args: jobs.NoopArgs{}, InsertOpts: &river.InsertOpts{Queue: "emails", ScheduledAt: time.Now().Add(time.Hour)}},
	})
	require.NoError(t, err)

	queues := admin.NewQueues(pool, client, []string{"default", "reports"})
	list, err := queues.List(ctx)
	require.NoError(t, err)
	names := make([]string, 0, len(list))
	for _, q := range list {
		names = append(names, q.Name)
	}
	require.Equal(t, []string{"default", "emails", "reports"}, names, "configured queues and queues with tasks, sorted")
	require.Equal(t, int64(1), list[0].Available)
	require.Equal(t, int64(1), list[1].Available)
	require.Equal(t, int64(1), list[1].Scheduled)
	require.Zero(t, list[2].Available)
	require.False(t, list[0].Paused)

	_, err = queues.Pause(ctx, "reports")
	require.ErrorIs(t, err, admin.ErrQueueNotFound)
	_, err = queues.Get(ctx, "nosuch")
	require.ErrorIs(t, err, admin.ErrQueueNotFound)

	// Once a client works the queue, River records it and pause works.
	worker, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Workers: workers, Logger: pgtest.Logger(t),
		Queues: map[string]river.QueueConfig{"reports": {MaxWorkers: 1}},
	})
	require.NoError(t, err)
	require.NoError(t, worker.Start(ctx))
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		require.NoError(t, worker.Stop(stopCtx))
	}()
	require.Eventually(t, func() bool {
		_, err := client.QueueGet(ctx, "reports")
		return err == nil
	}, 30*time.Second, 20*time.Millisecond)
	paused, err := queues.Pause(ctx, "reports")
	require.NoError(t, err)
	require.True(t, paused.Paused)
	resumed, err := queues.Resume(ctx, "reports")
	require.NoError(t, err)
	require.False(t, resumed.Paused)
}
