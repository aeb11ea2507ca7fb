package riverseam_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
	"github.com/handoff/handoff/internal/riverseam"
	"github.com/handoff/handoff/internal/riverseam/seamtest"
)

type discardArgs struct{}

func (discardArgs) Kind() string { return "test_discard" }

// discardWorker discards its job on its first attempt, as the http kind
// does for a 4xx answer.
type discardWorker struct {
	river.WorkerDefaults[discardArgs]
	pool *pgxpool.Pool
}

func (w *discardWorker) Work(ctx context.Context, job *river.Job[discardArgs]) error {
	cause := errors.New("permanent: HTTP 404")
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		_, err := riverseam.JobDiscardTx(ctx, tx, job.JobRow, cause, json.RawMessage(`{"status":404}`))
		return err
	})
	if err != nil {
		return err
	}
	return river.JobCancel(cause)
}

// TestJobDiscardTx: a worker ends its job discarded on its first of five
// attempts, with its error and output, through the middleware at both of
// its settings; River's own later outcome for the job changes nothing, and
// the tasks row agrees.
func TestJobDiscardTx(t *testing.T) {
	t.Parallel()

	for name, idleBelow := range map[string]float64{"Batched": 0, "Inline": riverseam.DefaultIdleBelow} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := pgtest.NewDB(t)
			workers := river.NewWorkers()
			river.AddWorker(workers, &discardWorker{pool: pool})
			client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
				FetchCooldown:     5 * time.Millisecond,
				FetchPollInterval: 50 * time.Millisecond,
				Logger:            pgtest.Logger(t),
				Middleware:        []rivertype.Middleware{riverseam.NewMiddleware(pool, pgtest.Logger(t), idleBelow)},
				Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
				Workers:           workers,
			})
			require.NoError(t, err)
			require.NoError(t, client.Start(ctx))
			t.Cleanup(func() { stop(t, client) })

			res, err := client.Insert(ctx, discardArgs{}, &river.InsertOpts{MaxAttempts: 5})
			require.NoError(t, err)
			waitJob(t, pool, res.Job.ID, "discarded", inState(rivertype.JobStateDiscarded))
			// Stopping flushes River's own outcome for the job, which must
			// change nothing.
			stop(t, client)

			job := seamtest.RequireNoDrift(t, pool, res.Job.ID)[0]
			require.Equal(t, rivertype.JobStateDiscarded, job.State)
			require.Equal(t, 1, job.Attempt)
			require.Equal(t, 5, job.MaxAttempts, "max_attempts is left as it was")
			require.NotNil(t, job.FinalizedAt)
			require.Len(t, job.Errors, 1)
			require.Equal(t, "permanent: HTTP 404", job.Errors[0].Error)
			require.Equal(t, 1, job.Errors[0].Attempt)
			require.JSONEq(t, `{"status":404}`, string(job.Output()))

			var state string
			var errs []byte
			require.NoError(t, pool.QueryRow(ctx, "SELECT state, errors FROM tasks WHERE id = $1", job.ID).Scan(&state, &errs))
			require.Equal(t, "discarded", state)
			require.Contains(t, string(errs), "permanent: HTTP 404")
		})
	}
}
