package migrations_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestEnqueueUpgrade: migration 00012 recomputes the request hash of keys
// taken before it, so a resend across the upgrade returns the same task.
func TestEnqueueUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t)

	_, err := bundle.provider.UpTo(ctx, 11)
	require.NoError(t, err)
	runAt := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	// As the API before 00012 inserted them: a hash of the old Go definition.
	oldHash := "aa00000000000000000000000000000000000000000000000000000000000000"
	var now, later int64
	require.NoError(t, bundle.pool.QueryRow(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, state, tags)
		VALUES ('{"seconds": 1}', 'sleep', 25, jsonb_build_object('handoff_idempotency_key', 'old-1', 'handoff_request_hash', $1::text),
		        1, 'default', 'available', '{}')
		RETURNING id`, oldHash).Scan(&now))
	require.NoError(t, bundle.pool.QueryRow(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, state, scheduled_at, tags)
		VALUES ('{}', 'noop', 25, jsonb_build_object('handoff_idempotency_key', 'old-2', 'handoff_request_hash', $1::text),
		        1, 'default', 'scheduled', $2, '{}')
		RETURNING id`, oldHash, runAt).Scan(&later))

	_, err = bundle.provider.UpTo(ctx, 12)
	require.NoError(t, err)
	_, err = bundle.pool.Exec(ctx, `INSERT INTO handoff.kinds (kind, shape) VALUES ('sleep', '{"fields": {"seconds": {"type": "number"}}}'), ('noop', '{"fields": {}}'); INSERT INTO handoff.queues (name) VALUES ('default')`)
	require.NoError(t, err)

	var again int64
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('sleep', '{"seconds": 1}', idempotency_key => 'old-1')`).Scan(&again))
	require.Equal(t, now, again)
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}', run_at => $1, idempotency_key => 'old-2')`, runAt).Scan(&again))
	require.Equal(t, later, again)
	var tenant string
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT tenant FROM tasks WHERE id = $1`, now).Scan(&tenant))
	require.Equal(t, "default", tenant, "existing rows are in the default tenant")
}
