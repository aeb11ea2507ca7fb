// Package flask_test runs the Flask example (app.py) end to end against a
// real Handoff process and a real Postgres: the seed's card, rebuilt on
// Handoff, survives a SIGKILL of Handoff mid-task.
package flask_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/handoff/handoff/internal/pgtest"
)

// python is Debian's interpreter, which has python3-flask and
// python3-psycopg2 (.ci/run installs them); a python3 earlier on PATH (a
// pyenv shim) may not.
const python = "/usr/bin/python3"

// syncBuffer collects a process's output for the test to read while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a started subprocess and its output.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{}
}

func start(t *testing.T, name string, env []string, args ...string) *process {
	t.Helper()
	p := &process{output: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...) //nolint:gosec,noctx // the test's own binaries; stopped by PID
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output.String())
		}
	})
	return p
}

// waitFor finds pattern's first group in p's output.
func (p *process) waitFor(t *testing.T, pattern *regexp.Regexp) string {
	t.Helper()
	var found string
	require.Eventually(t, func() bool {
		if m := pattern.FindStringSubmatch(p.output.String()); m != nil {
			found = m[1]
			return true
		}
		select {
		case <-p.exited:
			require.FailNow(t, "process exited", p.output.String())
		default:
		}
		return false
	}, 60*time.Second, 20*time.Millisecond, "no %s in output", pattern)
	return found
}

var (
	handoffServing = regexp.MustCompile(`handoff: serving on (http://\S+)\n`)
	flaskServing   = regexp.MustCompile(`Running on (http://127\.0\.0\.1:\d+)`)
)

func buildHandoff(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "handoff")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../../cmd/server").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func startHandoff(t *testing.T, bin string, env []string) (*process, string) {
	t.Helper()
	p := start(t, "handoff", env, bin, "serve")
	base := p.waitFor(t, handoffServing)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz") //nolint:noctx // a probe with the default client's own bounds
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 20*time.Millisecond)
	return p, base
}

// TestFlaskExample: /process answers 202 at once with the task's URL; the
// long task runs in the app's /long-task, called by Handoff; Handoff is
// killed with SIGKILL while the long task runs; a new Handoff runs it again
// and the callback records the result on the domain row exactly once.
func TestFlaskExample(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Handoff and Flask processes; skipped with -short")
	}
	if err := exec.CommandContext(t.Context(), python, "-c", "import flask, psycopg2").Run(); err != nil {
		t.Fatalf("%s cannot import flask and psycopg2 (%v): apt-get install python3-flask python3-psycopg2 (.ci/run does)", python, err)
	}
	ctx := t.Context()
	url := pgtest.NewDBURL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	bin := buildHandoff(t)
	handoffEnv := []string{
		"DATABASE_URL=" + url, "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=info",
		"WEBHOOK_SECRET=" + secret,
		// The app is on loopback, which the http kind refuses unless listed.
		"HTTP_TASK_ALLOW=127.0.0.1/32",
		// A killed process's task runs again after this (and after the
		// http task's own 10 s timeout, which holds River's rescuer off).
		"RESCUE_AFTER=1s",
	}
	first, handoffURL := startHandoff(t, bin, handoffEnv)

	app := start(t, "flask", []string{
		"DATABASE_URL=" + url, "WEBHOOK_SECRET=" + secret, "HANDOFF_URL=" + handoffURL,
		"PORT=0", "LONG_TASK_SECONDS=2", "PYTHONUNBUFFERED=1",
	}, python, "app.py")
	appURL := app.waitFor(t, flaskServing)

	// An audit of every write of a report's result: exactly one.
	_, err = pool.Exec(ctx, `
		CREATE TABLE result_audit (report_id bigint NOT NULL);
		CREATE FUNCTION audit_report() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO result_audit VALUES (NEW.id); RETURN NULL; END $$;
		CREATE TRIGGER audit_report AFTER UPDATE ON reports FOR EACH ROW
			WHEN (NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL)
			EXECUTE FUNCTION audit_report();`)
	require.NoError(t, err)

	// The card's route, ten times: each answers 202 at once with its task.
	type acceptedReport struct {
		ReportID int64  `json:"report_id"`
		TaskID   int64  `json:"task_id"`
		TaskURL  string `json:"task_url"`
	}
	const reports = 10
	var (
		accepted  []acceptedReport
		durations []time.Duration
	)
	for range reports {
		began := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, appURL+"/process", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		durations = append(durations, time.Since(began))
		var a acceptedReport
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
		_ = resp.Body.Close()
		require.Equal(t, fmt.Sprintf("%s/v1/tasks/%d", handoffURL, a.TaskID), a.TaskURL)
		require.Equal(t, a.TaskURL, resp.Header.Get("Location"))
		accepted = append(accepted, a)
	}
	slices.Sort(durations)
	t.Logf("flask: /process answered 202: p50 %s, max %s over %d requests (the first opens Flask's lazy parts)",
		durations[len(durations)/2].Round(100*time.Microsecond), durations[len(durations)-1].Round(100*time.Microsecond), reports)

	// Kill Handoff while the long task runs in the app.
	require.Eventually(t, func() bool {
		var runs int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM long_task_runs").Scan(&runs))
		return runs > 0
	}, 60*time.Second, 10*time.Millisecond, "Handoff never called /long-task")
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited
	t.Log("flask: Handoff killed with SIGKILL while the long task ran")

	_, restartedURL := startHandoff(t, bin, handoffEnv)
	require.Eventually(t, func() bool {
		var finished int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM reports WHERE finished_at IS NOT NULL").Scan(&finished))
		return finished == reports
	}, 3*time.Minute, 50*time.Millisecond, "reports never got their results")

	for _, a := range accepted {
		var (
			status    string
			result    []byte
			taskState string
		)
		require.NoError(t, pool.QueryRow(ctx, "SELECT status, result FROM reports WHERE id = $1", a.ReportID).Scan(&status, &result))
		require.Equal(t, "completed", status)
		require.JSONEq(t, fmt.Sprintf(`{"report_id": %d, "pages": 42}`, a.ReportID), string(result))
		require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM tasks WHERE id = $1", a.TaskID).Scan(&taskState))
		require.Equal(t, "completed", taskState)
	}
	var audited, runs, rerun, mixedIDs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM result_audit), (SELECT count(*) FROM long_task_runs),
		(SELECT count(*) FROM (SELECT report_id FROM long_task_runs GROUP BY report_id HAVING count(*) > 1) AS again),
		(SELECT count(*) FROM (SELECT report_id FROM long_task_runs GROUP BY report_id HAVING count(DISTINCT webhook_id) > 1) AS mixed)`).Scan(&audited, &runs, &rerun, &mixedIDs))
	require.Equal(t, reports, audited, "each domain row's result is written exactly once")
	require.Positive(t, rerun, "a long task cut off by the kill ran again")
	require.Zero(t, mixedIDs, "every attempt of a task carries the same webhook-id")
	t.Logf("flask: %d long tasks ran %d times (%d again after the kill); each report shows its result once", reports, runs, rerun)

	// Any key holder can make an http task to the app whose body looks like
	// Handoff's callback on a report's task, signed with the same secret;
	// the app refuses it (403: the task is discarded, not retried), since
	// only Handoff's callbacks carry webhook-id callback_<task>_<callback>.
	_, err = pool.Exec(ctx, `UPDATE reports SET status = 'pending', result = NULL, finished_at = NULL WHERE id = $1`, accepted[0].ReportID)
	require.NoError(t, err)
	forged, err := json.Marshal(map[string]any{"kind": "http", "args": map[string]any{
		"url": appURL + "/callback", "method": "POST", "headers": map[string]string{"Content-Type": "application/json"},
		"body": fmt.Sprintf(`{"id":%d,"state":"completed","result":{"status":200,"body":"{\"forged\":true}"}}`, accepted[0].TaskID),
	}})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, restartedURL+"/v1/tasks", bytes.NewReader(forged))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var forgedTask struct {
		ID int64 `json:"id"`
	}
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&forgedTask))
	_ = resp.Body.Close()
	var forgedState string
	require.Eventually(t, func() bool {
		require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM tasks WHERE id = $1", forgedTask.ID).Scan(&forgedState))
		return forgedState == "discarded"
	}, time.Minute, 50*time.Millisecond, "the forged callback was not refused")
	var finishedAt *time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT finished_at FROM reports WHERE id = $1", accepted[0].ReportID).Scan(&finishedAt))
	require.Nil(t, finishedAt, "the forged callback changed nothing")
}
