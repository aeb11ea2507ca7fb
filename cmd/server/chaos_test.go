//go:build chaos

// The fault suite, run by `make chaos`. Each scenario accepts tasks under
// load, injects a fault, and then checks a client-side ledger of every
// response against the database. The fast subset that `make test` runs is
// TestCrashLosesNothing.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

// ledger is the client's record of every request: what it was told, by key.
type ledger struct {
	mu       sync.Mutex
	accepted map[string]int64  // 202 or 200: the task exists
	rejected map[string]int    // an HTTP error status: the task must not exist
	unknown  map[string]string // no answer: either may be true, resolved by resending
	bodies   map[string]string
	seq      atomic.Int64
}

func newLedger() *ledger {
	return &ledger{accepted: map[string]int64{}, rejected: map[string]int{}, unknown: map[string]string{}, bodies: map[string]string{}}
}

// submit sends one create request with a fresh idempotency key and records
// the answer.
func (l *ledger) submit(ctx context.Context, base, body string) {
	key := fmt.Sprintf("chaos-%d", l.seq.Add(1))
	l.mu.Lock()
	l.bodies[key] = body
	l.mu.Unlock()
	l.send(ctx, base, key, body, false)
}

// send records the answer to one request. On a resend (of a request that
// got no answer) a 5xx settles nothing: the first attempt may have
// committed, so the key stays unknown.
func (l *ledger) send(ctx context.Context, base, key, body string, resend bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tasks", strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.unknown[key] = err.Error()
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		l.unknown[key] = err.Error()
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
		id, err := strconv.ParseInt(strings.TrimPrefix(resp.Header.Get("Location"), "/v1/tasks/"), 10, 64)
		if err != nil {
			l.unknown[key] = "bad Location: " + string(raw)
			return
		}
		l.accepted[key] = id
		delete(l.unknown, key)
	case resend && resp.StatusCode >= http.StatusInternalServerError:
		l.unknown[key] = resp.Status
	default:
		l.rejected[key] = resp.StatusCode
		delete(l.unknown, key)
	}
}

// resolve resends every unanswered request with its key, as a client would
// after an outage: the idempotency key makes the resend safe.
func (l *ledger) resolve(t *testing.T, base string) {
	t.Helper()
	l.mu.Lock()
	keys := make([]string, 0, len(l.unknown))
	for key := range l.unknown {
		keys = append(keys, key)
	}
	l.mu.Unlock()
	for range 50 {
		for _, key := range keys {
			l.send(t.Context(), base, key, l.bodies[key], true)
		}
		l.mu.Lock()
		keys = keys[:0]
		for key := range l.unknown {
			keys = append(keys, key)
		}
		l.mu.Unlock()
		if len(keys) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Empty(t, l.unknown, "requests still unanswered after resending")
}

// load runs clients that submit a mix of noops and short sleeps, each to a
// base URL chosen by pick, until stop is closed.
func (l *ledger) load(ctx context.Context, clients int, pick func() string) (stop func()) {
	// Stopping is checked between requests, so that no request in flight
	// is cut off by the harness itself.
	var stopping atomic.Bool
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; !stopping.Load() && ctx.Err() == nil; i++ {
				body := `{"kind": "noop"}`
				if (c+i)%4 == 0 {
					body = `{"kind": "sleep", "args": {"seconds": 0.3}}`
				}
				base := pick()
				if base == "" {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				l.submit(ctx, base, body)
			}
		})
	}
	return func() { stopping.Store(true); wg.Wait() }
}

type summary struct {
	scenario                             string
	accepted, completed, lost, duplicate int
	rejected, ghosts                     int
	recover                              time.Duration
}

func (s summary) String() string {
	return fmt.Sprintf("%-34s accepted %6d  completed %6d  lost %d  duplicated results %d  rejected %5d (existing anyway: %d)  recovered in %s",
		s.scenario, s.accepted, s.completed, s.lost, s.duplicate, s.rejected, s.ghosts, s.recover.Round(100*time.Millisecond))
}

// check waits until every accepted task is completed, then compares the
// ledger with the database and prints the summary.
func (l *ledger) check(t *testing.T, pool *pgxpool.Pool, scenario string, faultAt time.Time) summary {
	t.Helper()
	ctx := t.Context()
	l.mu.Lock()
	ids := make([]int64, 0, len(l.accepted))
	for _, id := range l.accepted {
		ids = append(ids, id)
	}
	rejectedKeys := make([]string, 0, len(l.rejected))
	for key := range l.rejected {
		rejectedKeys = append(rejectedKeys, key)
	}
	l.mu.Unlock()
	require.NotEmpty(t, ids)

	s := summary{scenario: scenario, accepted: len(ids), rejected: len(rejectedKeys)}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE id = ANY($1) AND state = 'completed' AND result IS NOT NULL", ids).Scan(&s.completed))
		if s.completed == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.recover = time.Since(faultAt)
	s.lost = len(ids) - s.completed
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM (SELECT task_id FROM result_audit GROUP BY task_id HAVING count(*) > 1) AS d").Scan(&s.duplicate))
	// A result that is not the completing attempt's would be a result
	// recorded by an earlier execution of a rescued task.
	var mismatched int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE id = ANY($1) AND kind = 'sleep' AND (result ->> 'attempt')::int <> attempt", ids).Scan(&mismatched))
	s.duplicate += mismatched
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE idempotency_key = ANY($1)", rejectedKeys).Scan(&s.ghosts))

	fmt.Println("chaos:", s)
	require.Zero(t, s.lost, "accepted tasks lost")
	require.Zero(t, s.duplicate, "results recorded twice")
	require.Zero(t, s.ghosts, "tasks exist for requests the client saw fail")
	return s
}

// auditResults records every write of a task's result, so that a result
// written twice would show. The table is task_records since migration
// 00017 and tasks before it (a rolling deploy starts there); a trigger
// follows its table through the rename.
func auditResults(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
		CREATE TABLE IF NOT EXISTS result_audit (task_id bigint NOT NULL, result jsonb NOT NULL);
		CREATE OR REPLACE FUNCTION audit_result() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO result_audit VALUES (NEW.id, NEW.result); RETURN NULL; END $$;
		DO $$
		DECLARE records regclass := coalesce(to_regclass('task_records'), to_regclass('tasks'));
		BEGIN
			EXECUTE format('DROP TRIGGER IF EXISTS audit_result ON %s', records);
			EXECUTE format('CREATE TRIGGER audit_result AFTER UPDATE ON %s FOR EACH ROW
				WHEN (NEW.result IS NOT NULL AND OLD.result IS DISTINCT FROM NEW.result)
				EXECUTE FUNCTION audit_result()', records);
		END $$;`)
	require.NoError(t, err)
}

func testPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// cluster tracks the live servers of a scenario, for the load to pick from.
type cluster struct {
	mu   sync.Mutex
	live []*serverProcess
	next int
}

func (c *cluster) pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.live) == 0 {
		return ""
	}
	c.next++
	return c.live[c.next%len(c.live)].base
}

func (c *cluster) set(servers ...*serverProcess) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = servers
}

// chaosSeedEnv names the variable that replays a run's random moments.
const chaosSeedEnv = "HANDOFF_CHAOS_SEED"

// chaosRand is the source of a scenario's random moments: seeded from
// HANDOFF_CHAOS_SEED when set, else from the clock, and the seed printed
// either way, so that a failing run can be replayed with the same moments
// (as far as the machine's timing repeats).
func chaosRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(chaosSeedEnv); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "%s must be an unsigned integer", chaosSeedEnv)
	}
	t.Logf("chaos: seed %d (replay: %s=%d make chaos)", seed, chaosSeedEnv, seed)
	return rand.New(rand.NewPCG(seed, seed)) //nolint:gosec // replayable moments need a seeded, not a cryptographic, source
}

// chaosEnv turns the per-tenant limits off: the scenarios measure what
// faults do to accepted tasks, and a 429 would be counted as a rejection.
var chaosEnv = []string{"RESCUE_AFTER=2s", "WORKERS=20", "SHUTDOWN_TIMEOUT=5s", "LOG_LEVEL=info", "RATE_LIMIT=0", "MAX_UNFINISHED_TASKS=0"}

// TestChaosKillRepeatedly: SIGKILL of the server at random moments of
// enqueue and work, five times, restarting each time.
func TestChaosKillRepeatedly(t *testing.T) { //nolint:paralleltest // scenarios run one at a time: each loads the machine and measures recovery
	url := pgtest.NewDBURL(t)
	pool := testPool(t, url)
	auditResults(t, pool)
	l := newLedger()
	c := &cluster{}
	srv := startServer(t, url, chaosEnv...)
	c.set(srv)
	stop := l.load(t.Context(), 8, c.pick)

	random := chaosRand(t)
	var lastKill time.Time
	for range 5 {
		time.Sleep(time.Duration(300+random.IntN(1500)) * time.Millisecond)
		require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
		<-srv.exited
		lastKill = time.Now()
		c.set()
		srv = startServer(t, url, chaosEnv...)
		c.set(srv)
	}
	time.Sleep(time.Second)
	stop()
	l.resolve(t, srv.base)
	l.check(t, pool, "kill -9 x5 during enqueue and work", lastKill)
}

// TestChaosReplicas: two and three servers share a database; one is killed
// and the survivors finish its tasks. Killing the leader shows periodic
// maintenance moving to a survivor: a scheduled task still runs, and the
// killed leader's running tasks are rescued.
func TestChaosReplicas(t *testing.T) { //nolint:paralleltest // scenarios run one at a time: each loads the machine and measures recovery
	for _, n := range []int{2, 3} { //nolint:paralleltest // as above
		t.Run(fmt.Sprintf("%dReplicasLeaderKilled", n), func(t *testing.T) {
			url := pgtest.NewDBURL(t)
			pool := testPool(t, url)
			auditResults(t, pool)
			l := newLedger()
			servers := make([]*serverProcess, n)
			// A short retention, so that the cleaner's work shows too.
			env := append(slices.Clone(chaosEnv), "COMPLETED_RETENTION=2s")
			for i := range servers {
				servers[i] = startServer(t, url, env...)
			}
			c := &cluster{}
			c.set(servers...)
			stop := l.load(t.Context(), 8, c.pick)

			leader := waitForLeader(t, pool, servers)
			time.Sleep(1500 * time.Millisecond)
			// A task scheduled for after the kill needs the new leader's
			// scheduler to become available.
			runAt := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
			l.submit(t.Context(), servers[(leader+1)%n].base, `{"kind": "noop", "run_at": "`+runAt+`"}`)

			require.NoError(t, servers[leader].cmd.Process.Signal(syscall.SIGKILL))
			<-servers[leader].exited
			killedAt := time.Now()
			survivors := slices.Delete(slices.Clone(servers), leader, leader+1)
			c.set(survivors...)
			time.Sleep(time.Second)
			stop()
			l.resolve(t, survivors[0].base)

			newLeader := waitForLeader(t, pool, survivors)
			t.Logf("leader %d killed; server %d leads now", servers[leader].cmd.Process.Pid, survivors[newLeader].cmd.Process.Pid)
			var rescued int
			s := l.check(t, pool, fmt.Sprintf("%d replicas, leader killed", n), killedAt)
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM tasks WHERE errors::text LIKE '%Stuck job rescued%'`).Scan(&rescued))
			t.Logf("%s; %d tasks rescued", s, rescued)

			// The cleaner, also the leader's, deletes finished job rows;
			// the tasks stay, with their results.
			require.Eventually(t, func() bool {
				var jobRows int
				require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM river_job WHERE state = 'completed'").Scan(&jobRows))
				return jobRows == 0
			}, 2*time.Minute, time.Second, "the new leader's cleaner never removed completed jobs")
			var kept int
			require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM tasks WHERE state = 'completed' AND result IS NOT NULL").Scan(&kept))
			require.Equal(t, s.completed, kept)
		})
	}
}

var clientIDPattern = regexp.MustCompile(`"river_client_id":"([^"]+)"`)

// waitForLeader returns the index of the server whose River client leads.
func waitForLeader(t *testing.T, pool *pgxpool.Pool, servers []*serverProcess) int {
	t.Helper()
	var leader int
	require.Eventually(t, func() bool {
		var id string
		if err := pool.QueryRow(t.Context(), "SELECT leader_id FROM river_leader").Scan(&id); err != nil {
			return false
		}
		for i, s := range servers {
			if m := clientIDPattern.FindStringSubmatch(s.output.String()); m != nil && m[1] == id {
				leader = i
				return true
			}
		}
		return false
	}, 60*time.Second, 100*time.Millisecond, "no live server leads")
	return leader
}

// TestChaosGracefulDeploy: SIGTERM during load. In-flight requests finish,
// running tasks finish or go back to River, a new process takes over.
func TestChaosGracefulDeploy(t *testing.T) { //nolint:paralleltest // scenarios run one at a time: each loads the machine and measures recovery
	url := pgtest.NewDBURL(t)
	pool := testPool(t, url)
	auditResults(t, pool)
	l := newLedger()
	c := &cluster{}
	old := startServer(t, url, chaosEnv...)
	c.set(old)
	stop := l.load(t.Context(), 8, c.pick)

	for range 3 {
		time.Sleep(1500 * time.Millisecond)
		// The new version starts first, then the old one is told to stop,
		// as a rolling deploy does.
		next := startServer(t, url, chaosEnv...)
		c.set(next)
		// A load balancer stops routing to the old process before it gets
		// SIGTERM (Kubernetes: endpoint removal, then preStop); requests
		// already sent to it must still finish.
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, old.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-old.exited:
			require.NoError(t, old.err, "graceful stop exits 0")
		case <-time.After(30 * time.Second):
			t.Fatal("server did not stop after SIGTERM")
		}
		old = next
	}
	deployedAt := time.Now()
	time.Sleep(time.Second)
	stop()
	l.mu.Lock()
	unanswered := len(l.unknown)
	l.mu.Unlock()
	require.Zero(t, unanswered, "a graceful stop finishes the requests in flight: %v", l.unknown)
	l.check(t, pool, "graceful deploy x3 (SIGTERM)", deployedAt)
}

// TestChaosPostgresRestart: Postgres stops (fast shutdown) and starts again
// under load. The server keeps running, answers 503 problem+json quickly
// while the database is down, and recovers by itself.
func TestChaosPostgresRestart(t *testing.T) { //nolint:paralleltest // scenarios run one at a time: each loads the machine and measures recovery
	pg := startCluster(t)
	url := pg.createDB(t)
	env := append(slices.Clone(chaosEnv), "AUTO_MIGRATE=true", "REQUEST_TIMEOUT=2s")
	srv := startServer(t, url, env...)
	pool := testPool(t, url)
	auditResults(t, pool)
	l := newLedger()
	c := &cluster{}
	c.set(srv)
	stop := l.load(t.Context(), 8, c.pick)
	time.Sleep(1500 * time.Millisecond)

	pg.ctl(t, "stop", "-m", "fast")
	downAt := time.Now()
	// While Postgres is down: 503 problem+json, never a hang past the
	// request deadline.
	var slowest time.Duration
	for range 5 {
		start := time.Now()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.base+"/v1/tasks", strings.NewReader(`{"kind": "noop"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
		slowest = max(slowest, time.Since(start))
	}
	require.Less(t, slowest, 5*time.Second)
	time.Sleep(2 * time.Second)
	pg.ctl(t, "start", "-w", "-l", filepath.Join(pg.dir, "log"))
	upAt := time.Now()

	// It recovers by itself: new requests are accepted again.
	require.Eventually(t, func() bool {
		_, status, _ := postTask(t.Context(), srv.base, `{"kind": "noop"}`)
		return status == http.StatusAccepted
	}, 60*time.Second, 100*time.Millisecond)
	t.Logf("Postgres down %s; accepting again %s after it came back", upAt.Sub(downAt).Round(time.Millisecond), time.Since(upAt).Round(time.Millisecond))
	time.Sleep(time.Second)
	stop()
	l.resolve(t, srv.base)
	require.NoError(t, pool.Ping(t.Context()))
	l.check(t, pool, "Postgres restarted under load", upAt)
	select {
	case <-srv.exited:
		t.Fatal("server exited during the outage")
	default:
	}
}

// TestChaosOverload: a pool of four connections and a short request timeout
// under load; one connection is held by a lock. Requests fail fast with 503
// and nothing is half-written.
func TestChaosOverload(t *testing.T) { //nolint:paralleltest // scenarios run one at a time: each loads the machine and measures recovery
	url := pgtest.NewDBURL(t)
	pool := testPool(t, url)
	auditResults(t, pool)
	env := append(slices.Clone(chaosEnv), "DB_MAX_CONNS=4", "REQUEST_TIMEOUT=300ms")
	srv := startServer(t, url, env...)
	l := newLedger()
	c := &cluster{}
	c.set(srv)
	stop := l.load(t.Context(), 32, c.pick)
	time.Sleep(time.Second)

	// Hold the tasks table for a while: every insert waits on it.
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "LOCK TABLE task_records IN EXCLUSIVE MODE")
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	require.NoError(t, tx.Rollback(t.Context()))
	releasedAt := time.Now()
	time.Sleep(time.Second)
	stop()
	l.resolve(t, srv.base)

	l.mu.Lock()
	unavailable := 0
	for _, status := range l.rejected {
		require.Equal(t, http.StatusServiceUnavailable, status)
		unavailable++
	}
	l.mu.Unlock()
	require.Positive(t, unavailable, "an overloaded server answers 503")
	l.check(t, pool, "pool exhausted, statements blocked", releasedAt)
}

// pgCluster is a Postgres of the test's own, which it may stop and start.
type pgCluster struct {
	bin, dir, port string
	asPostgres     bool
}

func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	require.NotEmpty(t, bins, "PostgreSQL server binaries not found")
	slices.Sort(bins)
	pg := &pgCluster{bin: filepath.Dir(bins[len(bins)-1]), port: strings.Split(freeAddr(t), ":")[1]}
	dir, err := os.MkdirTemp("", "handoff-chaos-pg-")
	require.NoError(t, err)
	pg.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// Postgres refuses to run as root.
		pg.asPostgres = true
		u, err := user.Lookup("postgres")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
	}
	pg.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "--no-sync")
	conf := fmt.Sprintf("port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\nmax_connections = 200\n", pg.port, dir)
	f, err := os.OpenFile(filepath.Join(dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(conf)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	pg.ctl(t, "start", "-w", "-l", filepath.Join(dir, "log"))
	t.Cleanup(func() {
		cmd := pg.command("pg_ctl", "stop", "-D", filepath.Join(dir, "data"), "-m", "immediate")
		_ = cmd.Run()
	})
	return pg
}

func (pg *pgCluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(pg.bin, name)
	if pg.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...) //nolint:gosec,noctx // test-controlled arguments; stopped by PID
	}
	return exec.Command(path, args...) //nolint:noctx // stopped by pg_ctl, never by context
}

func (pg *pgCluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := pg.command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s: %s", name, out)
}

func (pg *pgCluster) ctl(t *testing.T, args ...string) {
	t.Helper()
	pg.run(t, "pg_ctl", append([]string{args[0], "-D", filepath.Join(pg.dir, "data")}, args[1:]...)...)
}

func (pg *pgCluster) createDB(t *testing.T) string {
	t.Helper()
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", pg.port)
	pool := testPool(t, base)
	_, err := pool.Exec(t.Context(), "CREATE DATABASE handoff")
	if err != nil && !errors.Is(err, context.Canceled) {
		require.NoError(t, err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/handoff?sslmode=disable", pg.port)
}

// freeAddr returns an address with a port free a moment ago, for a program
// that cannot report the port it chose (Postgres).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
