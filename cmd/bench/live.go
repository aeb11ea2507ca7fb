package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// liveIdleStreams is the number of idle event streams open during the
// second drain of the live phase.
const liveIdleStreams = 1000

// live measures what event streams cost and deliver (issue 12,
// docs/live.md): the drain of a noop backlog with 0 and with 1,000 idle
// streams open (streams on other tasks, which do not change), and the
// latency from a state change's commit to its event at a client, at the
// latency phase's rate with about 100 streams open.
func (b *bench) live(ctx context.Context) error {
	n := b.opts.liveN
	// Rounds alternate the order (none, idle, idle, none), so that a drift
	// of the machine's speed weighs on both sides alike.
	var quiet, idle drainResult
	var quietCPU, idleCPU cpuTimes
	for round := range b.opts.workRounds {
		order := []int{0, liveIdleStreams}
		if round%2 == 1 {
			order = []int{liveIdleStreams, 0}
		}
		for _, streams := range order {
			res, cpu, err := b.drainWithStreams(ctx, n, streams)
			if err != nil {
				return err
			}
			if streams == 0 {
				quiet.add(res)
				quietCPU = quietCPU.add(cpu)
			} else {
				idle.add(res)
				idleCPU = idleCPU.add(cpu)
			}
		}
	}
	r, v := ratio(idle.rate(), quiet.rate())
	b.report.check(row{
		figure:   fmt.Sprintf("drain with %d idle event streams, %s noop backlog", liveIdleStreams, countLabel(n)),
		value:    idle.String(),
		baseline: quiet.String() + " with none",
		ratio:    r,
		target:   "≥ 0.95",
	}, v >= 0.95)
	// CPU per task depends far less than wall time on what else the
	// machine runs: on a shared machine it is the steadier comparison.
	b.report.info(row{
		figure: fmt.Sprintf("CPU per task, drain with %d idle streams", liveIdleStreams),
		value:  idleCPU.perTask(idle.completed),
	})
	b.report.info(row{
		figure: "CPU per task, drain with no stream",
		value:  quietCPU.perTask(quiet.completed),
	})
	return b.eventLatency(ctx)
}

// drainWithStreams is drainServer with streams idle streams open on tasks
// scheduled far ahead. The server starts on an empty database, the streams
// open, and only then is the backlog loaded, so that setting up the streams
// does not overlap the drain; with or without streams, the procedure is the
// same.
//
// It also returns the CPU that Postgres (this database's backends), the
// server and the bench used from just before the load to the drain's end.
func (b *bench) drainWithStreams(ctx context.Context, n, streams int) (_ drainResult, _ cpuTimes, err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "live-drain", 0, benchPoolConns)
	if err != nil {
		return drainResult{}, cpuTimes{}, err
	}
	defer pool.Close()
	dbCfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return drainResult{}, cpuTimes{}, fmt.Errorf("parse database URL: %w", err)
	}
	db := dbCfg.Database
	srv, err := b.servers.start(ctx, dbURL, b.opts.tune.env())
	if err != nil {
		return drainResult{}, cpuTimes{}, err
	}
	defer func() { err = errors.Join(err, b.servers.stop(srv)) }()

	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	if streams > 0 {
		client := newHTTPClient(16)
		defer client.CloseIdleConnections()
		streamClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams}}
		defer streamClient.CloseIdleConnections()
		for range streams {
			id, err := postBody(ctx, client, srv.url, `{"kind":"noop","args":{},"run_at":"2030-01-01T00:00:00Z"}`)
			if err != nil {
				return drainResult{}, cpuTimes{}, err
			}
			if _, err := openEvents(streamCtx, streamClient, srv.url, id); err != nil {
				return drainResult{}, cpuTimes{}, err
			}
		}
	}
	cpu, err := startCPU(db, srv.cmd.Process.Pid)
	if err != nil {
		return drainResult{}, cpuTimes{}, err
	}
	if err := loadBacklog(ctx, pool, n); err != nil {
		return drainResult{}, cpuTimes{}, err
	}
	res, err := drain(ctx, pool, n, b.opts.drainLimit, func() error {
		if err := cpu.stop(); err != nil {
			return err
		}
		stopStreams()
		return b.servers.stop(srv)
	})
	if err != nil {
		return drainResult{}, cpuTimes{}, err
	}
	if _, err := verifyOnce(ctx, pool, n, res.partial); err != nil {
		return drainResult{}, cpuTimes{}, err
	}
	b.logger.Info("live drain", slog.Int("backlog", n), slog.Int("idle_streams", streams), slog.Float64("per_s", res.rate()),
		slog.String("cpu_per_task", cpu.used.perTask(res.completed)))
	return res, cpu.used, nil
}

// eventLatency offers 1 s sleep tasks at the latency phase's rate, each
// followed by its event stream (about 100 open at once), and measures, per
// event of a state change, arrival at the client minus the change's time in
// Postgres: started_at for running, finished_at for completed. Both are
// now() of the changing transaction, so the figure includes that
// transaction's run to commit.
func (b *bench) eventLatency(ctx context.Context) (err error) {
	dbURL, pool, err := b.dbs.newDB(ctx, "live-latency", 0, benchPoolConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	srv, err := b.servers.start(ctx, dbURL, b.opts.tune.env())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.servers.stop(srv)) }()

	client := newHTTPClient(64)
	defer client.CloseIdleConnections()
	streamClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer streamClient.CloseIdleConnections()
	var (
		mu      sync.Mutex
		lats    latencies
		maxOpen int
		open    int
	)
	offer := func(measure bool) func(ctx context.Context, i int) error {
		return func(ctx context.Context, _ int) error {
			id, err := postBody(ctx, client, srv.url, `{"kind":"sleep","args":{"seconds":1}}`)
			if err != nil {
				return err
			}
			mu.Lock()
			open++
			maxOpen = max(maxOpen, open)
			mu.Unlock()
			defer func() { mu.Lock(); open--; mu.Unlock() }()
			got, err := openEvents(ctx, streamClient, srv.url, id)
			if err != nil {
				return err
			}
			for ev := range got {
				if ev.err != nil {
					return ev.err
				}
				if !measure {
					continue
				}
				mu.Lock()
				lats = append(lats, ev.lat...)
				mu.Unlock()
			}
			return nil
		}
	}
	if err := openLoop(ctx, b.opts.rate, latencyWarmup, offer(false)); err != nil {
		return fmt.Errorf("live warm up: %w", err)
	}
	if err := openLoop(ctx, b.opts.rate, b.opts.latencyWindow, offer(true)); err != nil {
		return fmt.Errorf("live load: %w", err)
	}
	p50, p99 := lats.quantile(0.5), lats.quantile(0.99)
	b.report.info(row{
		figure: fmt.Sprintf("event latency p50, %.0f/s, ≤ %d open streams (%d events)", b.opts.rate, maxOpen, len(lats)),
		value:  ms(p50),
	})
	b.report.check(row{
		figure: fmt.Sprintf("event latency p99, %.0f/s, ≤ %d open streams", b.opts.rate, maxOpen),
		value:  ms(p99),
		target: "≤ 50 ms",
	}, p99 <= 50*time.Millisecond)
	return nil
}

// streamResult is what one stream delivered: the latencies of its state
// changes, or the error that ended it.
type streamResult struct {
	lat latencies
	err error
}

// liveTask is the part of a task event the bench reads.
type liveTask struct {
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// openEvents opens a task's event stream and reads it in the background
// until it ends: one result on the channel, then the channel closes.
func openEvents(ctx context.Context, client *http.Client, base string, id int64) (<-chan streamResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/tasks/%d/events", base, id), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req) //nolint:bodyclose // closed by the reader below
	if err != nil {
		return nil, fmt.Errorf("GET events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET events: status %d: %s", resp.StatusCode, body)
	}
	out := make(chan streamResult, 1)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		var res streamResult
		var lastState string
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 2<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			at := time.Now()
			var t liveTask
			if err := json.Unmarshal([]byte(data), &t); err != nil {
				res.err = fmt.Errorf("decode event: %w", err)
				break
			}
			// The first event is the state at connect, not a change.
			if lastState != "" && t.State != lastState {
				switch {
				case t.State == "running" && t.StartedAt != nil:
					res.lat = append(res.lat, at.Sub(*t.StartedAt))
				case t.State == "completed" && t.FinishedAt != nil:
					res.lat = append(res.lat, at.Sub(*t.FinishedAt))
				}
			}
			lastState = t.State
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil && res.err == nil {
			res.err = fmt.Errorf("read events: %w", err)
		}
		out <- res
	}()
	return out, nil
}

// postBody creates one task from body over HTTP and returns its ID.
func postBody(ctx context.Context, client *http.Client, base, body string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tasks", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST /v1/tasks: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read POST /v1/tasks response: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("POST /v1/tasks: status %d: %s", resp.StatusCode, raw)
	}
	var t createdTask
	if err := json.Unmarshal(raw, &t); err != nil {
		return 0, fmt.Errorf("decode POST /v1/tasks response: %w", err)
	}
	return t.ID, nil
}
