package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/handoff/handoff/internal/dburl"
	"github.com/handoff/handoff/migrations"
)

// riverOnlyVersion is the last migration of River's own schema: a database
// migrated to it has River's tables and none of Handoff's (no tasks table, no
// trigger), which is what the "River alone" baselines run on.
const riverOnlyVersion = 8

// databases creates the bench's own databases on the server behind baseURL
// and drops every one of them at the end, also after an error or interrupt.
type databases struct {
	baseURL string

	mu    sync.Mutex
	names []string
}

// create makes a fresh, empty database whose name says what it is for, and
// returns its URL. The bench uses one database at a time, so create first
// drops those made before: a drained backlog leaves two dead row versions
// per job in each of two tables, and the autovacuum of a 1M drain ran for
// tens of seconds beside the next phase's measurements (the live phase's
// drain ratio read 0.82–0.89 in full runs, 0.90–1.00 alone).
func (d *databases) create(ctx context.Context, purpose string) (string, error) {
	if err := d.dropAll(); err != nil {
		return "", err
	}
	name := fmt.Sprintf("handoff_bench_%s_%08x", purpose, rand.Uint32()) //nolint:gosec // uniqueness, not secrecy
	conn, err := pgx.Connect(ctx, d.baseURL)
	if err != nil {
		return "", fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// template0 never has sessions, so cloning it never waits for any.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	d.mu.Lock()
	d.names = append(d.names, name)
	d.mu.Unlock()
	return dburl.WithDatabase(d.baseURL, name)
}

// dropAll drops every database create made. It runs before each new one and
// at exit, on a context of its own, since the run's context may already be
// cancelled.
func (d *databases) dropAll() error {
	d.mu.Lock()
	names := d.names
	d.names = nil
	d.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.baseURL)
	if err != nil {
		return fmt.Errorf("connect to drop bench databases %s: %w", strings.Join(names, ", "), err)
	}
	defer conn.Close(ctx)
	var errs []error
	for _, name := range names {
		// FORCE ends sessions that a killed server may have left behind.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// migrate applies Handoff's migrations to the database at dbURL, up to
// version, or all of them when version is 0.
func migrate(ctx context.Context, dbURL string, version int64) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	migrations.SetSearchPath(cfg)
	provider, err := migrations.NewProvider(stdlib.OpenDB(*cfg), nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if version == 0 {
		_, err = provider.Up(ctx)
	} else {
		_, err = provider.UpTo(ctx, version)
	}
	// Closing the provider closes its database handle.
	closeErr := provider.Close()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if closeErr != nil {
		return fmt.Errorf("close migration connection: %w", closeErr)
	}
	return nil
}

// newDB creates and migrates a database and opens a pool of maxConns on it.
func (d *databases) newDB(ctx context.Context, purpose string, version int64, maxConns int) (string, *pgxpool.Pool, error) {
	dbURL, err := d.create(ctx, purpose)
	if err != nil {
		return "", nil, err
	}
	if err := migrate(ctx, dbURL, version); err != nil {
		return "", nil, err
	}
	pool, err := openPool(ctx, dbURL, maxConns)
	if err != nil {
		return "", nil, err
	}
	return dbURL, pool, nil
}

func openPool(ctx context.Context, dbURL string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.MaxConns = int32(maxConns) //nolint:gosec // a flag, checked to be small
	migrations.SetSearchPath(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return pool, nil
}

// loadBatch bounds one bulk statement, so that a 1M backlog is loaded in
// statements of a size Postgres handles without spilling much to disk.
const loadBatch = 50_000

// loadBacklog inserts n available noop jobs, shaped as River's InsertTx
// writes them (args {}, 25 attempts, priority 1, default queue). On a
// database with Handoff's schema the insert trigger gives each its tasks
// row, as for a task created through the API. Bulk SQL rather than the API
// because it is the drain, not the load, that is measured.
func loadBacklog(ctx context.Context, pool *pgxpool.Pool, n int) error {
	const query = `
INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, metadata, tags)
SELECT '{}'::jsonb, 'noop', 25, 1, 'default', 'available', now(), '{}'::jsonb, '{}'::varchar[]
FROM generate_series(1, $1)`
	for done := 0; done < n; done += loadBatch {
		if _, err := pool.Exec(ctx, query, min(loadBatch, n-done)); err != nil {
			return fmt.Errorf("load backlog: %w", err)
		}
	}
	return settle(ctx, pool)
}

// settle vacuums and analyses River's and Handoff's tables after a bulk
// load, so that a drain starts from the same state on every database rather
// than racing autovacuum.
func settle(ctx context.Context, pool *pgxpool.Pool) error {
	var tables []string
	err := pool.QueryRow(ctx, `SELECT array_agg(relname::text) FROM pg_class
		WHERE relname IN ('river_job', 'task_records') AND relkind = 'r' AND relnamespace = 'public'::regnamespace`).Scan(&tables)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	for _, table := range tables {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{table}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum %s: %w", table, err)
		}
	}
	return nil
}

// loadListTasks inserts n tasks rows (no jobs: the list reads only tasks),
// mostly completed, as a long-running installation accumulates them.
func loadListTasks(ctx context.Context, pool *pgxpool.Pool, n int) error {
	const query = `
INSERT INTO task_records (id, kind, queue, priority, args, state, attempt, max_attempts, errors, result,
                   created_at, scheduled_at, started_at, finished_at)
SELECT i,
       CASE WHEN i % 5 = 0 THEN 'sleep' ELSE 'noop' END,
       'default', 1,
       CASE WHEN i % 5 = 0 THEN '{"seconds": 1}'::jsonb ELSE '{}'::jsonb END,
       CASE WHEN i % 100 = 0 THEN 'discarded' WHEN i % 50 = 0 THEN 'retryable' ELSE 'completed' END,
       1, 25,
       CASE WHEN i % 50 = 0 THEN '[{"attempt": 1, "at": "2026-01-01T00:00:00Z", "error": "boom"}]'::jsonb ELSE '[]'::jsonb END,
       CASE WHEN i % 50 = 0 THEN NULL ELSE '{}'::jsonb END,
       t, t, t + interval '1 ms', t + interval '2 ms'
FROM generate_series($1::bigint, $2::bigint) AS i,
     LATERAL (SELECT timestamptz '2026-01-01' + i * interval '1 ms' AS t) AS ts`
	for from := 1; from <= n; from += loadBatch {
		if _, err := pool.Exec(ctx, query, from, min(from+loadBatch-1, n)); err != nil {
			return fmt.Errorf("load tasks: %w", err)
		}
	}
	return settle(ctx, pool)
}
