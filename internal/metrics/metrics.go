// Package metrics is Handoff's Prometheus instrumentation, served at
// GET /metrics: HTTP requests by route pattern, task outcomes by kind and
// queue (a River middleware sees every insert and every attempt), queue
// depth and the oldest available task's age sampled from SQL on an
// interval, the connection pool's statistics, and River's health.
// docs/operations.md lists every series and what it means.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/handoff/handoff/internal/store"
)

const namespace = "handoff"

// Opts are optional settings for New; nil means defaults.
type Opts struct {
	// ClientID is this process's River client ID, to tell whether it is
	// River's leader. Empty: the leader gauge reports only whether any
	// process leads.
	ClientID string

	// Queues are the queues this process works, with their MaxWorkers: they
	// get depth series even while empty, and River producer gauges.
	Queues map[string]int

	// Kinds are the task kinds this process works: each kind and queue
	// gets its task counters at 0 from the start, so that a rate or a
	// ratio of two counters (an alert's) has a series before the first
	// event of each.
	Kinds []string

	// Interval is how often Run samples queue depth from SQL. Default 15 s.
	Interval time.Duration
}

// Metrics holds Handoff's collectors and the registry that serves them.
type Metrics struct {
	registry *prometheus.Registry
	pool     *pgxpool.Pool
	logger   *slog.Logger
	opts     Opts

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	enqueued   *prometheus.CounterVec
	completed  *prometheus.CounterVec
	failed     *prometheus.CounterVec
	discarded  *prometheus.CounterVec
	cancelled  *prometheus.CounterVec
	snoozed    *prometheus.CounterVec
	work       *prometheus.HistogramVec
	pickupWait *prometheus.HistogramVec
	running    *prometheus.GaugeVec

	queueDepth      *prometheus.GaugeVec
	queueOldestAge  *prometheus.GaugeVec
	leader          *prometheus.GaugeVec
	sampleDuration  prometheus.Gauge
	sampleErrors    prometheus.Counter
	sampleTimestamp prometheus.Gauge

	sampleMu sync.Mutex // one sample at a time
}

// New returns the metrics of a process whose database is pool, registered
// on a registry of their own with Go's runtime and process collectors.
func New(pool *pgxpool.Pool, logger *slog.Logger, opts *Opts) *Metrics {
	if opts == nil {
		opts = &Opts{}
	}
	m := &Metrics{registry: prometheus.NewRegistry(), pool: pool, logger: logger, opts: *opts}
	if m.opts.Interval <= 0 {
		m.opts.Interval = 15 * time.Second
	}
	f := factory{m.registry}

	// Requests take milliseconds; a slow database is seconds.
	httpBuckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m.httpRequests = f.counter("http_requests_total", "HTTP requests answered, by route pattern, method and status code.", "route", "method", "code")
	m.httpDuration = f.histogram("http_request_duration_seconds", "Time to answer an HTTP request, by route pattern and method.", httpBuckets, "route", "method")

	m.enqueued = f.counter("tasks_enqueued_total", "Tasks inserted through River's client (the API, Go callers), by kind and queue. Counted when the insert runs, before its transaction commits.", "kind", "queue")
	m.completed = f.counter("tasks_completed_total", "Task attempts that completed, by kind and queue.", "kind", "queue")
	m.failed = f.counter("task_attempts_failed_total", "Task attempts that returned an error or panicked (each attempt counts), by kind and queue.", "kind", "queue")
	m.discarded = f.counter("tasks_discarded_total", "Tasks whose last attempt failed, so River discards them, by kind and queue.", "kind", "queue")
	m.cancelled = f.counter("tasks_cancelled_total", "Running tasks that ended cancelled (river.JobCancel, or a cancel of a running task), by kind and queue. Cancels of tasks not running show in handoff_queue_tasks.", "kind", "queue")
	m.snoozed = f.counter("tasks_snoozed_total", "Task attempts that snoozed (river.JobSnooze), by kind and queue.", "kind", "queue")
	// Work spans sub-millisecond noops to hour-long sleeps.
	workBuckets := prometheus.ExponentialBucketsRange(0.001, 3600, 16)
	m.work = f.histogram("task_work_duration_seconds", "Time an attempt's worker ran, by kind.", workBuckets, "kind")
	m.pickupWait = f.histogram("task_pickup_wait_seconds", "Time from a task's scheduled_at (when it became due) to the start of its attempt, by queue.", prometheus.ExponentialBucketsRange(0.001, 3600, 16), "queue")
	m.running = f.gauge("tasks_running", "Attempts running in this process now, by queue.", "queue")

	m.queueDepth = f.gauge("queue_tasks", "Unfinished tasks by queue and state (available, scheduled, pending, retryable, running), sampled from SQL every METRICS_INTERVAL.", "queue", "state")
	m.queueOldestAge = f.gauge("queue_oldest_available_age_seconds", "Age of the oldest available task of each queue (now minus its scheduled_at) at the last sample; 0 when none waits.", "queue")
	m.leader = f.gauge("river_leader", "1 when River has an elected leader (runs the rescuer, cleaner and scheduler); is_self says whether it is this process.", "is_self")
	m.sampleDuration = f.gauge("metrics_sample_duration_seconds", "How long the last SQL sample of queue depth took.").WithLabelValues()
	m.sampleErrors = f.counter("metrics_sample_errors_total", "SQL samples of queue depth that failed.").WithLabelValues()
	m.sampleTimestamp = f.gauge("metrics_sample_timestamp_seconds", "Unix time of the last successful SQL sample.").WithLabelValues()

	producers := f.gauge("river_producer_max_workers", "Workers of each queue this process's River client produces for (its producers), as configured.", "queue")
	for name, n := range m.opts.Queues {
		producers.WithLabelValues(name).Set(float64(n))
		m.running.WithLabelValues(name)
		m.pickupWait.WithLabelValues(name)
		for _, kind := range m.opts.Kinds {
			for _, c := range []*prometheus.CounterVec{m.enqueued, m.completed, m.failed, m.discarded, m.cancelled, m.snoozed} {
				c.WithLabelValues(kind, name)
			}
		}
	}
	for _, kind := range m.opts.Kinds {
		m.work.WithLabelValues(kind)
	}

	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newPoolCollector(pool),
	)
	return m
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
		Registry:          m.registry,
		EnableOpenMetrics: false,
	})
}

// SetClientID names this process's River client, to tell whether it is
// River's leader. Call it before Run.
func (m *Metrics) SetClientID(id string) {
	m.sampleMu.Lock()
	defer m.sampleMu.Unlock()
	m.opts.ClientID = id
}

// Registry is the registry the metrics are on, for a caller to add its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Run samples queue depth, oldest age and leadership every Interval until
// ctx ends. A failed sample is logged and counted; the next one tries again.
func (m *Metrics) Run(ctx context.Context) {
	ticker := time.NewTicker(m.opts.Interval)
	defer ticker.Stop()
	for {
		if err := m.Sample(ctx); err != nil && ctx.Err() == nil {
			m.logger.WarnContext(ctx, "metrics: sampling queue depth failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Sample reads queue depth, the oldest available task of each queue and
// River's leader from SQL into the gauges, once.
func (m *Metrics) Sample(ctx context.Context) error {
	m.sampleMu.Lock()
	defer m.sampleMu.Unlock()
	start := time.Now()
	err := m.sample(ctx)
	if err != nil {
		m.sampleErrors.Inc()
		return err
	}
	m.sampleDuration.Set(time.Since(start).Seconds())
	m.sampleTimestamp.Set(float64(time.Now().UnixNano()) / 1e9)
	return nil
}

// unfinishedStates are the states queue_tasks reports, always all five so
// that a state that empties reads 0 rather than vanishing.
var unfinishedStates = []string{"available", "pending", "retryable", "running", "scheduled"}

func (m *Metrics) sample(ctx context.Context) error {
	q := store.New()
	depth, err := q.QueueDepth(ctx, m.pool)
	if err != nil {
		return fmt.Errorf("sample queue depth: %w", err)
	}
	oldest, err := q.QueueOldestAvailable(ctx, m.pool)
	if err != nil {
		return fmt.Errorf("sample oldest available: %w", err)
	}
	leaders, err := q.RiverLeader(ctx, m.pool)
	if err != nil {
		return fmt.Errorf("sample River leader: %w", err)
	}

	queues := map[string]bool{}
	for name := range m.opts.Queues {
		queues[name] = true
	}
	for _, row := range depth {
		queues[row.Queue] = true
	}
	// Reset, then set every known queue's series: a queue whose tasks all
	// finished reads 0, and one no longer anywhere disappears.
	m.queueDepth.Reset()
	m.queueOldestAge.Reset()
	for name := range queues {
		for _, state := range unfinishedStates {
			m.queueDepth.WithLabelValues(name, state).Set(0)
		}
		m.queueOldestAge.WithLabelValues(name).Set(0)
	}
	for _, row := range depth {
		m.queueDepth.WithLabelValues(row.Queue, row.State).Set(float64(row.Jobs))
	}
	for _, row := range oldest {
		m.queueOldestAge.WithLabelValues(row.Queue).Set(row.AgeSeconds)
	}

	m.leader.Reset()
	self := false
	for _, l := range leaders {
		self = self || (m.opts.ClientID != "" && l.LeaderID == m.opts.ClientID)
	}
	if len(leaders) > 0 {
		m.leader.WithLabelValues(fmt.Sprint(self)).Set(1)
	} else {
		m.leader.WithLabelValues("false").Set(0)
	}
	return nil
}

// factory registers vectors under the handoff namespace.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(v)
	return v
}
