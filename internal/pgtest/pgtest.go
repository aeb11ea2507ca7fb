// Package pgtest gives tests their own Postgres databases. Only _test.go
// files import it.
//
// The first use in a test binary makes sure a template database holding the
// current migrations exists: its name carries a hash of migrations.FS, so
// changed migrations get a new template while unchanged ones are reused across
// runs and packages. Every NewDB and NewDBURL call then clones the template,
// far quicker than migrating, into a database of the test's own, and drops it
// when the test ends; NewEmptyDB does the same with an empty database. Tx
// shares one migrated database and rolls back instead, for tests that only
// query.
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/handoff/handoff/internal/dburl"
	"github.com/handoff/handoff/migrations"
)

const (
	// maxConns bounds each pool, so many parallel tests across parallel test
	// binaries stay below the server's max_connections.
	maxConns = 10

	// setupLockKey serializes creating the template and the shared database
	// among the test binaries that `go test ./...` runs at the same time. The
	// value only has to differ from other advisory locks on the server.
	setupLockKey int64 = 0x68616e646f6666 // "handoff"

	// layoutVersion is part of the template's hash: changing how this package
	// builds databases then retires old templates, as changed migrations do.
	layoutVersion = "pgtest-1"

	// inUseTimeout bounds retries while Postgres still counts a just-closed
	// session against a database, which makes CREATE DATABASE ... TEMPLATE and
	// ALTER DATABASE ... RENAME fail.
	inUseTimeout = 10 * time.Second

	setupTimeout   = 2 * time.Minute
	cleanupTimeout = 30 * time.Second
)

var (
	// template is the migrated template database's name, made at most once
	// per test binary.
	template = sync.OnceValues(createTemplate)

	// sharedPool is Tx's database, made at most once per test binary and
	// left open until the binary exits.
	sharedPool = sync.OnceValues(openShared)
)

// URL returns DATABASE_URL, the server's maintenance database under which
// test databases are created. It skips the test under -short and fails it when
// DATABASE_URL is unset, so no database test is skipped silently.
func URL(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("database test; skipped with -short")
	}
	databaseURL := os.Getenv("DATABASE_URL")
	if databaseURL == "" {
		tb.Fatal("DATABASE_URL is not set: run `make test`, which starts a local Postgres, or export DATABASE_URL")
	}
	return databaseURL
}

// NewDB returns a pool on a fresh, fully migrated database of the test's own.
// The pool is closed and the database dropped when the test ends.
func NewDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return openPool(tb, NewDBURL(tb))
}

// NewDBURL returns the URL of a fresh, fully migrated database of the test's
// own, for a server started as a subprocess. The database is dropped, with any
// remaining sessions, when the test ends.
func NewDBURL(tb testing.TB) string {
	tb.Helper()
	base := URL(tb)
	templateName, err := template()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return createDB(tb, base, templateName)
}

// NewEmptyDB returns the URL of a fresh database without any migrations, for
// tests of migrating itself. It is dropped when the test ends.
func NewEmptyDB(tb testing.TB) string {
	tb.Helper()
	// template0 is the pristine database nobody may connect to, so cloning it
	// never waits for other sessions, unlike the default template1.
	return createDB(tb, URL(tb), "template0")
}

// Tx returns a transaction on a migrated database shared by the test binary.
// It is rolled back when the test ends, so nothing it writes is ever seen by
// another test; use it for tests that do not commit.
func Tx(tb testing.TB) pgx.Tx {
	tb.Helper()
	URL(tb)
	pool, err := sharedPool()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tx, err := pool.Begin(tb.Context())
	if err != nil {
		tb.Fatalf("pgtest: begin transaction: %v", err)
	}
	tb.Cleanup(func() {
		// The test's context is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			tb.Errorf("pgtest: roll back transaction: %v", err)
		}
	})
	return tx
}

// createDB creates a database cloned from templateName, drops it at cleanup
// and returns its URL.
func createDB(tb testing.TB, base, templateName string) string {
	tb.Helper()
	name := uniqueName(tb.Name())
	dbURL, err := DatabaseURL(base, name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}

	ctx := tb.Context()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("pgtest: connect to maintenance database: %v", err)
	}
	defer conn.Close(context.Background())

	err = execInUseRetry(ctx, conn, "CREATE DATABASE "+quote(name)+" TEMPLATE "+quote(templateName))
	if err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		if err := dropDB(base, name); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return dbURL
}

func dropDB(base, name string) error {
	// The test's context is already canceled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	// FORCE ends sessions a test leaked, such as a subprocess still running.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	return nil
}

func openPool(tb testing.TB, dbURL string) *pgxpool.Pool {
	tb.Helper()
	pool, err := newPool(tb.Context(), dbURL)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	// Registered after createDB's drop, so it runs before it.
	tb.Cleanup(pool.Close)
	return pool
}

func newPool(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	config, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	config.MaxConns = maxConns
	migrations.SetSearchPath(config.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return pool, nil
}

// createTemplate makes sure the template for the current migrations exists and
// returns its name. It is not tied to any one test: all tests of the binary
// share its result.
func createTemplate() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	hash, err := schemaHash()
	if err != nil {
		return "", err
	}
	name := "handoff_template_" + hash
	base := os.Getenv("DATABASE_URL")

	err = withSetupLock(ctx, base, func(conn *pgx.Conn) error {
		exists, err := databaseExists(ctx, conn, name)
		if err != nil || exists {
			return err
		}

		// The template is built under another name and renamed once migrated,
		// so a run that dies halfway never leaves a template that looks done.
		// Holding the lock, nobody else can be using a leftover.
		building := name + "_building"
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quote(building)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop unfinished template: %w", err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+quote(building)+" TEMPLATE template0"); err != nil {
			return fmt.Errorf("create template: %w", err)
		}
		buildingURL, err := DatabaseURL(base, building)
		if err != nil {
			return err
		}
		if err := migrate(ctx, buildingURL); err != nil {
			return err
		}

		// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
		// template; forbidding connections rules that out for good.
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+quote(building)+" WITH ALLOW_CONNECTIONS false"); err != nil {
			return fmt.Errorf("close template to connections: %w", err)
		}
		if err := execInUseRetry(ctx, conn, "ALTER DATABASE "+quote(building)+" RENAME TO "+quote(name)); err != nil {
			return fmt.Errorf("rename template: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("prepare template database: %w", err)
	}
	return name, nil
}

func migrate(ctx context.Context, dbURL string) error {
	config, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	migrations.SetSearchPath(config)
	db := stdlib.OpenDB(*config)
	provider, err := migrations.NewProvider(db, nil)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = provider.Up(ctx)
	// Closing the provider closes db, so no session stays on the template.
	closeErr := provider.Close()
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	if closeErr != nil {
		return fmt.Errorf("close template connection: %w", closeErr)
	}
	return nil
}

// openShared makes sure Tx's database exists and opens a pool on it. Like the
// template, it is named by the migrations' hash and reused across runs and
// test binaries: every transaction on it rolls back, so it stays as cloned.
func openShared() (*pgxpool.Pool, error) {
	templateName, err := template()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	name := strings.Replace(templateName, "_template_", "_shared_", 1)
	base := os.Getenv("DATABASE_URL")
	err = withSetupLock(ctx, base, func(conn *pgx.Conn) error {
		exists, err := databaseExists(ctx, conn, name)
		if err != nil || exists {
			return err
		}
		return execInUseRetry(ctx, conn, "CREATE DATABASE "+quote(name)+" TEMPLATE "+quote(templateName))
	})
	if err != nil {
		return nil, fmt.Errorf("prepare shared database: %w", err)
	}

	dbURL, err := DatabaseURL(base, name)
	if err != nil {
		return nil, err
	}
	// Not the setup context: the pool outlives this function.
	return newPool(context.Background(), dbURL)
}

// withSetupLock runs f on a maintenance connection holding setupLockKey.
func withSetupLock(ctx context.Context, base string, f func(conn *pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to maintenance database: %w", err)
	}
	// Ending the session releases the lock, whatever f did.
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", setupLockKey); err != nil {
		return fmt.Errorf("take setup lock: %w", err)
	}
	return f(conn)
}

func databaseExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var exists bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up database: %w", err)
	}
	return exists, nil
}

// execInUseRetry runs a statement that needs a database nobody is connected
// to. A session that just closed can still be counted for a moment, so
// object_in_use is retried briefly.
func execInUseRetry(ctx context.Context, conn *pgx.Conn, sql string) error {
	deadline := time.Now().Add(inUseTimeout)
	for {
		_, err := conn.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for database to be free: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// schemaHash identifies the contents of migrations.FS.
func schemaHash() (string, error) {
	h := sha256.New()
	h.Write([]byte(layoutVersion))
	err := fs.WalkDir(migrations.FS, ".", func(path string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		content, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		// Lengths keep name and content boundaries unambiguous.
		fmt.Fprintf(h, "\x00%d:%s\x00%d:", len(path), path, len(content))
		h.Write(content)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// uniqueName names a test database after its test, so a leftover one can be
// traced, and makes it unique across tests, runs and test binaries.
func uniqueName(testName string) string {
	const maxTestPart = 30 // Postgres truncates identifiers at 63 bytes.
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() == maxTestPart {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return fmt.Sprintf("handoff_test_%s_%012x", b.String(), rand.Uint64()&(1<<48-1)) //nolint:gosec // Uniqueness, not secrecy.
}

// DatabaseURL points base, a URL or keyword/value connection string, at the
// database name.
func DatabaseURL(base, name string) (string, error) {
	return dburl.WithDatabase(base, name)
}

func quote(name string) string {
	return pgx.Identifier{name}.Sanitize()
}
