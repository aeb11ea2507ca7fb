package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgbenchTables are trigger-free copies of the domain table (task_records;
// tasks is a view over it since migration 00017) and river_job (LIKE ...
// INCLUDING ALL copies columns, defaults, constraints and indexes, never
// triggers): what a task's two rows cost Postgres without Handoff's
// triggers or any Go, the enqueue baseline of issue 11.
const pgbenchTables = `
CREATE TABLE bench_river_job (LIKE river_job INCLUDING ALL);
CREATE TABLE bench_tasks (LIKE task_records INCLUDING ALL);`

// pgbenchScript is one accepted task as two inserts in one transaction: the
// River job row as River's InsertTx writes a noop task's, then the domain row
// with the job's id, as the tasks insert trigger writes it.
const pgbenchScript = `BEGIN;
INSERT INTO bench_river_job (args, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags)
VALUES ('{}', 'noop', 25, '{"handoff_tenant": "default"}', 1, 'default', now(), 'available', '{}') RETURNING id \gset
INSERT INTO bench_tasks (id, kind, queue, priority, args, state, attempt, max_attempts, created_at, scheduled_at, tenant)
VALUES (:id, 'noop', 'default', 1, '{}', 'available', 0, 25, now(), now(), 'default');
COMMIT;
`

// pgbench runs pgbenchScript against one database.
type pgbench struct {
	bin    string
	dbURL  string
	script string
}

// newPgbench finds pgbench (on PATH, in pg_config --bindir, or under
// /usr/lib/postgresql), makes the tables of its script in pool's database
// and writes the script to dir.
func newPgbench(ctx context.Context, pool *pgxpool.Pool, dbURL, dir string) (*pgbench, error) {
	bin, err := findPgbench(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, pgbenchTables); err != nil {
		return nil, fmt.Errorf("create pgbench's tables: %w", err)
	}
	script := filepath.Join(dir, "enqueue.pgbench")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o600); err != nil {
		return nil, fmt.Errorf("write pgbench script: %w", err)
	}
	return &pgbench{bin: bin, dbURL: dbURL, script: script}, nil
}

func findPgbench(ctx context.Context) (string, error) {
	if bin, err := exec.LookPath("pgbench"); err == nil {
		return bin, nil
	}
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		if bin := filepath.Join(strings.TrimSpace(string(out)), "pgbench"); isExecutable(bin) {
			return bin, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	for i := len(matches) - 1; i >= 0; i-- {
		if isExecutable(matches[i]) {
			return matches[i], nil
		}
	}
	return "", errors.New("pgbench not found (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin): install the PostgreSQL client tools (Debian: postgresql-client)")
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode()&0o111 != 0
}

var pgbenchTPS = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// run runs the script from clients connections for d (whole seconds, at
// least one) and returns the transactions per second pgbench reports,
// connection set-up excluded.
func (p *pgbench) run(ctx context.Context, clients int, d time.Duration) (float64, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, p.bin, "--no-vacuum", "--protocol=prepared", //nolint:gosec // our own arguments
		"--client="+strconv.Itoa(clients), "--jobs="+strconv.Itoa(min(clients, 2)),
		"--time="+strconv.Itoa(secs), "--file="+p.script, p.dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := pgbenchTPS.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, fmt.Errorf("parse pgbench tps %q: %w", m[1], err)
	}
	return tps, nil
}
