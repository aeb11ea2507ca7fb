package task_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/task"
	"github.com/handoff/handoff/jobs"
)

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	asA, asB := task.WithTenant(ctx, "a"), task.WithTenant(ctx, "b")

	created, isNew, err := bundle.svc.Create(asA, task.CreateRequest{Kind: "noop", IdempotencyKey: "same"})
	require.NoError(t, err)
	require.True(t, isNew)

	_, err = bundle.svc.Get(asB, created.ID)
	require.ErrorIs(t, err, task.ErrNotFound)
	_, err = bundle.svc.Cancel(asB, created.ID)
	require.ErrorIs(t, err, task.ErrNotFound)
	_, err = bundle.svc.Retry(asB, created.ID)
	require.ErrorIs(t, err, task.ErrNotFound)
	for _, params := range []task.ListParams{{}, {State: "available"}, {Kind: "noop"}, {Kind: "noop", State: "available"}} {
		list, _, err := bundle.svc.List(asB, params)
		require.NoError(t, err)
		require.Empty(t, list, "%+v", params)
		list, _, err = bundle.svc.List(asA, params)
		require.NoError(t, err)
		require.Len(t, list, 1, "%+v", params)
	}
	// B's cancel did not touch A's job.
	got, err := bundle.svc.Get(asA, created.ID)
	require.NoError(t, err)
	require.Equal(t, "available", got.State)
	require.Nil(t, got.CancelRequestedAt)

	// The same idempotency key under B is B's own task.
	other, isNew, err := bundle.svc.Create(asB, task.CreateRequest{Kind: "noop", IdempotencyKey: "same"})
	require.NoError(t, err)
	require.True(t, isNew)
	require.NotEqual(t, created.ID, other.ID)

	// The context's tenant wins over a request's.
	forced, _, err := bundle.svc.Create(asB, task.CreateRequest{Kind: "noop", Tenant: "a"})
	require.NoError(t, err)
	_, err = bundle.svc.Get(asA, forced.ID)
	require.ErrorIs(t, err, task.ErrNotFound)

	// A read token's scope reads any task, and controls none.
	_, err = bundle.svc.Get(task.WithAnyTenant(ctx), created.ID)
	require.NoError(t, err)
	_, err = bundle.svc.Cancel(task.WithAnyTenant(ctx), created.ID)
	require.ErrorIs(t, err, task.ErrNotFound)
}

// TestTenantOutsideTheAPI: a job inserted with River's own InsertTx belongs
// to the tenant in its metadata (handoff_tenant), else to the default one.
func TestTenantOutsideTheAPI(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)

	plain, err := bundle.client.Insert(ctx, jobs.NoopArgs{}, nil)
	require.NoError(t, err)
	named, err := bundle.client.Insert(ctx, jobs.NoopArgs{}, &river.InsertOpts{Metadata: json.RawMessage(`{"handoff_tenant": "acme"}`)})
	require.NoError(t, err)

	_, err = bundle.svc.Get(ctx, plain.Job.ID)
	require.NoError(t, err, "no tenant in metadata: the default tenant's")
	_, err = bundle.svc.Get(ctx, named.Job.ID)
	require.ErrorIs(t, err, task.ErrNotFound)
	_, err = bundle.svc.Get(task.WithTenant(ctx, "acme"), named.Job.ID)
	require.NoError(t, err)
}

func TestMaxUnfinished(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	svc := task.NewService(bundle.pool, bundle.client, jobs.Kinds(jobs.Deps{}), &task.ServiceOpts{MaxUnfinished: 2, Logger: pgtest.Logger(t)})
	asA, asB := task.WithTenant(ctx, "a"), task.WithTenant(ctx, "b")

	first, _, err := svc.Create(asA, task.CreateRequest{Kind: "noop", IdempotencyKey: "one"})
	require.NoError(t, err)
	_, _, err = svc.Create(asA, task.CreateRequest{Kind: "noop"})
	require.NoError(t, err)
	_, _, err = svc.Create(asA, task.CreateRequest{Kind: "noop"})
	var limit *task.LimitError
	require.ErrorAs(t, err, &limit)
	require.ErrorIs(t, err, task.ErrTooManyUnfinished)
	require.Equal(t, 2, limit.Max)
	require.Positive(t, limit.RetryAfter)
	tasks, jobRows := countRows(t, bundle.pool)
	require.Equal(t, 2, tasks, "the refused task wrote nothing")
	require.Equal(t, 2, jobRows)

	// A repeat is answered at the cap; another tenant is not limited.
	again, isNew, err := svc.Create(asA, task.CreateRequest{Kind: "noop", IdempotencyKey: "one"})
	require.NoError(t, err)
	require.False(t, isNew)
	require.Equal(t, first.ID, again.ID)
	_, _, err = svc.Create(asB, task.CreateRequest{Kind: "noop"})
	require.NoError(t, err)

	// A finished task no longer counts.
	_, err = svc.Cancel(asA, first.ID)
	require.NoError(t, err)
	_, _, err = svc.Create(asA, task.CreateRequest{Kind: "noop"})
	require.NoError(t, err)
}

// TestMaxUnfinishedCountsRarely: far from its cap, a tenant's unfinished
// tasks are counted once per roomFresh, not for every create (a count walks
// the dead index entries of finished tasks); within a tenth of the cap every
// create counts, so the refusal comes from a fresh count.
func TestMaxUnfinishedCountsRarely(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	svc := task.NewService(bundle.pool, bundle.client, jobs.Kinds(jobs.Deps{}), &task.ServiceOpts{MaxUnfinished: 100, Logger: pgtest.Logger(t)})
	task.SetRoomFresh(svc, time.Hour) // no count goes stale during the test
	asA := task.WithTenant(ctx, "a")

	for range 90 {
		_, _, err := svc.Create(asA, task.CreateRequest{Kind: "noop"})
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), task.UnfinishedCounts(svc), "90 creates far from the cap of 100: one count")

	for range 10 {
		_, _, err := svc.Create(asA, task.CreateRequest{Kind: "noop"})
		require.NoError(t, err)
	}
	require.Equal(t, int64(11), task.UnfinishedCounts(svc), "within a tenth of the cap, every create counts")
	_, _, err := svc.Create(asA, task.CreateRequest{Kind: "noop"})
	require.ErrorIs(t, err, task.ErrTooManyUnfinished)
	require.Equal(t, int64(12), task.UnfinishedCounts(svc))

	// A batch takes its room from the same count.
	asB := task.WithTenant(ctx, "b")
	reqs := make([]task.CreateRequest, 50)
	for i := range reqs {
		reqs[i] = task.CreateRequest{Kind: "noop"}
	}
	for _, res := range svc.CreateMany(asB, reqs) {
		require.NoError(t, res.Err)
	}
	require.Equal(t, int64(13), task.UnfinishedCounts(svc), "one count for a batch")
	for range 39 {
		_, _, err := svc.Create(asB, task.CreateRequest{Kind: "noop"})
		require.NoError(t, err)
	}
	require.Equal(t, int64(13), task.UnfinishedCounts(svc), "the batch's 50 are taken from the room: 89 admitted on one count")
	_, _, err = svc.Create(asB, task.CreateRequest{Kind: "noop"})
	require.NoError(t, err)
	require.Equal(t, int64(13), task.UnfinishedCounts(svc), "the 90th sees room 11 in the count")
	_, _, err = svc.Create(asB, task.CreateRequest{Kind: "noop"})
	require.NoError(t, err)
	require.Equal(t, int64(14), task.UnfinishedCounts(svc), "the 91st sees room 10: counted")
}

func TestMaxArgsBytes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	svc := task.NewService(bundle.pool, bundle.client, jobs.Kinds(jobs.Deps{}), &task.ServiceOpts{MaxArgsBytes: 16})

	_, _, err := svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1}`)})
	require.NoError(t, err)
	_, _, err = svc.Create(ctx, task.CreateRequest{Kind: "sleep", Args: json.RawMessage(`{"seconds": 1, "fail_times": 0}`)})
	var validation *task.ValidationError
	require.ErrorAs(t, err, &validation)
	require.Equal(t, "must be at most 16 bytes of JSON", validation.Fields["args"])
}

// TestWatcherTenant: a watch counts against the caller's tenant, a read
// token's against its task's, and a read token's of no task against none.
func TestWatcherTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t, false)
	created, _, err := bundle.svc.Create(task.WithTenant(ctx, "a"), task.CreateRequest{Kind: "noop"})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		ctx  context.Context
		id   int64
		want string
	}{
		{"caller's tenant, its own task", task.WithTenant(ctx, "a"), created.ID, "a"},
		{"caller's tenant, another's task", task.WithTenant(ctx, "b"), created.ID, "b"},
		{"no tenant set (Go callers)", ctx, created.ID, task.DefaultTenant},
		{"read token: the task's tenant", task.WithAnyTenant(ctx), created.ID, "a"},
		{"read token of no task", task.WithAnyTenant(ctx), created.ID + 1000, ""},
	} {
		got, err := task.WatcherTenant(tc.ctx, bundle.pool, tc.id)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
}
