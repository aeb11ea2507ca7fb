//go:build chaos

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

// previousRelease is the commit the rolling-deploy scenario deploys from:
// the release before this work (its schema stops at migration 00010).
// HANDOFF_DEPLOY_FROM picks another commit.
const previousRelease = "fd77f1a"

// buildRelease builds cmd/server as it was at commit, from a `git archive`
// of that commit in a temporary directory (the repository is not touched),
// and returns the binary's path.
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	ctx := t.Context()
	src := t.TempDir()
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	require.NoError(t, err, "the rolling-deploy scenario needs the git repository")
	//nolint:gosec // the commit is a constant or the tester's HANDOFF_DEPLOY_FROM
	archive := exec.CommandContext(ctx, "git", "-C", string(top[:len(top)-1]), "archive", "--format=tar", commit)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	untar.Stdin, err = archive.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	archive.Stderr = &stderr
	require.NoError(t, untar.Start())
	require.NoError(t, archive.Run(), "git archive %s: %s", commit, stderr.String())
	require.NoError(t, untar.Wait())

	bin := filepath.Join(t.TempDir(), "handoff-"+commit)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server") //nolint:gosec // bin is a path in the test's temp dir
	build.Dir = src
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build %s: %s", commit, out)
	return bin
}

// startBinary starts bin serving databaseURL, as startServer does for the
// binary under test.
func startBinary(t *testing.T, bin, databaseURL string, extraEnv ...string) *serverProcess {
	t.Helper()
	p := &serverProcess{output: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve") //nolint:noctx // the test stops it by PID, never by context
	p.cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL, "HTTP_ADDR=127.0.0.1:0")
	p.cmd.Env = append(p.cmd.Env, extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server %s (%d) output:\n%s", filepath.Base(bin), p.cmd.Process.Pid, p.output.String())
		}
	})
	p.base = waitServing(t, p.output, func() bool {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	})
	return p
}

// migrateWith runs `bin migrate up` against databaseURL and returns its output.
func migrateWith(t *testing.T, bin, databaseURL string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, "migrate", "up")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s migrate up: %s", filepath.Base(bin), out)
	return string(out)
}

// TestChaosRollingDeploy deploys this version over the previous release as
// a rolling deploy does, under load: the old binary migrates and serves;
// the new binary's migrations are applied while the old one serves; the new
// one starts and both serve the same database at once; then the old one is
// stopped with SIGTERM. Tasks are enqueued through both and worked by both,
// and the ledger must show nothing lost and nothing recorded twice.
func TestChaosRollingDeploy(t *testing.T) { //nolint:paralleltest // scenarios run one at a time: each loads the machine and measures recovery
	from := previousRelease
	if v := os.Getenv("HANDOFF_DEPLOY_FROM"); v != "" {
		from = v
	}
	oldBin := buildRelease(t, from)
	newBin, err := buildServer()
	require.NoError(t, err)

	url := pgtest.NewEmptyDB(t)
	t.Logf("old release %s: %s", from, migrateWith(t, oldBin, url))
	pool := testPool(t, url)
	auditResults(t, pool)

	l := newLedger()
	c := &cluster{}
	var (
		mu     sync.Mutex
		sentTo = map[string]int{}
	)
	pick := func() string {
		base := c.pick()
		mu.Lock()
		sentTo[base]++
		mu.Unlock()
		return base
	}
	old := startBinary(t, oldBin, url, chaosEnv...)
	c.set(old)
	stop := l.load(t.Context(), 8, pick)

	// Expand: the new release's migrations go in while the old one serves.
	time.Sleep(1500 * time.Millisecond)
	migrated := migrateWith(t, newBin, url)
	require.Contains(t, migrated, "00011_", "the new release adds migrations the old one lacks")
	time.Sleep(1500 * time.Millisecond)

	// Both releases serve and work the same database.
	next := startServer(t, url, chaosEnv...)
	c.set(old, next)
	time.Sleep(3 * time.Second)

	// Retire the old release: routing first, then SIGTERM.
	c.set(next)
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, old.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-old.exited:
		require.NoError(t, old.err, "graceful stop exits 0")
	case <-time.After(30 * time.Second):
		t.Fatal("old server did not stop after SIGTERM")
	}
	deployedAt := time.Now()
	time.Sleep(time.Second)
	stop()
	l.mu.Lock()
	unanswered := len(l.unknown)
	l.mu.Unlock()
	require.Zero(t, unanswered, "a graceful stop finishes the requests in flight: %v", l.unknown)
	s := l.check(t, pool, "rolling deploy "+from+" -> this", deployedAt)

	mu.Lock()
	fmt.Printf("chaos: rolling deploy: requests to old %d, to new %d\n", sentTo[old.base], sentTo[next.base])
	require.Positive(t, sentTo[old.base], "tasks enqueued through the old release")
	require.Positive(t, sentTo[next.base], "tasks enqueued through the new release")
	mu.Unlock()

	// Each River client records itself in attempted_by: two clients (one
	// per process) completed tasks.
	rows, err := pool.Query(t.Context(), `SELECT attempted_by[array_length(attempted_by, 1)], count(*) FROM river_job WHERE state = 'completed' GROUP BY 1 ORDER BY 1`)
	require.NoError(t, err)
	workedBy := map[string]int{}
	for rows.Next() {
		var client string
		var n int
		require.NoError(t, rows.Scan(&client, &n))
		workedBy[client] = n
	}
	require.NoError(t, rows.Err())
	fmt.Printf("chaos: rolling deploy: completed by River client %v (accepted %d)\n", workedBy, s.accepted)
	require.Len(t, workedBy, 2, "both releases worked tasks")
}
