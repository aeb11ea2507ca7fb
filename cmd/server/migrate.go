package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/handoff/handoff/internal/config"
	"github.com/handoff/handoff/internal/httpapi"
	"github.com/handoff/handoff/migrations"
)

// migrate runs `migrate up|down|status|version`.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || len(args) > 2 {
		return fmt.Errorf("migrate needs a command: up, down, status or version\n%s", usage)
	}
	cmd := args[0]
	var target int64 = -1
	if len(args) == 2 {
		if cmd != "up" && cmd != "down" {
			return fmt.Errorf("migrate %s takes no version\n%s", cmd, usage)
		}
		v, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("migrate %s: version %q must be a non-negative integer", cmd, args[1])
		}
		target = v
	}

	cfg, err := config.Parse(getenv)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	schema := newSchema(pool)
	defer schema.Close()
	p, err := schema.provider()
	if err != nil {
		return err
	}

	switch cmd {
	case "up":
		var results []*goose.MigrationResult
		if target < 0 {
			results, err = p.Up(ctx)
		} else {
			results, err = p.UpTo(ctx, target)
		}
		printResults(stdout, results)
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
	case "down":
		var results []*goose.MigrationResult
		if target < 0 {
			var r *goose.MigrationResult
			r, err = p.Down(ctx)
			if r != nil {
				results = append(results, r)
			}
		} else {
			results, err = p.DownTo(ctx, target)
		}
		printResults(stdout, results)
		if err != nil && !errors.Is(err, goose.ErrNoNextVersion) {
			return fmt.Errorf("migrate down: %w", err)
		}
	case "status":
		statuses, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tMIGRATION")
		for _, s := range statuses {
			applied := "-"
			if !s.AppliedAt.IsZero() {
				applied = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, s.Source.Path)
		}
		return tw.Flush()
	case "version":
		current, target, err := p.GetVersions(ctx)
		if err != nil {
			return fmt.Errorf("migrate version: %w", err)
		}
		fmt.Fprintf(stdout, "schema version %d (this binary's latest: %d)\n", current, target)
	default:
		return fmt.Errorf("unknown migrate command %q: use up, down, status or version", cmd)
	}
	return nil
}

func printResults(w io.Writer, results []*goose.MigrationResult) {
	if len(results) == 0 {
		fmt.Fprintln(w, "no migrations to apply")
		return
	}
	for _, r := range results {
		state := "OK"
		if r.Error != nil {
			state = "FAILED: " + r.Error.Error()
		}
		fmt.Fprintf(w, "%-4s %s (%s) %s\n", r.Direction, r.Source.Path, r.Duration.Round(time.Millisecond), state)
	}
}

// schema checks and moves the database schema with goose.
type schema struct {
	pool *pgxpool.Pool
	db   *sql.DB
	// checker runs version checks without the migration lock, so that a
	// readiness probe never waits behind a migration.
	checker *goose.Provider
}

func newSchema(pool *pgxpool.Pool) *schema {
	return &schema{pool: pool, db: stdlib.OpenDBFromPool(pool)}
}

// provider returns a goose provider that takes the advisory lock, so that
// replicas starting together migrate one at a time.
func (s *schema) provider() (*goose.Provider, error) {
	p, err := migrations.NewProvider(s.db, &migrations.ProviderOpts{Lock: true})
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

// prepare migrates when autoMigrate is set; otherwise it refuses a schema
// older than this binary needs, naming the command that fixes it.
func (s *schema) prepare(ctx context.Context, logger *slog.Logger, autoMigrate bool) error {
	if autoMigrate {
		p, err := s.provider()
		if err != nil {
			return err
		}
		results, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("AUTO_MIGRATE: %w", err)
		}
		logger.InfoContext(ctx, "migrations applied", slog.Int("count", len(results)))
	}
	current, target, err := s.versions(ctx)
	if err != nil {
		return err
	}
	if current < target {
		return fmt.Errorf("database schema is at version %d but this binary needs version %d: run `handoff migrate up` (from the source tree: `DATABASE_URL=... go run ./cmd/server migrate up`, or `make run`), or start with AUTO_MIGRATE=true", current, target)
	}
	if current > target {
		logger.WarnContext(ctx, "database schema is newer than this binary; serving, as migrations are kept backward compatible", slog.Int64("schema_version", current), slog.Int64("binary_version", target))
	}
	logger.InfoContext(ctx, "schema checked", slog.Int64("version", current))
	s.warnOpenSchema(ctx, logger)
	return nil
}

// warnOpenSchema warns when every role may create objects in schema public,
// where Handoff's functions and triggers find functions: any role that can
// connect could plant an exact-typed overload of one they call, and it
// would run as whoever fires the trigger, this server included (the
// default before PostgreSQL 15; docs/security.md).
func (s *schema) warnOpenSchema(ctx context.Context, logger *slog.Logger) {
	var open bool
	err := s.pool.QueryRow(ctx, `SELECT has_schema_privilege('public', 'public', 'CREATE')`).Scan(&open)
	if err == nil && open {
		logger.WarnContext(ctx, "every role may create objects in schema public, where Handoff's functions and triggers look up functions: run REVOKE CREATE ON SCHEMA public FROM PUBLIC (PostgreSQL 15's default), and give apps their own schema")
	}
}

func (s *schema) versions(ctx context.Context) (current, target int64, err error) {
	if s.checker == nil {
		if s.checker, err = migrations.NewProvider(s.db, nil); err != nil {
			return 0, 0, fmt.Errorf("load migrations: %w", err)
		}
	}
	current, target, err = s.checker.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	return current, target, nil
}

// ready is the readiness check: Postgres answers and the schema has every
// migration this binary needs. A newer schema is ready too, so that the
// old replicas of a rolling deploy stay in service while the new ones
// migrate.
func (s *schema) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return &httpapi.NotReadyError{Reason: "database unreachable", Err: err}
	}
	current, target, err := s.versions(ctx)
	if err != nil {
		return &httpapi.NotReadyError{Reason: "cannot read the schema version", Err: err}
	}
	if current < target {
		return &httpapi.NotReadyError{
			Reason: fmt.Sprintf("schema at version %d, binary needs %d: run `migrate up`", current, target),
			Err:    errors.New("schema too old"),
		}
	}
	return nil
}

// Close releases the database/sql handle; the pool stays open.
func (s *schema) Close() {
	_ = s.db.Close()
}
