package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// noopBody is the create request every load sends.
const noopBody = `{"kind":"noop","args":{}}`

// newHTTPClient returns a keep-alive client that holds one idle connection
// per concurrent caller, so a closed loop of n callers never dials again.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// createdTask is the part of a task object the bench reads: from a 202's
// body, and from list pages.
type createdTask struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"`
	State string `json:"state"`
}

// postTask creates one noop task over HTTP and returns its ID.
func postTask(ctx context.Context, client *http.Client, base string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tasks", bytes.NewReader([]byte(noopBody)))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST /v1/tasks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read POST /v1/tasks response: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("POST /v1/tasks: status %d: %s", resp.StatusCode, body)
	}
	var t createdTask
	if err := json.Unmarshal(body, &t); err != nil {
		return 0, fmt.Errorf("decode POST /v1/tasks response: %w", err)
	}
	return t.ID, nil
}

// getTaskState reads a task's state with GET /v1/tasks/{id}.
func getTaskState(ctx context.Context, client *http.Client, base string, id int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/tasks/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET task: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read GET task response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET task %d: status %d: %s", id, resp.StatusCode, body)
	}
	var t createdTask
	if err := json.Unmarshal(body, &t); err != nil {
		return "", fmt.Errorf("decode GET task response: %w", err)
	}
	return t.State, nil
}

// loadResult is what a closed loop measured.
type loadResult struct {
	ops     int
	elapsed time.Duration
	lat     latencies
}

func (r loadResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// add accumulates another window of the same load.
func (r *loadResult) add(o loadResult) {
	r.ops += o.ops
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
}

// closedLoop runs op from workers goroutines back to back for d and counts
// the operations that finished within d. The first error stops the loop.
func closedLoop(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context) error) (loadResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      latencies
		firstErr error
	)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			var mine latencies
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					break
				}
				if end := time.Now(); !end.After(deadline) {
					mine = append(mine, end.Sub(t0))
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return loadResult{ops: len(all), elapsed: d, lat: all}, firstErr
}

// openLoop offers op at a steady rate for d, whatever the answers' latency:
// a slow answer does not slow the offered load, as with real web traffic.
// It waits for every started op before returning.
func openLoop(ctx context.Context, rate float64, d time.Duration, op func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	interval := time.Duration(float64(time.Second) / rate)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for i := 0; ; i++ {
		// Scheduled from the start, not from the previous tick, so that
		// timer lateness does not lower the rate.
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(at)):
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			if err := op(ctx, i); err != nil {
				mu.Lock()
				if firstErr == nil && !errors.Is(err, context.Canceled) {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		// Only the caller can have cancelled ctx by now.
		firstErr = ctx.Err()
	}
	return firstErr
}
