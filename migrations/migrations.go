// Package migrations holds Handoff's Postgres schema as goose migrations:
// River's schema first, generated from the pinned River module by
// internal/rivergen, then Handoff's own tables. The server and the test
// helpers both apply them through NewProvider.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:generate go run ./internal/rivergen

// FS holds every migration file at its root, where goose looks for them.
//
//go:embed *.sql
var FS embed.FS

// ProviderOpts configures NewProvider. A nil *ProviderOpts means the zero value.
type ProviderOpts struct {
	// Lock makes goose hold a Postgres session advisory lock while it works,
	// so several replicas migrating at start-up take turns instead of racing
	// to apply the same version.
	Lock bool
}

// SearchPath is the search_path of Handoff's own sessions (SetSearchPath):
// the schema that holds River's tables and Handoff's, the ones the
// migrations name without a schema, then pg_temp, which Postgres would
// otherwise search first. A function a migration creates with `SET
// search_path FROM CURRENT` pins this.
const SearchPath = "public, pg_temp"

// SetSearchPath makes each new session of cfg replace Postgres's default
// search_path, `"$user", public`, with SearchPath, and leaves any other
// alone: one chosen in the connection string (a search_path parameter, or
// options=-c search_path=...), by ALTER ROLE or ALTER DATABASE, or by
// PGOPTIONS. Every session that migrates must, and the server's do: the
// default puts a schema named after the role first, and a role named
// handoff (the docker-compose file's) would then have created the
// migrations' later tables, views and functions in schema handoff, made by
// migration 00012, beside the earlier ones in public, with River's
// triggers calling the first versions of their functions. Migration 00022
// refuses a database migrated so. It costs one statement per new
// connection.
func SetSearchPath(cfg *pgx.ConnConfig) {
	prev := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgconn.PgConn) error {
		if prev != nil {
			if err := prev(ctx, conn); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, setSearchPath).ReadAll(); err != nil {
			return fmt.Errorf("set search_path: %w", err)
		}
		return nil
	}
}

// setSearchPath sets SearchPath in a session still on Postgres's default.
const setSearchPath = `SELECT set_config('search_path', '` + SearchPath + `', false) WHERE current_setting('search_path') = '"$user", public'`

// NewProvider returns a goose provider that applies FS to the Postgres
// database behind db, whose sessions must use SearchPath (SetSearchPath).
// Closing the provider closes db.
func NewProvider(db *sql.DB, opts *ProviderOpts) (*goose.Provider, error) {
	if opts == nil {
		opts = &ProviderOpts{}
	}

	// Go migrations registered globally by any imported package are not ours.
	options := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if opts.Lock {
		// Goose's five minutes of waiting, but probed every second rather than
		// every five, so waiting replicas start soon after the migration ends.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("create migration lock: %w", err)
		}
		options = append(options, goose.WithSessionLocker(locker))
	}

	provider, err := goose.NewProvider(goose.DialectPostgres, db, FS, options...)
	if err != nil {
		return nil, fmt.Errorf("create migration provider: %w", err)
	}
	return provider, nil
}

// LatestVersion returns the highest migration version in FS: the schema
// version this binary is built for. A database below it is not ready for this
// binary; one above it was migrated by a newer release.
func LatestVersion() int64 {
	// The embed pattern guarantees every name ends in .sql, and goose refuses
	// the same names NumericComponent does, so a name it cannot parse also
	// stops NewProvider; skipping it here is safe.
	names, _ := fs.Glob(FS, "*.sql")
	var latest int64
	for _, name := range names {
		if version, err := goose.NumericComponent(name); err == nil {
			latest = max(latest, version)
		}
	}
	return latest
}
