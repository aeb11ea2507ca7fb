package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestEnqueueTenantRule: migration 00019 makes handoff.enqueue refuse a
// tenant that `handoff keys create --tenant` refuses (auth.ValidTenant), with
// 22023 and COLUMN tenant; tasks already stored under such a tenant stay, and
// its Down restores 00012's check exactly.
func TestEnqueueTenantRule(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bundle := setup(t)

	_, err := bundle.provider.UpTo(ctx, 18)
	require.NoError(t, err)
	_, err = bundle.pool.Exec(ctx, registerNoop)
	require.NoError(t, err)
	before := checkRequestDef(ctx, t, bundle.pool)
	// Before 00019: accepted, and no key can ever read it.
	old := enqueueTenant(ctx, t, bundle.pool, "Acme Corp")
	require.NoError(t, old)
	var oldID int64
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT id FROM tasks WHERE tenant = 'Acme Corp'`).Scan(&oldID))

	_, err = bundle.provider.UpTo(ctx, 19)
	require.NoError(t, err)

	for _, tenant := range []string{
		"Acme Corp", "ACME", "Acme", "", " ", "acme corp", "-acme", "_acme", "acme\n", "a.b", "acmé",
		strings.Repeat("t", 64), strings.Repeat("t", 256),
	} {
		err := enqueueTenant(ctx, t, bundle.pool, tenant)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "%q", tenant)
		require.Equal(t, "22023", pgErr.Code, "%q", tenant)
		require.Equal(t, "tenant", pgErr.ColumnName, "%q", tenant)
		require.Equal(t, "tenant must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit", pgErr.Message)
	}
	for _, tenant := range []string{"acme", "default", "a", "0", "acme-corp_2", "a-", strings.Repeat("t", 63)} {
		require.NoError(t, enqueueTenant(ctx, t, bundle.pool, tenant), "%q", tenant)
	}
	var id int64
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT handoff.enqueue('noop', '{}')`).Scan(&id))
	var tenant string
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT tenant FROM tasks WHERE id = $1`, id).Scan(&tenant))
	require.Equal(t, "default", tenant, "no tenant is the default tenant")

	// Existing rows are not touched.
	require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT tenant FROM tasks WHERE id = $1`, oldID).Scan(&tenant))
	require.Equal(t, "Acme Corp", tenant)

	// Down restores the previous definition exactly.
	_, err = bundle.provider.DownTo(ctx, 18)
	require.NoError(t, err)
	require.Equal(t, before, checkRequestDef(ctx, t, bundle.pool))
	require.NoError(t, enqueueTenant(ctx, t, bundle.pool, "ACME"))
}

// enqueueTenant calls handoff.enqueue with tenant in its own transaction.
func enqueueTenant(ctx context.Context, t *testing.T, pool *pgxpool.Pool, tenant string) error {
	t.Helper()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT handoff.enqueue('noop', '{}', tenant => $1)`, tenant)
		return err //nolint:wrapcheck // the test inspects the PgError
	})
}

func checkRequestDef(ctx context.Context, t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var def string
	require.NoError(t, pool.QueryRow(ctx, `SELECT pg_get_functiondef('handoff.check_request(text, jsonb, text, integer, integer, timestamptz, text, text, text)'::regprocedure)`).Scan(&def))
	return def
}
