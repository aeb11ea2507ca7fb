package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The enqueue figures load the server with wrk, a C load generator, as
// their baseline is loaded by pgbench: a client in Go (net/http, a
// goroutine per caller) spent ~60 µs of the machine's two cores per
// request, a quarter of what the server and Postgres spend, which pgbench
// does not pay (docs/performance.md, "The enqueue client").

// wrkScript posts the body in a file and, at the end, prints one line the
// bench parses. response() is defined only for batch bodies: it counts the
// answers that did not accept every task, which HTTP statuses cannot show.
// It counts with plain finds: gsub, which copies the ~340 KB answer to
// 1,000 tasks, cost wrk 0.17 of a core at 60 answers a second, taken from
// the server and Postgres in the bulk figure only (0.05 now).
const wrkScript = `
local f = assert(io.open(%q, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
want = %d
short = 0
local find = string.find
if want > 0 then
  response = function(status, headers, body)
    local n, at = 0, 1
    while true do
      local _, e = find(body, '"status":202,', at, true)
      if not e then break end
      n, at = n + 1, e + 1
    end
    if status ~= 200 or n ~= want then short = short + 1 end
  end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local e = summary.errors
  local s = 0
  for _, t in ipairs(threads) do s = s + t:get("short") end
  io.write(string.format("wrk-result requests=%%d duration_us=%%d socket=%%d status=%%d short=%%d p50_us=%%d p99_us=%%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status, s,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkResult is what one or more wrk windows measured.
type wrkResult struct {
	requests int
	elapsed  time.Duration
	// p50s and p99s are each window's: wrk reports percentiles, not
	// samples, so windows cannot be pooled; p50 and p99 take the worst
	// window's, an upper bound of the pooled figure.
	p50s, p99s []time.Duration
}

func (r wrkResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r wrkResult) p50() time.Duration { return slices.Max(append([]time.Duration{0}, r.p50s...)) }
func (r wrkResult) p99() time.Duration { return slices.Max(append([]time.Duration{0}, r.p99s...)) }

func (r *wrkResult) add(o wrkResult) {
	r.requests += o.requests
	r.elapsed += o.elapsed
	r.p50s = append(r.p50s, o.p50s...)
	r.p99s = append(r.p99s, o.p99s...)
}

// wrk runs the wrk binary with scripts written to a directory, against a
// server whose database pool holds.
type wrk struct {
	bin  string
	dir  string
	pool *pgxpool.Pool
	// tasks is the settled count of task_records after the last post, which
	// is the next post's count before; -1 when unknown (before the first,
	// and after anything else wrote tasks).
	tasks int
}

func newWrk(dir string, pool *pgxpool.Pool) (*wrk, error) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errors.New("wrk not found on PATH: install it (Debian: apt-get install wrk; make bench does)")
	}
	return &wrk{bin: bin, dir: dir, pool: pool, tasks: -1}, nil
}

var wrkLine = regexp.MustCompile(`wrk-result requests=(\d+) duration_us=(\d+) socket=(\d+) status=(\d+) short=(\d+) p50_us=(\d+) p99_us=(\d+)`)

// post sends body to url from conns connections for d, back to back. perItem
// is the number of tasks in a batch body, 0 for a single create. Every
// request must be answered and accept all its tasks, and the tasks table
// must have grown by what was answered (give or take the requests in flight
// when wrk stopped); otherwise post fails. meter, if not nil, starts a CPU
// window around wrk alone (not the counts), whose use post returns.
func (w *wrk) post(ctx context.Context, url string, body []byte, perItem, conns int, d time.Duration, meter func() (*cpuMeter, error)) (wrkResult, cpuTimes, error) {
	bodyFile, err := os.CreateTemp(w.dir, "body-*.json")
	if err != nil {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("write wrk body: %w", err)
	}
	defer os.Remove(bodyFile.Name())
	if _, err := bodyFile.Write(body); err != nil {
		return wrkResult{}, cpuTimes{}, errors.Join(fmt.Errorf("write wrk body: %w", err), bodyFile.Close())
	}
	if err := bodyFile.Close(); err != nil {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("write wrk body: %w", err)
	}
	script := filepath.Join(w.dir, "post.lua")
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, bodyFile.Name(), perItem), 0o600); err != nil {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("write wrk script: %w", err)
	}
	before := w.tasks
	if before < 0 {
		if before, err = settledCount(ctx, w.pool); err != nil {
			return wrkResult{}, cpuTimes{}, err
		}
	}
	w.tasks = -1
	var window *cpuMeter
	if meter != nil {
		if window, err = meter(); err != nil {
			return wrkResult{}, cpuTimes{}, err
		}
	}
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, w.bin, "--threads="+strconv.Itoa(min(conns, 2)), //nolint:gosec // our own arguments
		"--connections="+strconv.Itoa(conns), "--duration="+strconv.Itoa(secs)+"s", "--timeout=10s",
		"--script="+script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	var used cpuTimes
	if window != nil {
		if err := window.stop(); err != nil {
			return wrkResult{}, cpuTimes{}, err
		}
		used = window.used
	}
	m := wrkLine.FindSubmatch(out)
	if m == nil {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("wrk printed no result:\n%s", out)
	}
	var v [7]int
	for i := range v {
		if v[i], err = strconv.Atoi(string(m[i+1])); err != nil {
			return wrkResult{}, cpuTimes{}, fmt.Errorf("parse wrk result %q: %w", m[0], err)
		}
	}
	if v[2] != 0 || v[3] != 0 || v[4] != 0 {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("wrk: %d socket errors, %d answers with status ≥ 400, %d batches not wholly accepted:\n%s", v[2], v[3], v[4], out)
	}
	// Requests in flight when wrk stopped may still commit: the count
	// settles first, so that none of them lands in the next window's.
	after, err := settledCount(ctx, w.pool)
	if err != nil {
		return wrkResult{}, cpuTimes{}, err
	}
	w.tasks = after
	size := max(perItem, 1)
	if created := after - before; created < v[0]*size || created > (v[0]+conns)*size {
		return wrkResult{}, cpuTimes{}, fmt.Errorf("wrk: %d requests of %d tasks answered, but %d tasks were created", v[0], size, created)
	}
	return wrkResult{
		requests: v[0] * size,
		elapsed:  time.Duration(v[1]) * time.Microsecond,
		p50s:     []time.Duration{time.Duration(v[5]) * time.Microsecond},
		p99s:     []time.Duration{time.Duration(v[6]) * time.Microsecond},
	}, used, nil
}

// settledCount counts the tasks once two counts 100 ms apart agree (at most
// for 5 s).
func settledCount(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	prev := -1
	for range 50 {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM task_records`).Scan(&n); err != nil {
			return 0, fmt.Errorf("count tasks: %w", err)
		}
		if n == prev {
			return n, nil
		}
		prev = n
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("the task count did not settle in 5 s (last %d)", prev)
}
