package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

// buildServer builds this command once per test binary, for tests that
// need a real process to kill.
var buildServer = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "handoff-test-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

// serverProcess is a running server subprocess.
type serverProcess struct {
	cmd    *exec.Cmd
	base   string
	output *syncBuffer
	exited chan struct{}
	err    error
}

func startServer(t *testing.T, databaseURL string, extraEnv ...string) *serverProcess {
	t.Helper()
	bin, err := buildServer()
	require.NoError(t, err)
	p := &serverProcess{output: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve") //nolint:noctx // the test stops it by PID, never by context
	p.cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL, "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn")
	p.cmd.Env = append(p.cmd.Env, extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server %d output:\n%s", p.cmd.Process.Pid, p.output.String())
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

// TestCrashLosesNothing kills a serving process with SIGKILL while tasks are
// being accepted and worked, then starts another: every task that got a 202
// completes, and each result is recorded exactly once.
func TestCrashLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts server processes; skipped with -short")
	}
	ctx := t.Context()

	url := pgtest.NewDBURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	// An audit trail of every write of a result: exactly one per task.
	_, err = pool.Exec(ctx, `
		CREATE TABLE result_audit (task_id bigint NOT NULL, result jsonb NOT NULL);
		CREATE FUNCTION audit_result() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO result_audit VALUES (NEW.id, NEW.result); RETURN NULL; END $$;
		CREATE TRIGGER audit_result AFTER UPDATE ON task_records FOR EACH ROW
			WHEN (NEW.result IS NOT NULL AND OLD.result IS DISTINCT FROM NEW.result)
			EXECUTE FUNCTION audit_result();`)
	require.NoError(t, err)

	env := []string{"RESCUE_AFTER=2s", "WORKERS=20"}
	first := startServer(t, url, env...)

	// Clients enqueue a mix of short sleeps and noops until the crash; only
	// the 202s count as accepted.
	var (
		mu       sync.Mutex
		accepted []int64
		wg       sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for c := range 8 {
		wg.Go(func() {
			for i := 0; loadCtx.Err() == nil; i++ {
				body := `{"kind": "noop"}`
				if (c+i)%3 == 0 {
					body = `{"kind": "sleep", "args": {"seconds": 0.5}}`
				}
				created, status, err := postTask(loadCtx, first.base, body)
				if err != nil {
					if status == 0 {
						return // the server is gone
					}
					continue
				}
				mu.Lock()
				accepted = append(accepted, created.ID)
				mu.Unlock()
			}
		})
	}

	// Kill once tasks are both running and finished, mid-stream.
	require.Eventually(t, func() bool {
		var running, completed int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'completed') FROM tasks").Scan(&running, &completed))
		return running > 0 && completed > 50
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited
	stopLoad()
	wg.Wait()

	var running int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE state = 'running'").Scan(&running))
	t.Logf("killed with %d tasks accepted, %d running", len(accepted), running)
	require.NotEmpty(t, accepted)

	second := startServer(t, url, env...)
	require.Eventually(t, func() bool {
		var unfinished int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE state <> 'completed'").Scan(&unfinished))
		return unfinished == 0
	}, 3*time.Minute, 200*time.Millisecond, "tasks left unfinished after restart")

	var tasks, missing, badResults int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM tasks),
		       (SELECT count(*) FROM unnest($1::bigint[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = a.id AND state = 'completed' AND result IS NOT NULL)),
		       (SELECT count(*) FROM (SELECT task_id FROM result_audit GROUP BY task_id HAVING count(*) <> 1) AS twice)`,
		accepted).Scan(&tasks, &missing, &badResults))
	require.Zero(t, missing, "accepted tasks not completed with a result")
	require.Zero(t, badResults, "tasks whose result was recorded more than once")
	// A rescued task ran more than once; its one recorded result must be
	// the attempt that completed it, not an earlier one.
	var mismatched int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM tasks WHERE kind = 'sleep' AND (result ->> 'attempt')::int <> attempt").Scan(&mismatched))
	require.Zero(t, mismatched, "sleep results that are not the completing attempt's")
	var audited int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(DISTINCT task_id) FROM result_audit").Scan(&audited))
	require.Equal(t, tasks, audited, "every task has its one recorded result")
	require.GreaterOrEqual(t, tasks, len(accepted), "a 202 may be lost on the wire, never in the database")

	// SIGTERM stops the survivor gracefully, with exit status 0.
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-second.exited:
		require.NoError(t, second.err)
	case <-time.After(45 * time.Second):
		t.Fatal("server did not stop after SIGTERM")
	}
}

// TestSecondSignalExitsAtOnce: the first SIGINT starts a graceful stop that
// waits for running tasks; a SIGTERM then leaves it going (make passes on
// the SIGTERM its process group got, so `make run` saw one kill twice), and
// a second SIGINT ends the process at once. The server runs as a shell runs
// a background job, with SIGINT ignored at exec, where a second SIGINT used
// to be ignored.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a server process; skipped with -short")
	}
	bin, err := buildServer()
	require.NoError(t, err)
	url := pgtest.NewDBURL(t)

	p := &serverProcess{output: &syncBuffer{}, exited: make(chan struct{})}
	// trap '' INT: SIGINT ignored, inherited through exec, as for `cmd &`.
	p.cmd = exec.Command("sh", "-c", `trap '' INT; exec "$0" serve`, bin) //nolint:noctx // the test stops it by PID, never by context
	p.cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=2m")
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server output:\n%s", p.output.String())
		}
	})
	alive := func() bool {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	p.base = waitServing(t, p.output, alive)

	// A long task keeps the graceful stop waiting.
	created, status, err := postTask(t.Context(), p.base, `{"kind": "sleep", "args": {"seconds": 600}}`)
	require.NoError(t, err)
	require.Equal(t, 202, status)
	require.Eventually(t, func() bool { return getTask(t, p.base, created.ID).State == "running" }, 30*time.Second, 20*time.Millisecond)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	require.Eventually(t, func() bool { return strings.Contains(p.output.String(), "shutting down") }, 30*time.Second, 20*time.Millisecond, "the first SIGINT starts the graceful stop")
	require.True(t, alive(), "the graceful stop waits for the running task")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(p.output.String(), "already stopping gracefully") }, 30*time.Second, 20*time.Millisecond, "a SIGTERM during the graceful stop is answered")
	require.True(t, alive(), "a SIGTERM does not cut the graceful stop short")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the second SIGINT did not end the process")
	}
	var exitErr *exec.ExitError
	require.ErrorAs(t, p.err, &exitErr)
	require.Equal(t, 1, exitErr.ExitCode())
	require.Contains(t, p.output.String(), "second interrupt, exiting at once")
}
