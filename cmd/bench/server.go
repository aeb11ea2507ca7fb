package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// stopGrace is how long a server has to exit after SIGTERM before it is
	// killed. Servers run with a short SHUTDOWN_TIMEOUT, so a healthy one
	// exits well within it.
	stopGrace = 15 * time.Second

	// serverShutdownTimeout is the SHUTDOWN_TIMEOUT servers run with: noop
	// tasks finish at once, and a short one bounds an interrupted run.
	serverShutdownTimeout = "5s"

	readyTimeout = 60 * time.Second
)

// buildServer compiles ./cmd/server into dir and returns the binary's path.
// A real binary, not `go run`, so the PID the bench signals and whose memory
// it reads is the server's own.
func buildServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "handoff-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %w\n%s", err, out.String())
	}
	return bin, nil
}

// servers starts server processes and stops every one it started.
type servers struct {
	bin    string
	logger *slog.Logger

	mu      sync.Mutex
	running map[int]*server
}

// server is one running server process.
type server struct {
	cmd    *exec.Cmd
	url    string
	stderr *tailBuffer
	exited chan struct{}
	// waitErr is cmd.Wait's error, set before exited is closed.
	waitErr error
}

// start runs the server against dbURL with env added to the environment
// and waits until /readyz answers 200.
func (s *servers) start(ctx context.Context, dbURL string, env map[string]string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(s.bin, "serve") //nolint:gosec,noctx // our own freshly built binary, stopped by PID (SIGTERM, then SIGKILL)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"HTTP_ADDR="+addr,
		"LOG_LEVEL=warn",
		"SHUTDOWN_TIMEOUT="+serverShutdownTimeout,
		// The per-tenant limits would cap what is measured; a run's env
		// may set them back.
		"RATE_LIMIT=0",
		"MAX_UNFINISHED_TASKS=0",
	)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	srv := &server{cmd: cmd, url: "http://" + addr, stderr: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	cmd.Stderr = srv.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	pid := cmd.Process.Pid
	s.mu.Lock()
	if s.running == nil {
		s.running = map[int]*server{}
	}
	s.running[pid] = srv
	s.mu.Unlock()
	go func() {
		srv.waitErr = cmd.Wait()
		close(srv.exited)
	}()

	if err := srv.waitReady(ctx); err != nil {
		return nil, errors.Join(err, s.stop(srv))
	}
	return srv, nil
}

func (srv *server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readiness request: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-srv.exited:
			return fmt.Errorf("server exited before it was ready (%w); its log:\n%s", srv.waitErr, srv.stderr)
		case <-ctx.Done():
			return fmt.Errorf("wait for server: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %s; its log:\n%s", readyTimeout, srv.stderr)
		}
	}
}

// stop ends srv by its PID: SIGTERM, then SIGKILL after stopGrace. A server
// that exits with an error, or logs errors, is reported.
// Stopping a server already stopped does nothing, so phases can both stop
// a server explicitly and defer its stop for their error paths.
func (s *servers) stop(srv *server) error {
	pid := srv.cmd.Process.Pid
	s.mu.Lock()
	_, running := s.running[pid]
	delete(s.running, pid)
	s.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-srv.exited:
		return fmt.Errorf("server (pid %d) exited early: %w; its log:\n%s", pid, srv.waitErr, srv.stderr)
	default:
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal server (pid %d): %w", pid, err)
	}
	select {
	case <-srv.exited:
	case <-time.After(stopGrace):
		s.logger.Warn("server did not stop after SIGTERM; killing it", slog.Int("pid", pid))
		if err := srv.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill server (pid %d): %w", pid, err)
		}
		<-srv.exited
		return fmt.Errorf("server (pid %d) ignored SIGTERM for %s and was killed", pid, stopGrace)
	}
	if srv.waitErr != nil {
		return fmt.Errorf("server (pid %d) exited with %w; its log:\n%s", pid, srv.waitErr, srv.stderr)
	}
	return nil
}

// stopAll stops every server still running: the exit path after an error
// or interrupt.
func (s *servers) stopAll() error {
	s.mu.Lock()
	all := make([]*server, 0, len(s.running))
	for _, srv := range s.running {
		all = append(all, srv)
	}
	s.mu.Unlock()
	var errs []error
	for _, srv := range all {
		if err := s.stop(srv); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// peakRSS returns the process's peak resident set size (VmHWM), in bytes.
func (srv *server) peakRSS() (int64, error) {
	pid := srv.cmd.Process.Pid
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read server memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read server memory: %w", err)
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; the server then fails to start and
// says so.
func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// tailBuffer keeps the last max bytes written to it: a server's log, for
// error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
