package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/handoff/handoff/internal/riverseam"
)

// config is everything the environment sets. Only this file reads it.
type config struct {
	// DatabaseURL is DATABASE_URL, the Postgres connection string. Required.
	DatabaseURL string

	// HTTPAddr is HTTP_ADDR, the listen address. Default 127.0.0.1:8080.
	HTTPAddr string

	// AutoMigrate is AUTO_MIGRATE: serve applies pending migrations first,
	// under an advisory lock. Default false.
	AutoMigrate bool

	// Workers is WORKERS, River's MaxWorkers for the default queue. Default
	// 250 per CPU, at most 10,000: workers are goroutines, most tasks wait
	// on I/O, and a bigger MaxWorkers means bigger fetch and completion
	// batches (a 100k backlog drains ~19% faster than at 100 per CPU;
	// docs/performance.md).
	Workers int

	// Queues is QUEUES, extra queues as "name=workers,name=workers". Tasks
	// may only name the default queue and these. Default none.
	Queues map[string]int

	// RescueAfter is RESCUE_AFTER, River's RescueStuckJobsAfter: a task whose
	// process died runs again after this. Default 2m.
	RescueAfter time.Duration

	// ShutdownTimeout is SHUTDOWN_TIMEOUT: on SIGTERM, running tasks have
	// this long to finish before they are cancelled and go back to River.
	// Default 30s.
	ShutdownTimeout time.Duration

	// AuthDisabled is AUTH_DISABLED. Handoff has no API keys yet, so /v1 is
	// open either way; the variable is reserved by the contract.
	AuthDisabled bool

	// FetchCooldown is FETCH_COOLDOWN, River's minimum time between fetches
	// of a queue; it caps throughput at Workers per cooldown. Default 10ms.
	FetchCooldown time.Duration

	// FetchPollInterval is FETCH_POLL_INTERVAL, how often River polls when
	// no LISTEN/NOTIFY wake-up arrives. Default 100ms: River sends at most one
	// wake-up per cooldown, so a task inserted just after another can miss it
	// and wait for this poll (worst pickup 700 ms at 1s, 23 ms at 100ms).
	FetchPollInterval time.Duration

	// InlineCompleteBelow is INLINE_COMPLETE_BELOW, in tasks a second: while
	// fewer finish per second, each is completed the moment its worker
	// returns rather than in River's next batch, up to 250 ms later (see
	// internal/riverseam). 0 turns this off. Default 500.
	InlineCompleteBelow int

	// DBMaxConns is DB_MAX_CONNS, the connection pool's size. Default 10:
	// a few per core of a small Postgres; more backends than cores only
	// contend (docs/performance.md). Raise it with Postgres's cores.
	DBMaxConns int

	// RequestTimeout is REQUEST_TIMEOUT, the most an API request may take
	// before it fails with 503. Default 10s.
	RequestTimeout time.Duration

	// CompletedRetention is COMPLETED_RETENTION, how long River keeps a
	// completed job's row before its cleaner deletes it; the tasks row stays.
	// Default 24h.
	CompletedRetention time.Duration

	// LogLevel is LOG_LEVEL: debug, info, warn or error. Default info.
	LogLevel slog.Level

	// LogFormat is LOG_FORMAT: json or text. Default json.
	LogFormat string

	// LiveSecret is LIVE_SECRET, the key of per-task read tokens (the page
	// and event-stream links of docs/live.md), at least 32 characters,
	// the same on every replica. Default: random per process, so links
	// work only on the replica that made them, until it restarts.
	LiveSecret string

	// LiveMaxStreams is LIVE_MAX_STREAMS, the most event streams and
	// ?wait= requests open at once in one process. Default 10,000.
	LiveMaxStreams int
}

// maxWorkers is River's limit on a queue's MaxWorkers: a client above it
// does not start.
const maxWorkers = river.QueueNumWorkersMax

// defaultWorkers is WORKERS when unset: 250 per CPU, within River's limit,
// so that a many-core host without WORKERS still starts.
func defaultWorkers(cpus int) int {
	return min(250*cpus, maxWorkers)
}

// parseConfig reads the environment through getenv and reports every bad
// value at once.
func parseConfig(getenv func(string) string) (*config, error) {
	p := envParser{getenv: getenv}
	cfg := &config{
		DatabaseURL:         getenv("DATABASE_URL"),
		HTTPAddr:            p.str("HTTP_ADDR", "127.0.0.1:8080"),
		AutoMigrate:         p.boolean("AUTO_MIGRATE", false),
		Workers:             p.integer("WORKERS", defaultWorkers(runtime.GOMAXPROCS(0)), 1, maxWorkers),
		Queues:              p.queues("QUEUES"),
		RescueAfter:         p.duration("RESCUE_AFTER", 2*time.Minute),
		ShutdownTimeout:     p.duration("SHUTDOWN_TIMEOUT", 30*time.Second),
		AuthDisabled:        p.boolean("AUTH_DISABLED", false),
		FetchCooldown:       p.duration("FETCH_COOLDOWN", 10*time.Millisecond),
		FetchPollInterval:   p.duration("FETCH_POLL_INTERVAL", 100*time.Millisecond),
		DBMaxConns:          p.integer("DB_MAX_CONNS", 10, 4, 10_000),
		InlineCompleteBelow: p.integer("INLINE_COMPLETE_BELOW", riverseam.DefaultIdleBelow, 0, 1_000_000),
		RequestTimeout:      p.duration("REQUEST_TIMEOUT", 10*time.Second),
		CompletedRetention:  p.duration("COMPLETED_RETENTION", 24*time.Hour),
		LogLevel:            p.level("LOG_LEVEL"),
		LogFormat:           p.str("LOG_FORMAT", "json"),
		LiveSecret:          getenv("LIVE_SECRET"),
		LiveMaxStreams:      p.integer("LIVE_MAX_STREAMS", 10_000, 1, 1_000_000),
	}
	if cfg.LiveSecret != "" && len(cfg.LiveSecret) < 32 {
		p.errs = append(p.errs, errors.New("LIVE_SECRET: must be at least 32 characters, e.g. from `openssl rand -hex 32`"))
	}
	if cfg.DatabaseURL == "" {
		p.errs = append(p.errs, errors.New("DATABASE_URL is not set: give a Postgres URL, e.g. postgres://user@localhost:5432/handoff; for the project's local Postgres use DATABASE_URL=$(make -s db/url) (`make run` sets it for you)"))
	}
	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		p.errs = append(p.errs, fmt.Errorf("HTTP_ADDR=%q: must be host:port, e.g. 127.0.0.1:8080 or :8080", cfg.HTTPAddr))
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "text" {
		p.errs = append(p.errs, fmt.Errorf("LOG_FORMAT=%q: must be json or text", cfg.LogFormat))
	}
	if cfg.FetchCooldown < time.Millisecond {
		p.errs = append(p.errs, fmt.Errorf("FETCH_COOLDOWN=%s: must be at least 1ms", cfg.FetchCooldown))
	}
	if cfg.FetchPollInterval < cfg.FetchCooldown {
		p.errs = append(p.errs, fmt.Errorf("FETCH_POLL_INTERVAL=%s: must not be shorter than FETCH_COOLDOWN=%s", cfg.FetchPollInterval, cfg.FetchCooldown))
	}
	if _, ok := cfg.Queues["default"]; ok {
		p.errs = append(p.errs, errors.New("QUEUES: set the default queue's workers with WORKERS, not QUEUES"))
	}
	if cfg.RescueAfter < time.Second {
		p.errs = append(p.errs, fmt.Errorf("RESCUE_AFTER=%s: must be at least 1s", cfg.RescueAfter))
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, fmt.Errorf("bad configuration:\n%w", err)
	}
	return cfg, nil
}

// envParser reads typed variables and collects every error.
type envParser struct {
	getenv func(string) string
	errs   []error
}

func (p *envParser) str(name, def string) string {
	if v := p.getenv(name); v != "" {
		return v
	}
	return def
}

func (p *envParser) boolean(name string, def bool) bool {
	raw := p.getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be true or false", name, raw))
	}
	return v
}

func (p *envParser) integer(name string, def, lo, hi int) int {
	raw := p.getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be an integer from %d to %d", name, raw, lo, hi))
	}
	return v
}

func (p *envParser) duration(name string, def time.Duration) time.Duration {
	raw := p.getenv(name)
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	if err != nil || v <= 0 {
		p.errs = append(p.errs, fmt.Errorf("%s=%q: must be a positive duration such as 30s or 2m", name, raw))
		return def // one report per bad variable
	}
	return v
}

func (p *envParser) level(name string) slog.Level {
	var level slog.Level
	if raw := p.getenv(name); raw != "" {
		if err := level.UnmarshalText([]byte(raw)); err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: must be debug, info, warn or error", name, raw))
		}
	}
	return level
}

func (p *envParser) queues(name string) map[string]int {
	raw := p.getenv(name)
	if raw == "" {
		return nil
	}
	queues := map[string]int{}
	for item := range strings.SplitSeq(raw, ",") {
		queue, workers, ok := strings.Cut(strings.TrimSpace(item), "=")
		n, err := strconv.Atoi(workers)
		if !ok || queue == "" || err != nil || n < 1 || n > maxWorkers {
			p.errs = append(p.errs, fmt.Errorf("%s: %q must be name=workers, workers from 1 to %d", name, item, maxWorkers))
			continue
		}
		queues[queue] = n
	}
	return queues
}
